"""A data directory that refuses writes (full, read-only, a file in the way) shows in the
console's `status` as storage_error, with a readable reason on both runtimes, and clears once
writes succeed again; the request that needed the write gets an error, not silence. Station
on CPython and under micropython. (Root ignores permissions, so the refusal is made with a
directory where the station writes its temporary file.)"""
import os

from tests.helpers import boot, change


def test_refused_write_shows_in_status_and_clears_after_a_good_write(csms, station):
    st = boot(csms, station)
    assert st.status()["storage_error"] is None
    blocker = os.path.join(st.data_dir, "avail.json.tmp")
    os.mkdir(blocker)
    try:
        r = change(csms, st, "Inoperative", 1)
    except Exception as e:   # a CALLERROR raised by the CSMS library
        r = {"error": str(e)}
    assert r.get("status") != "Accepted", r
    s = st.wait_status(lambda s: s["storage_error"], 5, "storage_error")
    assert s["storage_error"].startswith("avail.json: ") and "directory" in s["storage_error"], s
    os.rmdir(blocker)
    assert change(csms, st, "Inoperative", 1)["status"] in ("Accepted", "Scheduled")
    st.wait_status(lambda s: s["storage_error"] is None, 5, "storage_error cleared")
