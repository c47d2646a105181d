# The safety stepper (firmware/stepper.py): its own thread, events handed to asyncio through
# a bounded ring + ThreadSafeFlag, a failing step opens the relay and latches "internal".
# Timing properties on a simulated clock (Stepper.step(now)); the wall-clock figures are in
# `python -m tools bench`. Portable: pytest and micropython.
from firmware import safety, stepper as stepper_mod
from firmware.compat import asyncio, sleep_ms
from firmware.stepper import Stepper, PERIOD_MS
from test_safety import Rig


def test_thread_steps_every_safety_and_hands_events_to_asyncio():
    r1, r2 = Rig(), Rig()
    r1.s.permit(True, True, 16)
    r1.pilot.st = "C"
    beats = []
    st = Stepper([r1.s, r2.s], beat=beats.append)
    seen = []

    async def consume():
        st.start()
        assert st.threaded is (stepper_mod._thread is not None)
        for _ in range(200):
            await st.flag.wait()
            got = st.pop()
            while got is not None:
                seen.append((got[0], list(got[1])))
                got = st.pop()
            if any(s is r1.s and ("relay", True) in e for s, e in seen) and \
                    any(s is r2.s and ("pilot", "A") in e for s, e in seen):
                break
        await sleep_ms(30)
        st.stop()
    asyncio.run(consume())
    assert r1.relay._closed is False, "stop() opens every relay"
    assert any(s is r1.s and ("relay", True) in e for s, e in seen), seen
    assert any(s is r2.s and ("pilot", "A") in e for s, e in seen), seen
    assert len(beats) >= 2 and st.late[1] >= 2, "beat and lateness once per period"
    assert not st.alive


def test_exception_in_a_step_opens_that_relay_latches_internal_and_stepping_goes_on():
    bad, good = Rig(), Rig()
    bad.charging()
    good.charging()
    st = Stepper([bad.s, good.s])
    real = bad.hw.faults
    broken = [True]

    def faults():
        if broken[0]:
            raise RuntimeError("driver bug")
        return real()
    bad.hw.faults = faults
    now = bad.now
    now += PERIOD_MS
    st.step(now)
    assert bad.relay._closed is False, "opened in the failing step"
    assert "internal" in bad.s.faults() and bad.s.blocked()
    assert good.relay._closed is True, "the other EVSE is not touched"
    assert st.errors == 1 and st.last_error[0] == 1
    got = []
    x = st.pop()
    while x is not None:
        got.append(x)
        x = st.pop()
    assert got and got[0][0] is bad.s
    assert ("relay", False) in got[0][1] and ("fault", "internal") in got[0][1]
    for _ in range(50):                     # still failing: stays open, no event storm
        now += PERIOD_MS
        st.step(now)
    assert st.pop() is None and bad.relay._closed is False and st.errors == 51
    good.pilot.st = "B"
    now += PERIOD_MS
    st.step(now)
    assert good.relay._closed is False, "the stepper still steps the healthy EVSE"
    broken[0] = False                       # repaired: recovers like a replug-fault
    bad.pilot.st = "A"
    for _ in range(safety.POLICY["internal"][2] // PERIOD_MS + 2):
        now += PERIOD_MS
        st.step(now)
    assert "internal" not in bad.s.faults()


def test_failure_outside_a_step_opens_every_relay():
    r1, r2 = Rig(), Rig()
    r1.charging()
    r2.charging()

    def beat(now):
        raise OSError("watchdog driver")
    st = Stepper([r1.s, r2.s], beat=beat)
    st._due = r1.now
    st._tick()
    assert r1.relay._closed is False and r2.relay._closed is False
    assert "internal" in r1.s.faults() and "internal" in r2.s.faults()


def test_relay_opens_while_nobody_consumes_and_the_ring_overflow_is_counted():
    # the event loop is held (DNS miss, TLS handshake, flash rename): nothing pops, the
    # steps go on and the relay opens in the same 10 ms period as before
    r = Rig()
    st = Stepper([r.s], capacity=4)
    r.s.permit(True, True, 16)
    now = r.now
    opened = []
    for cycle in range(10):
        r.pilot.st = "C"
        now += PERIOD_MS
        st.step(now)
        assert r.relay._closed is True
        r.pilot.st = "B"
        t0 = now
        while r.relay._closed:
            now += PERIOD_MS
            st.step(now)
        opened.append(now - t0)
    assert max(opened) <= PERIOD_MS, opened
    assert st.dropped > 0, "a full ring drops and counts, it never blocks the stepper"


def test_fallback_without_thread_runs_the_same_step_on_asyncio():
    saved = stepper_mod._thread
    stepper_mod._thread = None
    try:
        r = Rig()
        r.s.permit(True, True, 16)
        r.pilot.st = "C"
        st = Stepper([r.s])

        async def main():
            task = st.start()
            assert task is not None and not st.threaded
            for _ in range(100):
                await sleep_ms(PERIOD_MS)
                if r.relay._closed:
                    break
            st.stop()
            await sleep_ms(2 * PERIOD_MS)
        asyncio.run(main())
        assert st.late[1] >= 1 and r.relay.sets[-1] is False
    finally:
        stepper_mod._thread = saved


class _Station:
    """What evse.Block needs from a station: its board, events and tasks."""

    def __init__(self, board):
        self.board = board
        self.blocks = {}
        self.emitted = []
        self._on = {}
        self.tasks = []

    def on(self, name, fn):
        self._on.setdefault(name, []).append(fn)

    def emit(self, name, *args):
        self.emitted.append((name,) + args)
        for fn in self._on.get(name, ()):
            fn(*args)

    def spawn(self, coro):
        self.tasks.append(asyncio.create_task(coro))


def test_ring_overflow_resync_hands_on_lost_fault_and_relay_open_in_order():
    # the event loop is held while the EV pauses and resumes and then the RCD trips: the
    # lists with the fault and the relay opening are lost to the full ring. The charging
    # side must still see the fault (it ends the session), then the relay open, then B.
    from firmware import hal
    from firmware.evse import Block
    r = Rig()
    r.hw.safety = r.s
    board = hal.Board([r.hw])
    board.stepper = st = Stepper([r.s], capacity=4)
    sta = _Station(board)

    async def main():
        blk = Block(sta)
        blk.get(1).authorized = True
        sta.emit("start")
        now = r.now
        r.pilot.st = "B"
        for _ in range(3):
            now += PERIOD_MS
            st.step(now)
        r.pilot.st = "C"
        now += PERIOD_MS
        st.step(now)
        assert r.s.relay_closed()
        for _ in range(5):
            await sleep_ms(5)
        assert ("relay", 1, True) in sta.emitted, sta.emitted
        del sta.emitted[:]
        for k in range(4):                  # nobody consumes: the ring fills
            r.pilot.st = "B" if k % 2 == 0 else "C"
            now += PERIOD_MS
            st.step(now)
        r.hw._faults = {"rcd"}              # trips: this list is dropped
        now += PERIOD_MS
        st.step(now)
        r.pilot.st = "B"
        now += PERIOD_MS
        st.step(now)
        assert st.dropped > 0 and not r.s.relay_closed()
        for _ in range(10):
            await sleep_ms(5)
        for t in sta.tasks:
            t.cancel()
        await sleep_ms(1)
        return blk
    blk = asyncio.run(main())
    got = [ev for ev in sta.emitted if ev[0] in ("pilot", "relay", "fault", "fault_cleared")]
    assert ("fault", 1, "rcd") in got, got
    assert got.count(("fault", 1, "rcd")) == 1, got
    relays = [ev for ev in got if ev[0] == "relay"]
    assert relays and relays[-1] == ("relay", 1, False), got
    assert got.index(("fault", 1, "rcd")) < len(got) - 1 - got[::-1].index(relays[-1]), \
        "the fault before the relay opening it caused"
    assert blk.get(1).pilot == "B" and blk.connector_status(1) == "Faulted"
    # nothing handed twice: every relay event is a change
    last = True
    for ev in relays:
        assert ev[2] != last, got
        last = ev[2]


def test_start_right_after_stop_never_leaves_two_threads_stepping():
    # stop() returns while the thread still sleeps in its period; an immediate start()
    # must not let that old thread resume next to the new one on the same Safety objects
    th = stepper_mod._thread
    if th is None:
        return
    r = Rig()
    who = []

    def beat(now):
        who.append(th.get_ident())
    st = Stepper([r.s], beat=beat, period_ms=200)
    st.start()
    st.stop(wait_ms=0)                  # the old thread is asleep in its 200 ms period
    st.start()
    n = len(who)
    for _ in range(2000):               # until the new thread has beaten 3 more times
        if len(who) >= n + 3:
            break
        stepper_mod._sleep(5)
    for _ in range(100):                # and up to 2 of the old thread's periods more
        stepper_mod._sleep(5)
    st.stop()
    idents = set(who[n:])
    assert len(idents) == 1, "two threads stepped after the restart: %r" % (who,)
    assert not st.alive
