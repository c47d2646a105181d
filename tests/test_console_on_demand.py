"""Issue 15 item 2: the console's command code (firmware/console_cmds.py) is not resident. It
loads on the first console line and is dropped after the station's linger without input
(station.ON_DEMAND_LINGER_MS); the commands other layers add (blocks, board, simulator) come
back with every load, and what must outlive a drop (`quit`, the `mem watch` sampler) does."""
import subprocess
import time

from firmware.station import ON_DEMAND_LINGER_MS
from tests.harness import ROOT, interpreter



LOADED, DROPPED = "[console] commands loaded", "[console] commands dropped"


def _loads(st):
    """(loads, drops) of the console's commands so far, from the station's debug log."""
    with open(st.log_path, errors="replace") as f:
        text = f.read()
    return text.count(LOADED), text.count(DROPPED)


def _two_lines_within_the_linger(st):
    """Two lines whose replies come within one linger of each other (a loaded machine can be
    slower: then the pair is asked again once the commands were dropped; nothing is timed)."""
    for _ in range(5):
        before = _loads(st)
        t0 = time.time()
        first = st.cmd("modules")
        second = st.cmd("status")
        if (time.time() - t0) * 1000 < ON_DEMAND_LINGER_MS * 0.8:
            return before, first, second
        wait_loads(st, lambda n: n[0] == n[1], "dropped")
    raise AssertionError("no two console replies came within one linger")


def wait_loads(st, pred, what, timeout=30):
    t0 = time.time()
    while not pred(_loads(st)):
        if time.time() - t0 > timeout:
            raise AssertionError("console commands not %s: %r" % (what, _loads(st)))
        time.sleep(0.2)   # reads the log file only: no console line, which would load them


def test_console_commands_load_on_the_first_line_and_drop_after_the_linger(csms, station, target):
    st = station(args=["--verbose"])
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    # after boot: the front-end only, the commands were never loaded
    assert _loads(st) == (0, 0)
    before, first, second = _two_lines_within_the_linger(st)
    assert first["ok"] and second["ok"], (first, second)
    # the first line loaded the commands, the second found them lingering
    assert _loads(st) == (before[0] + 1, before[1]), (before, _loads(st))
    # `modules` lists the station's modules: the front-end, not the console's own commands
    assert "firmware.console" in first["modules"], first
    assert "firmware.console_cmds" not in first["modules"], first
    assert st.cmd("mem watch 50")["ok"]
    # no input for longer than the linger: dropped
    wait_loads(st, lambda n: n[0] == n[1] >= 1, "dropped")
    n = _loads(st)
    # the sampler and its peak outlived the drop (they live in the resident front-end);
    # CPython reports no heap figures
    r = st.cmd("mem")
    assert r["ok"], r
    assert _loads(st) == (n[0] + 1, n[1])   # loaded again for this line
    if target == "micropython":
        assert isinstance(r["live_max"], int) and r["live_max"] > 0, r
        assert isinstance(r["peak"], int) and r["peak"] >= r["alloc"], r
    assert st.cmd("mem watch 0")["ok"]
    # the blocks' and the simulator's commands come back with the reloaded table
    r = st.cmd("help")
    for name in ("auth", "seclog", "plug", "extlimit", "status", "quit"):
        assert name in r["commands"], (name, r)
    assert st.cmd("help auth")["usage"] == "auth TOKEN [TYPE] [EVSE]"
    assert st.cmd("help plug")["usage"] == "plug N"
    wait_loads(st, lambda n: n[0] == n[1] >= 2, "dropped again")
    r = st.cmd("auth 04A1B2C3")   # authorization's command: asks the CSMS (Authorize)
    assert r["ok"] and r["idTokenInfo"]["status"] == "Accepted", r
    assert csms.csms.calls("Authorize", st.identity)
    # `quit` after a reload still ends the simulator (its flag is the front-end's)
    wait_loads(st, lambda n: n[0] == n[1] >= 3, "dropped after auth")
    assert st.cmd("quit") == {"ok": True, "bye": True}
    st.proc.wait(10)
    assert st.proc.returncode == 0


# In-process, on both runtimes: the board's own console commands (board/main.py) through the
# station's console event, the immediate drop without a linger, the timed drop with one.
BOARD_CONSOLE = r"""
import sys
sys.path.insert(0, %(root)r)
from firmware import compat
from firmware.compat import asyncio
from firmware.station import Station
from host.sim_board import SimBoard
from board import main
from firmware.console import Console
CMDS = "firmware.console_cmds"
st = Station(SimBoard(1, %(data)r), "ws://127.0.0.1:9", "COD1")
st.on("console", main.add_board_command)
c = Console(st)
out = []
async def go():
    out.append(CMDS in sys.modules)                       # False: nothing loaded at start
    st.linger_ms = 0
    r = await c.handle("quit")                            # the board's quit refuses
    out.append(r["ok"] is False and "reboot" in r["error"])
    out.append(CMDS in sys.modules or c.cmds is not None)   # False: dropped at once
    r = await c.handle("help")                            # loaded again: all extensions
    out.append([n for n in ("board", "auth", "seclog", "quit") if n in r["commands"]])
    r = await c.handle("quit")
    out.append(r["ok"] is False and c.quit is False)
    st.linger_ms = 200
    await c.handle("status")
    out.append(CMDS in sys.modules)                       # True: lingering
    for _ in range(100):
        if CMDS not in sys.modules:
            break
        await asyncio.sleep(0.1)
    out.append(CMDS in sys.modules or c.cmds is not None)   # False: dropped by its timer
asyncio.run(go())
print(repr(out))
"""


def test_board_console_commands_apply_at_every_load(target, tmp_path):
    import pytest
    from tests.harness import micropython_exe
    if target == "micropython" and micropython_exe() is None:
        pytest.skip("micropython not installed")
    script = BOARD_CONSOLE % {"root": ROOT, "data": str(tmp_path / "d")}
    p = subprocess.run(interpreter(target) + ["-c", script], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout.strip().splitlines()[-1]
    assert out == repr([False, True, False, ["board", "auth", "seclog", "quit"], True, True,
                        False]), out + p.stderr[-2000:]
