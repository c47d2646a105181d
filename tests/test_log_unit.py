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
