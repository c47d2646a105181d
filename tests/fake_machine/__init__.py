"""A fake `machine` module and chip fakes for the board drivers, on CPython and micropython."""


def example_config(data_dir, root="."):
    """The example board config for the fake machine: no WiFi, no card reader, no meter,
    the fake pilot's calibration, state under data_dir, a loopback CSMS URL. Callers change the rest."""
    import json
    from fake_machine.waves import CAL
    with open(root + "/board/config.example.json") as f:
        raw = json.load(f)
    raw["wifi"] = None
    raw["station"]["data_dir"] = data_dir
    raw["station"]["csms_url"] = "ws://127.0.0.1:9/ocpp"  # loopback discard port, never the LAN
    raw["reader"] = {"type": "none"}
    e = raw["evses"][0]
    e["meter"] = {"type": "none"}
    e["pilot"]["cal"] = list(CAL)
    return raw
