# Which application bundle a board start runs (firmware update, OCPP 2.0.1 L01). boot.py calls
# select() before anything else is imported: the slot that <data_dir>/fw_slot.json names
# (firmware/firmware_update.py writes it) goes first on sys.path, so its firmware/ and board/
# modules shadow the ones on flash or frozen in the image. A bundle on trial is counted here,
# because a bundle that fails at import never reaches the station's own count: after
# MAX_TRIAL_BOOTS starts without an Accepted BootNotification the pointer goes back to the
# previous bundle. Only json and os: this runs before the firmware exists.
import json
import os

MAX_TRIAL_BOOTS = 3
POINTER = "fw_slot.json"
counted = False  # this start's trial boot was counted here (the station does not count it)


def _config_data_dir(config="config.json"):
    try:
        with open(config) as f:
            return json.load(f)["station"].get("data_dir") or "/data"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "/data"


def select(data_dir=None, purge=True):
    """Put the active (or trial) slot on sys.path; returns its directory or None. With
    purge, the board/firmware modules imported so far are forgotten so that they load
    again from the slot."""
    global counted
    import sys
    d = (data_dir or _config_data_dir()).rstrip("/")
    p = d + "/" + POINTER
    s = None
    for cand in (p, p + ".tmp"):  # as the station's Store reads it: a cut rewrite leaves .tmp
        try:
            with open(cand) as f:
                s = json.load(f)
            break
        except (OSError, ValueError):
            continue
    if not isinstance(s, dict):
        return None
    if s.get("trial"):
        s["boots"] = (s.get("boots") or 0) + 1
        if s["boots"] > MAX_TRIAL_BOOTS:
            s["trial"] = None
            s["image"] = None
        with open(p + ".tmp", "w") as f:
            f.write(json.dumps(s))
        try:
            os.rename(p + ".tmp", p)
        except OSError:  # a filesystem that does not rename over a file
            try:
                os.remove(p)
            except OSError:
                pass
            os.rename(p + ".tmp", p)
        counted = True
    if s.get("image"):
        return None  # an ESP32 image: the bootloader switched it
    path = None
    for slot in (s.get("trial"), s.get("active")):   # an unusable trial: the active one
        if not slot:
            continue
        try:
            os.stat(d + "/" + slot + "/manifest.json")  # written last: the slot is complete
            path = d + "/" + slot
            break
        except OSError:
            continue
    if path is None:
        return None  # the factory code
    if path not in sys.path:
        sys.path.insert(0, path)
    # modules boot.py imported before (board.config, this one) come again from the slot
    for m in list(sys.modules) if purge else ():
        if m in ("board", "firmware") or m.startswith("board.") or m.startswith("firmware."):
            if m != "board.slot":
                del sys.modules[m]
    return path
