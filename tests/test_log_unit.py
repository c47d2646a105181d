# firmware/log.py: the clock stepping back (CSMS currentTime, NTP) is said once, so the log's
# times never silently go backwards. Portable (pytest and micropython).
from firmware import compat, log


def _capture():
    lines = []
    log.sink = lines.append
    return lines


def test_clock_stepped_back_is_said_once_before_the_next_line():
    saved, saved_level = compat._clock_delta, log.level
    log.level = 1   # other tests (a fleet) may have left it at warnings only
    lines = _capture()
    try:
        log.info("t", "before")
        compat.set_now(compat.now() - 3600)
        log.info("t", "after")
        log.info("t", "later")
        notes = [ln for ln in lines if "clock stepped back" in ln]
        assert len(notes) == 1 and ("3600 s" in notes[0] or "3599 s" in notes[0]), lines
        assert lines.index(notes[0]) == 1 and lines[2].endswith("after"), lines
        # forward steps (a clock catching up) are not noise
        compat.set_now(compat.now() + 7200)
        log.info("t", "forward")
        assert len([ln for ln in lines if "clock stepped back" in ln]) == 1, lines
    finally:
        log.sink = None
        log.level = saved_level
        compat._clock_delta = saved
        log._last_t[0] = None


# ------------------------------------------------------------------ the flash log (N01)
def _flash_dir():
    import os
    d = "/tmp/logtest-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def _flash_cleanup(d):
    import os
    log.close_file()
    log._file[1] = None
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_flash_log_rotates_within_its_cap_and_keeps_the_newest_lines():
    import os
    d = _flash_dir()
    saved = log.level
    log.level = 1
    try:
        assert log.open_file(d, 4096)
        for i in range(400):
            log.info("t", "line %04d" % i)
        log.debug("t", "not on flash")
        paths = log.file_paths()
        assert paths == [d + "/diag.log.1", d + "/diag.log"], paths
        sizes = [os.stat(p)[6] for p in paths]
        assert sum(sizes) <= 4096 and max(sizes) <= 2048, sizes
        text = (_read(paths[0]) + _read(paths[1])).decode()
        lines = text.splitlines()
        assert lines[-1].endswith("line 0399") and text.endswith("\n"), lines[-1:]
        nums = [int(ln[-4:]) for ln in lines]
        assert nums == list(range(nums[0], 400)), nums[:5]  # contiguous: nothing lost in between
        assert "not on flash" not in text
        assert lines[0][10] == "T" and lines[0][23] == "Z" and " I [t] " in lines[0], lines[0]
    finally:
        log.level = saved
        _flash_cleanup(d)


def test_flash_log_reopened_after_a_torn_line_starts_a_new_line():
    d = _flash_dir()
    saved = log.level
    log.level = 1
    try:
        with open(d + "/diag.log", "wb") as f:
            f.write(b"2026-01-01T00:00:00.000Z I [t] whole\n2026-01-01T00:00:01.0")  # cut mid-line
        assert log.open_file(d, 4096)
        log.info("t", "after the cut")
        lines = _read(d + "/diag.log").decode().splitlines()
        assert len(lines) == 3 and lines[2].endswith("[t] after the cut"), lines
    finally:
        log.level = saved
        _flash_cleanup(d)
