# The event loop reads safety and board state while the stepper's thread latches and clears
# faults. The unix micropython has no GIL: iterating a dict or set that the other thread
# resizes crashed the interpreter (rc 139). Portable: under pytest (CPython, where the GIL
# hides the race, a short run) and under micropython, driven by the last test here.
from fake_machine import portable
import time

from firmware import safety
from firmware.hal import Evse

try:
    import _thread
except ImportError:
    _thread = None

# short holds and no blocking: every other step latches or clears several faults
CHURN = ("t1", "t2", "t3", "t4", "t5", "t6")
SECONDS = 2.0 if portable.MICROPYTHON else 0.3


class _Pilot:
    def offer(self, amps):
        pass

    def state(self):
        return "B"


class _Relay:
    def set(self, closed):
        pass

    def feedback(self):
        return None


def _race(write, read):
    """Run write(k) on a thread and read() here for SECONDS; return (reads, writes)."""
    if _thread is None:
        portable.skip("no _thread")
    stop = [False]
    done = [False]
    writes = [0]

    def writer():
        try:
            k = 0
            while not stop[0]:
                k += 1
                write(k)
                writes[0] += 1
        finally:
            done[0] = True
    _thread.start_new_thread(writer, ())
    reads = 0
    t0 = time.time()
    try:
        while time.time() - t0 < SECONDS:
            read()
            reads += 1
    finally:
        stop[0] = True
        while not done[0]:
            time.sleep(0.01)
    return reads, writes[0]


def test_safety_views_read_while_the_stepper_thread_latches_and_clears_faults():
    hw = Evse(1, _Pilot(), _Relay(), None)
    s = safety.Safety(hw)
    for n in CHURN:
        safety.POLICY[n] = (False, False, 0)
    clock = [1000]
    names = ("meter",) + CHURN

    def write(k):
        hw._faults = set(names[:k % len(names) + 1]) if k & 1 else set()
        clock[0] += 10
        s.step(clock[0])

    def read():
        for x in s.faults():
            assert x in names, x
        st = s.status()
        for x in st["faults"]:
            assert x in names, x
        s.blocked()
    try:
        reads, writes = _race(write, read)
    finally:
        for n in CHURN:
            del safety.POLICY[n]
    assert reads > 0 and writes > 0
    print("safety: %d reads beside %d steps" % (reads, writes))


def test_board_status_read_while_fast_sampling_flags_faults():
    import machine
    import test_board_device as tbd
    b = tbd.make(relay={"pin": 26, "feedback_pin": None})
    e = b.evses[0]
    rcd = machine.created[("pin", 35)]          # RCD trip output, active low
    clock = [1000]

    def write(k):
        if k & 7 == 0:
            # a fresh set, as at start-up or after rcd_self_test replaced it: its first adds
            # grow (reallocate) it, the moment an in-place add breaks a reader's iteration
            e._faults = set()
        rcd.value(k & 1)
        e._hot = bool(k & 2)
        e._meter_bad = bool(k & 4)
        clock[0] += 10
        e.fast(clock[0])

    def read():
        for x in b.status()[0]["faults"]:
            assert x in ("rcd", "overtemp", "meter", "diode"), x
        "lock" in e.faults()                    # remote_control's check
    reads, writes = _race(write, read)
    assert reads > 0 and writes > 0
    print("board: %d status reads beside %d fast() calls" % (reads, writes))


def test_thread_races_do_not_crash_micropython():
    if portable.MICROPYTHON:
        portable.skip("drives the micropython run from pytest")
    rc, out = portable.run_micropython(["test_safety_threads"], timeout=120)
    if rc is None:
        portable.skip(out)
    assert rc == 0, "rc=%s (139: segfault)\n%s" % (rc, out[-2000:])
    assert "SUMMARY 2 0" in out, out[-2000:]
