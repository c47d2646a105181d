# Safety scenarios on a simulated clock. Portable: runs under pytest and under micropython
# (tests/fake_machine/mprun.py); the micropython run is driven from test_portable_micropython.py.
from firmware import safety
from firmware.hal import Evse


class FakePilot:
    def __init__(self):
        self.st = "A"
        self.offers = []

    def offer(self, amps):
        self.offers.append(amps)

    def state(self):
        return self.st

    def current(self):
        return self.offers[-1]


class FakeRelay:
    def __init__(self, with_feedback=False):
        self._closed = None
        self.fb = None if not with_feedback else False
        self.sets = []

    def set(self, closed):
        self._closed = closed
        self.sets.append(closed)

    def closed(self):
        return self._closed

    def feedback(self):
        return self.fb


class Rig:
    """One EVSE with a simulated clock stepped in 10 ms ticks."""

    def __init__(self, feedback=False, vent=False, max_current=32):
        self.pilot = FakePilot()
        self.relay = FakeRelay(feedback)
        self.hw = Evse(1, self.pilot, self.relay, None, max_current=max_current)
        self.s = safety.Safety(self.hw, allow_ventilation=vent)
        self.now = 1000
        self.events = []

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 10
            evs = self.s.step(self.now)
            for e in evs:
                self.events.append((self.now, e))

    def run_until(self, pred, limit_ms):
        """Advance until pred() holds; return the elapsed ms (or None after limit)."""
        t0 = self.now
        while self.now - t0 <= limit_ms:
            if pred():
                return self.now - t0
            self.now += 10
            for e in self.s.step(self.now):
                self.events.append((self.now, e))
        return None

    def charging(self, amps=16):
        self.s.permit(True, True, amps)
        self.pilot.st = "B"
        self.run(50)
        self.pilot.st = "C"
        self.run(30)
        assert self.relay._closed is True
        if self.relay.fb is not None:
            self.relay.fb = True
        self.events = []


def test_relay_open_at_construction():
    r = Rig()
    assert r.relay.sets == [False]
    assert r.s.relay_closed() is False


def test_closes_only_in_c_when_permitted():
    r = Rig()
    r.pilot.st = "C"
    r.run(200)
    assert r.relay._closed is False, "not authorised yet"
    r.s.permit(True, False, 16)
    r.run(200)
    assert r.relay._closed is False, "unavailable"
    r.s.permit(True, True, 3)
    r.run(200)
    assert r.relay._closed is False, "below 6 A"
    r.s.permit(True, True, 16)
    dt = r.run_until(lambda: r.relay._closed, 3000)
    assert dt is not None and dt <= 3000
    assert r.pilot.current() == 16


def test_close_within_3s_of_b_to_c():
    r = Rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "B"
    r.run(100)
    assert r.pilot.current() == 16 and r.relay._closed is False
    r.pilot.st = "C"
    dt = r.run_until(lambda: r.relay._closed, 3000)
    assert dt is not None and dt <= 3000


def test_opens_within_100ms_after_c_to_b():
    # Through the board's pilot driver (ADC bursts of a noisy 1 kHz wave, its debounce) and
    # the safety stepper's period (fast sampling, then the step), on a simulated clock: the
    # 100 ms include the debounce, not only the step.
    from fake_machine import portable  # noqa: F401  (the fake `machine`)
    import machine
    from fake_machine.waves import PilotWave, CAL
    from board.pilot import Pilot
    from firmware.stepper import Stepper, PERIOD_MS
    machine.reset_all()
    pilot = Pilot(25, 36, cal=CAL, debounce=3)
    wave = PilotWave(9.0, -12.0, 100.0, noise_v=0.5)
    machine.created[("adc", 36)].source = wave
    relay = FakeRelay()
    hw = Evse(1, pilot, relay, None)
    hw.fast = lambda now: pilot.sample()
    s = safety.Safety(hw)
    st = Stepper([s])
    clock = [1000]

    def until(pred, limit_ms):
        t0 = clock[0]
        while clock[0] - t0 <= limit_ms:
            clock[0] += PERIOD_MS
            st.step(clock[0])
            if pred():
                return clock[0] - t0
        return None
    s.permit(True, True, 16)
    assert until(lambda: s.state() == "B", 200) is not None
    wave.duty = 16 / 0.6
    wave.high_v = 6.0                       # EV closes S2: C
    assert until(lambda: relay._closed, 3000) is not None
    until(lambda: False, 200)
    wave.high_v = 9.0                       # EV opens S2: B
    dt = until(lambda: not relay._closed, 1000)
    assert dt is not None and dt <= 100, dt
    assert dt >= pilot.debounce * PERIOD_MS, "the debounce is part of the path"


def test_state_d_needs_ventilation():
    r = Rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "D"
    r.run(500)
    assert r.relay._closed is False
    v = Rig(vent=True)
    v.s.permit(True, True, 16)
    v.pilot.st = "D"
    v.run(50)
    assert v.relay._closed is True


def test_each_fault_opens_within_100ms_and_offers_no_pwm():
    for name in ("rcd", "diode", "overtemp", "lock", "contactor", "welding", "pilot"):
        r = Rig()
        r.charging()
        r.hw.faults().add(name)
        dt = r.run_until(lambda: not r.relay._closed, 1000)
        assert dt is not None and dt <= 100, (name, dt)
        assert ("fault", name) in [e for _, e in r.events]
        assert r.pilot.current() == 0, name


def test_meter_fault_does_not_open():
    r = Rig()
    r.charging()
    r.hw.faults().add("meter")
    r.run(500)
    assert r.relay._closed is True
    assert "meter" in r.s.faults()
    r.hw.faults().discard("meter")
    r.run(20)
    assert "meter" not in r.s.faults()
    assert ("fault_cleared", "meter") in [e for _, e in r.events]


def test_pilot_e_and_f_are_faults_needing_replug():
    for bad in ("E", "F"):
        r = Rig()
        r.charging()
        r.pilot.st = bad
        dt = r.run_until(lambda: not r.relay._closed, 1000)
        assert dt is not None and dt <= 100
        assert "pilot" in r.s.faults()
        r.pilot.st = "C"
        r.run(2000)
        assert r.relay._closed is False and "pilot" in r.s.faults(), "needs replug"
        r.pilot.st = "A"
        r.run(20)
        assert "pilot" not in r.s.faults()
        r.pilot.st = "B"
        r.run(50)
        r.pilot.st = "C"
        r.run(50)
        assert r.relay._closed is True


def test_rcd_needs_clear_input_then_replug():
    r = Rig()
    r.charging()
    f = r.hw.faults()
    f.add("rcd")
    r.run(50)
    r.pilot.st = "A"      # unplugged while the RCD input is still tripped
    r.run(100)
    r.pilot.st = "B"
    r.run(100)
    f.discard("rcd")
    r.run(1000)
    assert "rcd" in r.s.faults(), "the unplug happened before the trip cleared"
    r.pilot.st = "A"
    r.run(20)
    assert "rcd" not in r.s.faults()


def test_overtemp_recovers_after_timeout_without_replug():
    r = Rig()
    r.charging()
    f = r.hw.faults()
    f.add("overtemp")
    r.run(1000)
    f.discard("overtemp")
    hold = safety.POLICY["overtemp"][2]
    r.run(hold - 100)
    assert "overtemp" in r.s.faults() and r.relay._closed is False
    r.run(200)
    assert "overtemp" not in r.s.faults()
    # EV still in C, still permitted: charging resumes by itself
    r.run(20)
    assert r.relay._closed is True


def test_welding_detected_from_feedback():
    r = Rig(feedback=True)
    r.charging()
    r.pilot.st = "B"
    r.run(50)
    assert r.relay._closed is False
    # the auxiliary contact still reads closed: welded
    r.run(safety.FEEDBACK_MS + 50)
    assert "welding" in r.s.faults()
    r.relay.fb = False
    r.pilot.st = "A"
    r.run(safety.POLICY["welding"][2] + 50)
    assert "welding" not in r.s.faults()


def test_contactor_not_closing_is_a_fault():
    r = Rig(feedback=True)
    r.s.permit(True, True, 16)
    r.pilot.st = "C"
    r.run(30)
    assert r.relay._closed is True
    r.run(safety.FEEDBACK_MS + 50)   # feedback never followed
    assert "contactor" in r.s.faults()
    assert r.relay._closed is False


def test_withdrawn_permission_waits_for_ev_then_opens():
    r = Rig()
    r.charging()
    r.s.permit(False, True, 16)
    r.run(20)
    assert r.pilot.current() == 0, "PWM stops at once"
    assert r.relay._closed is True, "EV gets its reaction time"
    r.pilot.st = "B"              # EV reacts after 1 s
    dt = r.run_until(lambda: not r.relay._closed, 200)
    assert dt is not None and dt <= 100


def test_withdrawn_permission_opens_after_reaction_time():
    r = Rig()
    r.charging()
    t0 = r.now
    r.s.permit(True, True, 0)
    r.run_until(lambda: not r.relay._closed, safety.STOP_REACTION_MS + 500)
    waited = r.now - t0
    assert safety.STOP_REACTION_MS <= waited <= safety.STOP_REACTION_MS + 30, waited


def test_lowered_current_changes_duty_keeps_relay():
    r = Rig()
    r.charging(32)
    r.s.permit(True, True, 10)
    r.run(safety.CURRENT_REACTION_MS + 1000)
    assert r.pilot.current() == 10 and r.relay._closed is True


def test_amps_clamped_to_evse_max():
    r = Rig(max_current=16)
    r.s.permit(True, True, 40)
    r.pilot.st = "B"
    r.run(30)
    assert r.pilot.current() == 16


def test_step_returns_shared_empty_tuple_when_idle():
    r = Rig()
    r.run(50)
    a = r.s.step(r.now + 10)
    b = r.s.step(r.now + 20)
    assert a == () and a is b


def _charging_steps_grow_at_most_64_bytes(lock=False):
    try:
        import gc
        import micropython  # noqa: F401
    except ImportError:
        from fake_machine import portable
        portable.skip("heap accounting is only meaningful on micropython")
    r = Rig(feedback=True)
    if lock:
        r.hw.lock = FakeLock(fb=True)
    r.charging()
    step = r.s.step
    now = r.now
    step(now)
    gc.collect()
    before = gc.mem_alloc()
    for i in range(200):
        now += 10
        step(now)
    grew = gc.mem_alloc() - before
    assert grew <= 64, grew


def test_idle_and_charging_steps_do_not_allocate():
    _charging_steps_grow_at_most_64_bytes()


def test_evse_limit_is_reread_every_step():
    r = Rig(max_current=32)
    r.charging(32)
    r.hw.max_current = 13          # e.g. the proximity pilot found a 13 A cable
    r.run(20)
    assert r.pilot.current() == 13 and r.relay._closed is True
    r.hw.max_current = 0           # no cable: no offer at all, and no energy at once
    r.s.step(r.now + 10)
    assert r.pilot.current() == 0
    assert r.relay._closed is False, "max_current 0 opens in the same step"


# ---------------------------------------------------------------- lock before energy
class FakeLock:
    """Lock with feedback; `log` is shared with a RecordingRelay to prove the order."""

    def __init__(self, log=None, fb=False):
        self.fb = fb
        self.want = False
        self.log = log if log is not None else []

    def set(self, locked):
        self.want = locked
        self.log.append(("lock", locked))

    def locked(self):
        return self.fb

    def commanded(self):
        return self.want


def lock_rig():
    r = Rig()
    r.hw.lock = FakeLock()
    return r


def test_relay_waits_for_lock_feedback():
    r = lock_rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "C"
    r.run(500)
    assert r.relay._closed is False, "closed with the lock still open"
    assert r.pilot.current() == 16 and not r.s.faults()
    r.hw.lock.fb = True
    r.s.step(r.now + 10)
    assert r.relay._closed is True, "closes in the step the lock confirms"


def test_lock_not_confirming_is_a_lock_fault():
    r = lock_rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "C"
    r.hw.lock.set(True)
    r.run(safety.LOCK_TRAVEL_MS + 50)
    assert "lock" in r.s.faults() and r.s.blocked()
    assert r.pilot.current() == 0, "no PWM while faulted"
    assert r.relay._closed is False


def test_uncommanded_lock_only_makes_the_relay_wait():
    # card before cable, then the EV plugs in while the event loop (which commands the lock,
    # evse.Block._lock) is held for longer than the lock's travel time: no "lock" fault
    r = lock_rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "C"
    r.run(3 * safety.LOCK_TRAVEL_MS)
    assert not r.s.faults() and not r.s.blocked(), r.s.faults()
    assert r.relay._closed is False, "closed with the lock still open"
    r.hw.lock.set(True)            # the event loop is back and commands the lock
    r.run(safety.LOCK_TRAVEL_MS // 2)
    assert not r.s.faults() and r.relay._closed is False
    r.hw.lock.fb = True            # it has travelled: energy at once, no 5 s lock hold
    r.s.step(r.now + 10)
    assert r.relay._closed is True and not r.s.faults()


def test_lock_not_confirming_times_from_the_command():
    r = lock_rig()
    r.s.permit(True, True, 16)
    r.pilot.st = "C"
    r.run(2 * safety.LOCK_TRAVEL_MS)     # waiting, lock not yet commanded
    r.hw.lock.set(True)
    r.run(safety.LOCK_TRAVEL_MS - 50)
    assert not r.s.faults(), "the travel time runs from the command"
    r.run(100)
    assert "lock" in r.s.faults() and r.s.blocked()


def test_lock_dropping_out_opens_the_relay_in_the_same_step():
    r = lock_rig()
    r.hw.lock.fb = True
    r.charging()
    r.hw.lock.fb = False           # forced open under load
    evs = r.s.step(r.now + 10)
    assert r.relay._closed is False
    assert ("relay", False) in evs and ("fault", "lock") in evs
    r.now += 10
    r.run(10000)
    assert r.relay._closed is False and "lock" in r.s.faults(), "held while still unlocked"
    r.hw.lock.fb = True            # locked again: the lock policy's 5 s, then energy again
    r.run(4900)
    assert r.relay._closed is False
    r.run(200)
    assert r.relay._closed is True and not r.s.faults()


def test_lock_fault_after_dropout_clears_on_unplug():
    r = lock_rig()
    r.hw.lock.fb = True
    r.charging()
    r.hw.lock.fb = False
    r.run(20)
    assert "lock" in r.s.faults() and r.relay._closed is False
    r.pilot.st = "A"
    r.run(5100)
    assert not r.s.faults()


def test_lock_without_feedback_does_not_gate():
    r = Rig()
    assert r.hw.lock.locked() is None      # hal.NoLock
    r.charging()
    assert r.relay._closed is True


def test_pp_no_cable_opens_in_the_same_step_permission_below_6a_waits():
    # hardware: the proximity pilot reads no cable -> no reaction time for the EV
    r = Rig()
    r.s.permit(True, True, None)   # no smart-charging limit: follow max_current
    r.pilot.st = "B"
    r.run(50)
    r.pilot.st = "C"
    r.run(30)
    assert r.relay._closed is True and r.pilot.current() == 32
    r.hw.max_current = 0
    r.s.step(r.now + 10)
    assert r.relay._closed is False and r.pilot.current() == 0
    # charging logic: a limit below 6 A is withdrawn permission, the EV gets its time
    q = Rig()
    q.charging(16)
    q.s.permit(True, True, 3)
    q.run(1000)
    assert q.relay._closed is True and q.pilot.current() == 0
    q.run(safety.STOP_REACTION_MS)
    assert q.relay._closed is False


def test_permit_without_limit_follows_the_evse_maximum_live():
    # card presented before the cable: the PP read 0 A when permission was given
    r = Rig(max_current=0)
    r.s.permit(True, True, None)
    r.pilot.st = "C"
    r.run(100)
    assert r.relay._closed is False and r.pilot.current() == 0
    r.hw.max_current = 20          # the cable is in: 20 A coding
    r.run(20)
    assert r.pilot.current() == 20 and r.relay._closed is True


def test_locked_charging_steps_do_not_allocate():
    _charging_steps_grow_at_most_64_bytes(lock=True)
