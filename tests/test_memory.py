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
