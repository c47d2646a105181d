# Simulated charger hardware implementing firmware/hal.py. Runs on CPython and MicroPython, so
# the simulator exercises the same core on both. The console drives it: plug/unplug, EV pilot
# state, card taps, EV power draw, faults.
from firmware import hal, compat
from firmware.saved_energy import SavedEnergy
from firmware.storage import Store

try:
    import _thread
except ImportError:
    _thread = None

DEFAULT_EV_POWER_W = 11000.0  # what the simulated EV draws while the relay is closed


class SimPilot(hal.Pilot):
    """The simulated EV behaves like a real one: asked to be in C, it stays in B until the
    EVSE offers current (PWM), and drops back to B when the offer is withdrawn. A `stubborn`
    EV ignores the withdrawal: once charging it stays in C (the EVSE must open the relay
    after IEC 61851-1's reaction time)."""

    def __init__(self):
        self.offered = None  # amps offered by the EVSE (None = not available / F)
        self.ev_state = "A"
        self.stubborn = False
        self._drawing = False  # in C with an offer since the last plug-in

    def offer(self, amps):
        self.offered = amps

    def state(self):
        if self.ev_state != "C":
            self._drawing = False
            return self.ev_state
        if self.offered:
            self._drawing = True
        elif not (self.stubborn and self._drawing):
            return "B"
        return "C"


class SimRelay(hal.Relay):
    def __init__(self):
        self._closed = False
        self.welded = False
        self.on_switch = None  # called just before the contacts change (the meter settles up)
        # held around that call and the switch (the meter's): the safety stepper switches
        # on its thread while the event loop reads the meter
        self.lock = None

    def set(self, closed):
        closed = bool(closed)
        lock = self.lock
        if lock is not None:
            lock.acquire()
        try:
            if not self.welded and closed != self._closed:
                if self.on_switch is not None:
                    self.on_switch()
                self._closed = closed
        finally:
            if lock is not None:
                lock.release()

    def closed(self):
        return self._closed

    def feedback(self):
        return self._closed


class SimMeter(hal.Meter):
    """Integrates the EV's power draw while the relay is closed. Like a real meter it keeps
    its register across power cuts, in `saved` (a SavedEnergy): written about once per
    10 Wh and when the relay opens, never beyond the last saved mark, so the register is
    monotonic across SIGKILLs of the simulator too (a kill may add up to 10 Wh)."""

    def __init__(self, relay, voltage=230.0, phases=3, saved=None):
        self.relay = relay
        # energy up to the very switching instant, with the relay's lock held: each interval
        # is integrated once, by one thread, with the relay state it really had
        relay.on_switch = self._integrate
        self._lock = relay.lock = _thread.allocate_lock() if _thread is not None else None
        self.voltage = voltage
        self.phases = phases
        self.ev_power_w = DEFAULT_EV_POWER_W
        self.saved = saved
        self._wh = saved.start_wh if saved is not None else 0.0
        self._t = compat.ticks_ms()

    def _integrate(self):
        # caller holds self._lock (SimRelay.set or energy_wh)
        t = compat.ticks_ms()
        dt = compat.ticks_diff(t, self._t)
        self._t = t
        if dt > 0 and self.relay.closed() and self.ev_power_w > 0:
            self._wh += self.ev_power_w * dt / 3600000.0

    def energy_wh(self):
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            self._integrate()
            wh = self._wh
            closed = self.relay.closed()
        finally:
            if lock is not None:
                lock.release()
        if self.saved is not None:
            self.saved.keep(wh, closed)  # saves before the value is handed out (not locked:
            # a flash write must not hold up the stepper's next switch)
        return wh

    def power_w(self):
        return self.ev_power_w if self.relay.closed() else 0.0

    def current_a(self):
        p = self.power_w()
        i = p / (self.voltage * self.phases) if self.phases else 0.0
        return (i,) * self.phases

    def voltage_v(self):
        return (self.voltage,) * self.phases


class SimLock(hal.Lock):
    """Socket lock with feedback that follows the command at once. `broken` (console
    `lock N broken`): forced open, the feedback reads unlocked whatever is commanded, until
    `lock N ok`; safety must then open the relay and latch the "lock" fault."""

    def __init__(self):
        self._want = False
        self.broken = False

    def set(self, locked):
        self._want = bool(locked)

    def locked(self):
        return False if self.broken else self._want

    def commanded(self):
        return self._want


class SimReader(hal.Reader):
    def __init__(self):
        self.pending = []

    def tap(self, token, token_type="ISO14443"):
        self.pending.append((token, token_type))

    def poll(self):
        return self.pending.pop(0) if self.pending else None


class SimBoard(hal.Board):
    model = "PySim"
    vendor = "OpenSource"

    def __init__(self, n_evses=1, data_dir=".sim-data", serial=None):
        store = Store(data_dir)
        evses = []
        for i in range(1, n_evses + 1):
            relay = SimRelay()
            meter = SimMeter(relay, saved=SavedEnergy(store, "sim-meter%d.json" % i))
            evses.append(hal.Evse(i, SimPilot(), relay, meter, SimLock()))
        hal.Board.__init__(self, evses, SimReader(), data_dir)
        self.serial = serial
        self.reboot_requested = False
        # the simulated limit input (console `extlimit`), like board/device.py's: evse id
        # (0 = station-wide) -> amps it reads, None = no limit
        self.limit_input = {}
        self._limit_cb = None

    def attach_limits(self, cb):
        """The evse block takes the input's readings (again after an in-process restart)."""
        self._limit_cb = cb
        for evse_id in self.limit_input:
            cb(evse_id, self.limit_input[evse_id])

    def set_limit_input(self, evse_id, amps):
        self.limit_input[evse_id] = amps
        if self._limit_cb is not None:
            self._limit_cb(evse_id, amps)

    def reboot(self):
        # The simulator restarts the station in the same process (see host/sim.py).
        self.reboot_requested = True
