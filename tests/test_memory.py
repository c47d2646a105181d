# Heap figures and budgets under the micropython unix port (issue 15): the console's `mem`
# without micropython.mem_peak() (as on the ESP32 port), and the heap budget of the .mpy build.
import os
import subprocess

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
# port): 320 KB passed and 300 KB failed when this was written. The test runs just above and
# just below; when the firmware shrinks so that both pass, lower BELOW.
ABOVE, BELOW = 328 * 1024, 296 * 1024


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
    """'works' or 'rebooted'; fails the test when the station hung or died otherwise."""
    from tools import bench
    from tests.harness import StationProc
    from host.sim import REBOOT_EXIT
    name = "OOM%d" % (heapsize // 1024)
    pre, cwd = bench.launcher("mpy", dist, heapsize)
    st = StationProc("micropython", csms.csms.url(), name, str(tmp_path / name), launcher=pre, cwd=cwd)
    err = None
    try:
        _short_scenario(csms, st, name)
    except Exception as e:  # Failed, AssertionError, the process gone
        err = e
    rc = st.proc.poll()
    if rc is None:
        try:
            alive = st.cmd("status", 20).get("ok")  # answering: not hung
        except Exception:
            alive = False
        st.quit()
    else:
        alive = False
    with open(st.log_path, errors="replace") as f:
        text = f.read()
    assert "Task exception wasn't retrieved" not in text, text[-3000:]
    if err is None:
        assert "out of memory" not in text or "rebooting: ApplicationReset" in text, text[-3000:]
        return "works", text
    rebooted = "rebooting: ApplicationReset" in text
    assert rebooted and (alive or rc == REBOOT_EXIT), \
        "neither worked (%s) nor rebooted cleanly (rc %s):\n%s" % (err, rc, text[-3000:])
    return "rebooted", text


def test_out_of_memory_works_or_reboots_cleanly_never_hangs(csms, dist, tmp_path):
    """Issue 15 item 3: at a heap just above and just below the smallest passing size the
    station either runs the scenario or, after MemoryErrors on the network/protocol path
    (each streak logged once), reboots cleanly: ApplicationReset, relays opened first."""
    above, _ = _run_at(csms, dist, tmp_path, ABOVE)
    below, text = _run_at(csms, dist, tmp_path, BELOW)
    assert above == "works"
    assert below == "rebooted", "%d KB now passes: lower BELOW" % (BELOW // 1024)
    assert "out of memory" in text


# ---------------------------------------------------------------- heap budget
# Issue 15 item 5: the 64-bit .mpy heap must not grow silently. Bounds are the figures of
# the issue-15 branch plus ~2 % (live heap after gc.collect(), micropython unix port):
# measured 189.6 KB after import and 260.6 KB after one session. The goal for the
# import figure is 90 KB (see the README's Performance section for what blocks it).
IMPORT_BUDGET = 192 * 1024  # firmware modules the station has imported after boot
SESSION_BUDGET = 270 * 1024  # whole process (firmware + simulator) after boot and a session


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
