# REPL helpers for after Ctrl-C (or from `mpremote exec`):
#   from board import diag
#   diag.status()  diag.log(20)  diag.get("OCPPCommCtrlr.HeartbeatInterval")
#   diag.set("OCPPCommCtrlr.HeartbeatInterval", 60)  diag.config()
# The same views as the serial console; secrets are never printed.
import json

from board.main import ctx, board_status


def _print(obj):
    print(json.dumps(obj))
    return None


def _console():
    c = ctx.get("console")
    if c is None and ctx.get("station") is not None:
        from firmware.console import Console
        c = Console(ctx["station"])
        ctx["console"] = c
    return c


def _ask(line):
    c = _console()
    if c is None:
        return {"ok": False, "error": "station not running"}
    from firmware.compat import asyncio
    try:
        return asyncio.run(c.handle(line))
    finally:
        # no event loop runs between REPL lines: the console's drop timer would not fire
        # (MicroPython's asyncio.run returns leaving it pending), so the commands go now
        if c.cmds is not None:
            c.drop()


def status():
    """Board, safety and station state in one JSON line."""
    out = board_status()
    w = ctx.get("wifi")
    if w is not None:
        out["wifi"] = {"connected": w.connected(), "ip": w.ip(), "rssi": w.rssi()}
    st = ctx.get("station")
    if st is not None and hasattr(st, "status"):
        try:
            out["station"] = st.status()
        except Exception as e:
            out["station"] = {"error": str(e)}
    from firmware.compat import mem_figures
    out["mem_free"], out["mem_alloc"], out["mem_peak"] = mem_figures()
    return _print(out)


def log(n=20):
    from firmware import log as _log
    for line in _log.recent(int(n)):
        print(line)


def get(name):
    return _print(_ask("get " + name))


def set(name, value):  # noqa: A001  (the console's verb)
    return _print(_ask("set %s %s" % (name, value)))


def config():
    """The active configuration with passwords and keys masked."""
    from board.config import redact
    return _print(redact(ctx.get("cfg") or {}))


def calibrate(i=0):
    """Measure the pilot ADC at -12 V and +12 V for config "cal" (nothing plugged in, the
    station stopped with Ctrl-C so the relay is open). Prints [raw_at_-12V, raw_at_+12V]."""
    b = ctx.get("board")
    if b is None:
        return _print({"ok": False, "error": "board not started"})
    e = b.evses[i]
    e.relay.set(False)
    p = e.pilot
    p.offer(None)
    p.sample()
    p.sample()
    lo = p.min_raw
    p.offer(0)
    p.sample()
    p.sample()
    hi = p.max_raw
    return _print({"ok": lo < hi, "evse": e.id, "cal": [lo, hi],
                   "note": "put this pair into evses[%d].pilot.cal in /config.json" % i})
