# board/slot.py, what boot.py runs first on a board: the firmware bundle slot that
# fw_slot.json names goes first on sys.path, trial starts are counted and a bundle that never
# got an Accepted boot is given up after MAX_TRIAL_BOOTS starts. Portable (pytest and
# micropython).
from fake_machine import portable  # noqa: F401
import json
import os
import sys

from board import slot

BASE = "/tmp/boardslot-" + "".join("%02x" % b for b in os.urandom(6))


def _data(pointer, slots=("fw_a",), complete=True, tag="x"):
    d = BASE + "-" + tag
    for n in (d,) + tuple(d + "/" + s for s in slots):
        try:
            os.mkdir(n)
        except OSError:
            pass
    for s in slots:
        with open(d + "/" + s + "/probe_%s_%s.py" % (tag, s), "w") as f:
            f.write("WHERE = %r\n" % s)
        if complete:
            with open(d + "/" + s + "/manifest.json", "w") as f:
                f.write("{}")
    with open(d + "/fw_slot.json", "w") as f:
        f.write(json.dumps(pointer))
    return d


def _pointer(d):
    with open(d + "/fw_slot.json") as f:
        return json.load(f)


def test_active_slot_goes_first_on_sys_path():
    d = _data({"active": "fw_a", "version": "2.0.0", "trial": None}, tag="act")
    path = slot.select(d, purge=False)
    try:
        assert path == d + "/fw_a" and sys.path[0] == path
        mod = __import__("probe_act_fw_a")
        assert mod.WHERE == "fw_a"
        assert _pointer(d)["trial"] is None  # nothing counted for an active bundle
    finally:
        sys.path.remove(path)


def test_trial_slot_counted_then_given_up_after_max_boots():
    d = _data({"active": "fw_a", "trial": "fw_b", "boots": 0}, slots=("fw_a", "fw_b"), tag="tri")
    seen = []
    for _ in range(slot.MAX_TRIAL_BOOTS + 1):
        path = slot.select(d, purge=False)
        seen.append(path.rsplit("/", 1)[1])
        sys.path.remove(path)
    assert seen == ["fw_b"] * slot.MAX_TRIAL_BOOTS + ["fw_a"]
    p = _pointer(d)
    assert p["trial"] is None and p["active"] == "fw_a" and slot.counted


def test_incomplete_slot_image_or_no_pointer_runs_the_factory_code():
    d = _data({"active": "fw_a", "trial": None}, complete=False, tag="inc")
    assert slot.select(d, purge=False) is None
    d = _data({"active": "fw_a", "trial": None, "image": "ota_1"}, tag="img")
    assert slot.select(d, purge=False) is None
    assert slot.select(BASE + "-nothing-here", purge=False) is None
