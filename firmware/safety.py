"""Per-EVSE safety state machine: decides the pilot offer and the relay, nothing else.

Used unchanged by the ESP32 board and by the simulator. It only reads the hardware bundle
(`hal.Evse`: pilot.state(), faults(), relay.feedback()) and never awaits anything, so a dead
network can not delay it.

API
    s = Safety(evse_hw, allow_ventilation=False)   # opens the relay at once
    s.permit(authorized, available, amps)          # from the charging logic, any time;
                                                   # amps None = evse_hw.max_current
    events = s.step(now_ms)                        # every 10 ms from firmware/stepper.py
    events = s.fail(now_ms)                        # the step raised: open, latch "internal"
    s.state(), s.relay_closed(), s.faults(), s.offered(), s.status()

`step()` returns a shared empty tuple when nothing changed, else a list of events:
    ("pilot", "A".."F")        debounced pilot state changed
    ("relay", True/False)      relay commanded closed/open
    ("offer", amps)            pilot offer changed (0 = no PWM)
    ("fault", name)            a fault became active (names from hal.FAULT_NAMES)
    ("fault_cleared", name)    it recovered (see the table below)

Relay rules: it closes only while the pilot is C (or D with ventilation allowed), the
charging logic permits (authorized, available, amps >= 6 after clamping to
evse_hw.max_current, re-read every step), the hardware allows energy (max_current >= 6 or
None), a lock with feedback reports locked, and no blocking fault is active.
It closes in the same step those hold (IEC 61851-1 allows 3 s after B->C). It opens in the
same step the EV leaves C, a blocking fault appears, the lock reports unlocked or the
hardware limit drops below 6 A; with a 10 ms period and the pilot driver's debounce this
stays well inside 100 ms.

Lock (evse_hw.lock.locked(): True/False, None = no feedback, which does not gate):
    relay open,   lock False     the relay waits. Only once the lock is commanded
                                 (evse_hw.lock.commanded() is True) and everything else
                                 is ready does LOCK_TRAVEL_MS run; then "lock" latches.
                                 Uncommanded (the charging side, on the event loop, has
                                 not got to it yet), the relay just waits: a held event
                                 loop is no lock fault
    relay closed, lock False     the relay opens in this step and "lock" latches; it stays
                                 until the lock reports locked again or the EV is unplugged
The charging logic locks before it permits and unlocks only once the relay is open.

Two ways energy is taken away, told apart by who says so:
    who                              how                         relay
    hardware: evse_hw.max_current    PP reads no cable (0 A),    opens in this step
              < 6 A                  short, invalid coding
    charging logic: permit() with    deauthorised, unavailable,  PWM stops, relay waits
              amps < 6               smart charging below 6 A    for the EV (see below)

Withdrawn permission (deauthorised, unavailable, amps < 6): the PWM stops at once (100 %
duty, state x1) and the relay stays closed until the EV answers by leaving C, at the latest
STOP_REACTION_MS (6 s, IEC 61851-1 Annex A: the EVSE opens if the EV does not react to
x2->x1). A lowered but still valid current only changes the duty cycle; the EV has 5 s
(CURRENT_REACTION_MS) to follow, which needs no relay action here.

Faults (board-reported through evse_hw.faults(), plus ones detected here):
    name       blocks  recovers when                                      detected by
    rcd        yes     input clear, then the EV is unplugged (state A)   board RCD input
    pilot      yes     pilot valid, then unplugged (state A)             E/F read here
    diode      yes     unplugged (state A)                               board pilot driver
    welding    yes     feedback shows open, then unplugged, +5 s        relay feedback here
    contactor  yes     30 s after the condition cleared                  relay feedback here
    overtemp   yes     60 s after the sensor is back below its limit     board sensor
    lock       yes     5 s after the lock reports the right position     board lock,
                       (here: locked again, or the EV unplugged)          lock feedback here
    meter      no      as soon as the meter answers again                board meter
    internal   yes     unplugged, then 10 s without another failure      Safety.fail
Unknown names block and recover 10 s after they clear.

Threads: step()/fail() run on the stepper's thread, the views on the event loop (no GIL on
the micropython unix port). The views therefore read only plain values and `_names`, a
tuple the stepper replaces (never mutates) when a fault latches or clears; the `_latched`
dict and `_own` set are touched by the stepper's thread alone. While a blocking fault is active the
pilot shows a steady +12 V (no PWM) so that the unplug (state A) can be seen.
"""
from firmware.compat import ticks_diff, ticks_ms

STOP_REACTION_MS = 6000
CURRENT_REACTION_MS = 5000
FEEDBACK_MS = 300        # contactor travel time before the auxiliary contact must agree
MIN_AMPS = 6
LOCK_TRAVEL_MS = 1000    # a commanded lock that has not confirmed by then is a fault

# name -> (blocks charging, needs replug, hold ms after the condition cleared)
POLICY = {
    "rcd": (True, True, 0),
    "pilot": (True, True, 0),
    "diode": (True, True, 0),
    "welding": (True, True, 5000),
    "contactor": (True, False, 30000),
    "overtemp": (True, False, 60000),
    "lock": (True, False, 5000),
    "meter": (False, False, 0),
    "internal": (True, True, 10000),
}
_DEFAULT_POLICY = (True, False, 10000)
_EMPTY = ()


class Safety:
    def __init__(self, evse_hw, allow_ventilation=False):
        self.hw = evse_hw
        self.allow_ventilation = allow_ventilation
        evse_hw.relay.set(False)
        self._closed = False
        self._relay_ms = ticks_ms()
        self._offer = 0
        evse_hw.pilot.offer(0)
        self._state = None
        self._auth = False
        self._avail = True
        self._amps = 0
        self._stop_ms = None     # when permission was withdrawn with the relay closed
        self._latched = {}       # name -> [cleared_since_ms or None, replugged]; stepper only
        self._names = ()         # the latched names as published to the other thread
        self._blocking = 0       # number of latched faults that block charging
        self._own = set()        # faults detected here (pilot, welding, contactor, lock)
        self._lock_wait = None   # since when the relay waits for a commanded lock to confirm
        self._lock_lost = False  # the lock failed us; cleared when locked again or at A

    # ---------------------------------------------------------------- inputs
    def permit(self, authorized, available, amps):
        # amps is the charging limit (the evse block's minimum over smart charging, local
        # and external limits). Called on the event loop: plain attribute stores that the
        # next step reads, so a new limit reaches the pilot within one PERIOD; a step that
        # falls between two stores runs once with the old amps, which is never more than
        # the clamp below allows
        self._auth = bool(authorized)
        self._avail = bool(available)
        self._amps = amps if amps is None else (amps or 0)

    # ---------------------------------------------------------------- views
    def state(self):
        return self._state

    def relay_closed(self):
        return self._closed

    def offered(self):
        return self._offer

    def faults(self):
        return list(self._names)

    def blocked(self):
        return self._blocking > 0

    def status(self):
        return {"pilot": self._state, "relay": self._closed, "offer": self._offer,
                "faults": self.faults(), "authorized": self._auth,
                "available": self._avail, "amps": self._amps}

    # ---------------------------------------------------------------- the step
    def step(self, now):
        hw = self.hw
        ev = None
        st = hw.pilot.state()
        if st != self._state:
            self._state = st
            ev = [("pilot", st)]

        lk = hw.lock.locked()
        self._detect(now, st, lk)
        raw = hw.faults()
        own = self._own
        if raw or own or self._latched:
            ev = self._faults(now, st, raw, own, ev)

        # The EVSE limit is re-read every step: a board lowers it when the proximity pilot
        # reports a weaker cable, or to 0 when no cable is inserted.
        amps = self._amps
        m = hw.max_current
        if amps is None:
            amps = 0 if m is None else m
        elif m is not None and amps > m:
            amps = m
        if amps < MIN_AMPS:
            amps = 0
        ev_ready = st == "C" or (st == "D" and self.allow_ventilation)
        permitted = self._auth and self._avail and amps > 0
        # The hardware takes the energy away (no cable, lock open): no reaction time for
        # the EV, unlike a permission withdrawn by the charging logic.
        cut = lk is False or (m is not None and m < MIN_AMPS)
        if self._blocking or not ev_ready or cut:
            want = False
            self._stop_ms = None
        elif permitted:
            want = True
            self._stop_ms = None
        elif self._closed:
            if self._stop_ms is None:
                self._stop_ms = now
            want = ticks_diff(now, self._stop_ms) < STOP_REACTION_MS
        else:
            want = False
        if lk is False and permitted and ev_ready and not self._blocking and \
                hw.lock.commanded():
            # everything else is ready and the lock was told to engage: its travel time runs
            if self._lock_wait is None:
                self._lock_wait = now
            elif ticks_diff(now, self._lock_wait) >= LOCK_TRAVEL_MS:
                self._lock_lost = True
        elif self._lock_wait is not None:
            self._lock_wait = None
        if want != self._closed:
            ev = self._set_relay(now, want, ev)

        # pilot offer
        offer = amps if (permitted and not self._blocking) else 0
        if offer != self._offer:
            hw.pilot.offer(offer)
            self._offer = offer
            if ev is None:
                ev = []
            ev.append(("offer", offer))
        return _EMPTY if ev is None else ev

    def fail(self, now, name="internal"):
        """The step (or the sampling before it) raised: open the relay, stop the PWM and
        latch the blocking fault `name` (kept while failures go on). Never raises."""
        ev = None
        try:
            self.hw.relay.set(False)
        except Exception:
            pass
        try:
            self.hw.pilot.offer(0)
        except Exception:
            pass
        if self._closed:
            self._closed = False
            self._relay_ms = now
            ev = [("relay", False)]
        self._stop_ms = None
        if self._offer:
            self._offer = 0
            ev = ev or []
            ev.append(("offer", 0))
        rec = self._latched.get(name)
        if rec is None:
            self._latched[name] = [None, False]
            self._names = tuple(self._latched)
            self._blocking += 1
            ev = ev or []
            ev.append(("fault", name))
        else:
            rec[0] = None
            rec[1] = False
        return _EMPTY if ev is None else ev

    def _set_relay(self, now, closed, ev):
        self.hw.relay.set(closed)
        self._closed = closed
        self._relay_ms = now
        if ev is None:
            ev = []
        ev.append(("relay", closed))
        return ev

    def _detect(self, now, st, lk):
        own = self._own
        # Safety never drives -12 V itself, so E or F always means a broken pilot circuit
        if st == "E" or st == "F":
            if "pilot" not in own:
                own.add("pilot")
        elif own and "pilot" in own:
            own.discard("pilot")
        # lock feedback gone while energised (forced, broken): latch before the relay logic
        # so that the relay opens in this very step
        if lk is False:
            if self._closed:
                self._lock_lost = True
        if self._lock_lost and (lk is not False or st == "A"):
            self._lock_lost = False
        lost = self._lock_lost
        if lost != ("lock" in own):
            own.add("lock") if lost else own.discard("lock")
        fb = self.hw.relay.feedback()
        if fb is None:
            return
        settled = ticks_diff(now, self._relay_ms) >= FEEDBACK_MS
        welded = settled and fb and not self._closed
        dropped = settled and (not fb) and self._closed
        if welded != ("welding" in own):
            own.add("welding") if welded else own.discard("welding")
        if dropped != ("contactor" in own):
            own.add("contactor") if dropped else own.discard("contactor")

    def _latch(self, now, src, ev):
        # new faults latch and, if blocking, open the relay in this very step
        latched = self._latched
        for name in src:
            rec = latched.get(name)
            if rec is None:
                latched[name] = [None, False]
                self._names = tuple(self._latched)
                if POLICY.get(name, _DEFAULT_POLICY)[0]:
                    self._blocking += 1
                    if self._closed:
                        ev = self._set_relay(now, False, ev)
                if ev is None:
                    ev = []
                ev.append(("fault", name))
            else:
                rec[0] = None
                rec[1] = False
        return ev

    def _faults(self, now, st, raw, own, ev):
        # two calls, not a loop over (raw, own): no tuple per 10 ms step while a fault lasts
        ev = self._latch(now, raw, ev)
        ev = self._latch(now, own, ev)
        latched = self._latched
        done = None
        for name in latched:
            if name in raw or name in own:
                continue
            rec = latched[name]
            if rec[0] is None:
                rec[0] = now
            if st == "A":
                rec[1] = True
            blocks, replug, hold = POLICY.get(name, _DEFAULT_POLICY)
            if (rec[1] or not replug) and ticks_diff(now, rec[0]) >= hold:
                if done is None:
                    done = []
                done.append(name)
        if done:
            for name in done:
                del latched[name]
            self._names = tuple(latched)
            for name in done:
                if POLICY.get(name, _DEFAULT_POLICY)[0]:
                    self._blocking -= 1
                if ev is None:
                    ev = []
                ev.append(("fault_cleared", name))
        return ev


# Event-loop stall monitor: [worst lateness of the event loop's wake-ups in ms, wake-ups].
# Whatever holds the loop without awaiting (a big report, a file rewrite, a DNS lookup)
# shows up here; the safety stepper runs apart and keeps its own figure (Stepper.late).
# The board's loop-heartbeat task feeds it; the console's `stall` command reads and resets it.
stall = [0, 0]
