"""Leak check: 50 charging sessions back to back under micropython. Heap after gc.collect()
at the end must be within 2 KB of the heap after the warm-up sessions, no file in the data
directory may keep growing, and the station must log no error. (`python -m tools bench
--soak 1000` is the long version; it prints figures instead of asserting.)"""
import pytest

from firmware import log
from tests.harness import micropython_exe
from tools.bench import soak

SESSIONS = 50
# journals that rotate or reset themselves: the largest size they may reach
BOUNDS = {"queue.jnl": 4096 + 2048,
          # the flash log: two files of half its cap each (firmware/log.py)
          log.FILE: log.FILE_TOTAL // 2, log.FILE + ".1": log.FILE_TOTAL // 2}


@pytest.mark.skipif(micropython_exe() is None, reason="micropython executable not installed")
def test_soak_50_sessions_no_leak(csms, tmp_path):
    r = soak(csms, str(tmp_path / "SOAK1"), SESSIONS)
    assert r["errors"] == []
    assert r["status"]["queue"] == 0 and r["status"]["evses"][0]["transaction"] is None
    assert abs(r["heap1"] - r["heap0"]) <= 2048, (r["heap0"], r["heap1"])
    for name, size in r["files1"].items():
        # a file either stays within its rotation bound or does not outgrow its warm-up size
        bound = BOUNDS.get(name, r["files0"].get(name, 0) + 1024)
        assert size <= bound, (name, size, r["files0"].get(name))
