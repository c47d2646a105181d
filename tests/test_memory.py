# Heap figures and budgets under the micropython unix port (issue 15): the console's `mem`
# without micropython.mem_peak() (as on the ESP32 port), and the heap budget of the .mpy build.
import os
import subprocess

import time

import pytest

from tests.harness import ROOT, interpreter, micropython_exe

pytestmark = pytest.mark.skipif(micropython_exe() is None, reason="micropython not installed")

HIDE_MEM_PEAK = """import sys
import micropython as _real
class _M:
    pass
_m = _M()
for k in dir(_real):
    if k != "mem_peak" and not k.startswith("__"):
        setattr(_m, k, getattr(_real, k))
sys.modules["micropython"] = _m
"""

MEM_WITHOUT_PEAK = HIDE_MEM_PEAK + """
import gc
import asyncio
from firmware import compat, console
class _Store:
    bytes_written = 0
class _St:
    store = _Store()
    def emit(self, *a):
        pass
c = console.Console(_St())
gc.collect()
base = gc.mem_alloc()
big = bytearray(150000)
compat.sample_mem()          # what the event-loop heartbeat does every 50 ms
big = None
r = asyncio.run(c.handle("mem gc"))
print(r["ok"], r["free"] > 0, r["alloc"] < base + 150000 <= r["peak"], r["peak"] - r["alloc"] > 100000)
"""


def _mp(script, args=(), heapsize=None, cwd=ROOT, timeout=120):
    exe = interpreter("micropython")
    if heapsize:
        exe = exe + ["-X", "heapsize=%d" % heapsize]
    return subprocess.run(exe + ["-c", script] + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_console_mem_reports_a_sampled_peak_without_mem_peak():
    """Issue 15 item 4: the ESP32 port has no micropython.mem_peak(); `mem` then reports
    gc.mem_free()/mem_alloc() and the peak sampled by the event-loop heartbeat."""
    p = _mp(MEM_WITHOUT_PEAK)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True"] * 4, p.stdout + p.stderr[-2000:]


# ---------------------------------------------------------------- running out of memory
# The smallest -X heapsize the short scenario below passes with the .mpy build (64-bit unix
# port): 320 KB passed and 300 KB failed on the footprint branch; the certificate, profile-3 and
# limit blocks then added ~25 KB of resident code. ABOVE keeps a margin over that (a fixed
# "just above" broke as soon as a feature landed); BELOW is past the import (~250 KB with the
# simulator's modules) and short of the scenario. When the firmware shrinks so that BELOW
# passes, lower it.
ABOVE, BELOW = 400 * 1024, 272 * 1024


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    from tools import bench
    return bench.make_dist(str(tmp_path_factory.mktemp("dist")))


def _short_scenario(csms, st, name):
    from tools import bench
    bench._accepted(st, 40)
    mark = len(csms.csms.messages)
    csms.call(name, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}, 30)
    bench._wait(lambda: [m for m in csms.csms.messages[mark:] if m["cp"] == name
                         and m["dir"] == "in" and m["frame"][0] == 2
                         and m["frame"][2] == "NotifyReport" and not m["frame"][3].get("tbc")],
                30, "last NotifyReport")
    bench.session(csms, st)


def _run_at(csms, dist, tmp_path, heapsize):
    """'works', 'rebooted' or 'recovered'; fails the test when the station hung or died otherwise."""
    from tools import bench
    from tests.harness import StationProc
    from host.sim import REBOOT_EXIT
    name = "OOM%d" % (heapsize // 1024)
    pre, cwd = bench.launcher("mpy", dist, heapsize)
    # short back-off: a retried connection is seconds away, not up to a minute
    st = StationProc("micropython", csms.csms.url(), name, str(tmp_path / name), launcher=pre, cwd=cwd,
                     args=["--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
                           "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=1"])
    err = None
    try:
        _short_scenario(csms, st, name)
    except Exception as e:  # Failed, AssertionError, the process gone
        err = e
    def log_text():
        with open(st.log_path, errors="replace") as f:
            return f.read()

    def settled(text):   # after an out-of-memory: connected again, or a clean reboot
        # (the scenario can fail a moment before the station logs its out-of-memory line:
        # no such line yet is not "settled")
        oom = text.find("out of memory")
        return "rebooting:" in text or (oom >= 0 and text.find("connected to", oom) > oom)
    rc = st.proc.poll()
    if err is not None and rc is None:
        deadline = time.time() + 60
        while st.proc.poll() is None and not settled(log_text()) and time.time() < deadline:
            time.sleep(0.2)
        rc = st.proc.poll()
    if rc is None:
        alive = False
        for _ in range(3):   # answering (the reply itself may not fit once): not hung
            try:
                alive = st.cmd("status", 20).get("ok")
            except Exception:
                alive = False
            if alive:
                break
        # "rebooting:" settles the wait above a moment before the simulator's exit: a process
        # that does not answer may be ending (REBOOT_EXIT), given a few seconds
        if not alive:
            try:
                rc = st.proc.wait(10)
            except subprocess.TimeoutExpired:
                rc = None
        st.quit()
    else:
        alive = False
    text = log_text()
    assert "Task exception wasn't retrieved" not in text, text[-3000:]
    if err is None:
        assert "out of memory" not in text or "rebooting: ApplicationReset" in text, text[-3000:]
        return "works", text
    # a clean reboot: logged, or (no heap left even for the line) the simulator's exit after a
    # start that ran out of memory
    rebooted = ("rebooting: ApplicationReset" in text
                or "out of memory while starting: exit %d" % REBOOT_EXIT in text)
    if rebooted and (alive or rc == REBOOT_EXIT):
        return "rebooted", text
    # or it recovered: the MemoryError was caught, the heap collected and the connection
    # made again, and the station still answers (the request it was serving is lost, the
    # CSMS may ask again); what must never happen is a hang or a dead task
    oom = text.find("out of memory")
    assert alive and oom >= 0 and text.find("connected to", oom) > oom, \
        "neither worked (%s) nor rebooted cleanly nor recovered (rc %s):\n%s" % (
            err, rc, text[-3000:])
    return "recovered", text


def test_out_of_memory_works_or_reboots_cleanly_never_hangs(csms, dist, tmp_path):
    """Issue 15 item 3: at a heap just above and just below the smallest passing size the
    station either runs the scenario or, after MemoryErrors on the network/protocol path
    (each streak logged once), reboots cleanly: ApplicationReset, relays opened first."""
    above, _ = _run_at(csms, dist, tmp_path, ABOVE)
    below, text = _run_at(csms, dist, tmp_path, BELOW)
    assert above == "works"
    assert below in ("rebooted", "recovered"), "%d KB now passes: lower BELOW" % (BELOW // 1024)
    assert "out of memory" in text


# ---------------------------------------------------------------- heap budget
# Issue 15 item 5: the 64-bit .mpy heap must not grow silently. Bounds are the measured
# figures plus ~2 % (live heap after gc.collect(), micropython unix port): 189.6 KB after
# import and 260.6 KB after one session on the issue-15 branch; 216.7 / 279.1 KB once the
# resident parts of the certificate, profile-3 and charging-limit work were merged (security's
# renewal and CSR timers, charging_limits, the limit-aware evse, the station's TLS roots);
# 223.4 / 289.5 KB with smart charging's resident part (4 KB: the installed profiles, the
# boundary task; the requests and the computation are imported only when used); 235.0 /
# 301.5 KB with the flash log (log.py, 3.2 KB more) and firmware update's resident part
# (slot pointer and trial boot, 4 KB; the update itself, the HTTP client and GetLog load
# only while they run); 211.1 / 283.5 KB after the resident cuts of the console, the device
# model's CSMS half, the cold requests, the recoveries and the WebSocket handshake, and the
# on-demand actions as one table instead of a handler object each. The goal for the
# import figure is 90 KB (see the README's Performance section).
IMPORT_BUDGET = 216 * 1024  # firmware modules the station has imported after boot
SESSION_BUDGET = 290 * 1024  # whole process (firmware + simulator) after boot and a session


def test_heap_budget_mpy_after_import_and_after_one_session(csms, dist, tmp_path):
    from tools import bench
    from tests.harness import StationProc
    name = "BUDGET"
    pre, cwd = bench.launcher("mpy", dist)
    st = StationProc("micropython", csms.csms.url(), name, str(tmp_path / name),
                     launcher=pre, cwd=cwd)
    try:
        bench._accepted(st, 40)
        mods = [m for m in bench._ok(st.cmd("modules"))["modules"]
                if m.startswith(("firmware.", "board."))]
        bench.session(csms, st)
        after = bench._ok(st.cmd("mem gc", 20))["alloc"]
    finally:
        st.quit()
    imported = bench.import_heap(dist, mods) - bench.import_heap(dist, ["gc"])
    print("heap after import %d B (budget %d), after one session %d B (budget %d)"
          % (imported, IMPORT_BUDGET, after, SESSION_BUDGET))
    assert imported <= IMPORT_BUDGET, "heap after import %d B > %d B" % (imported, IMPORT_BUDGET)
    assert after <= SESSION_BUDGET, "heap after a session %d B > %d B" % (after, SESSION_BUDGET)


# ---------------------------------------------------------------- out of memory while starting
def _station_with_listener(tmp_path, event, fail):
    from firmware.station import Station
    from host.sim_board import SimBoard
    board = SimBoard(1, str(tmp_path))
    st = Station(board, "ws://127.0.0.1:9", "OOMSTART")

    def listener(*args):
        if fail:
            raise MemoryError("listener")
    st.on(event, listener)
    return board, st


def test_out_of_memory_while_starting_reboots_instead_of_running_half_started(tmp_path):
    """A MemoryError in a start listener (the CI run at 296 KB: the simulator's in-process
    restart left too little heap) used to kill the run task from inside the error log and
    leave a station without its blocks started; now it is a clean reboot, marked so the
    simulator exits rather than restart into the same heap."""
    import asyncio
    board, st = _station_with_listener(tmp_path, "start", True)
    asyncio.run(asyncio.wait_for(st.run(), 5))
    assert st.start_failed and board.reboot_requested and not st.running
    with open(board.data_dir + "/boot.json") as f:
        assert "ApplicationReset" in f.read()


def test_out_of_memory_in_another_listener_is_logged_not_raised(tmp_path):
    board, st = _station_with_listener(tmp_path, "idle", True)
    assert st.emit("idle") == []      # the caller goes on, the station is not rebooted
    assert not board.reboot_requested
