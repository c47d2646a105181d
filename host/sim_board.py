# Simulated charger hardware implementing firmware/hal.py. Runs on CPython and MicroPython, so
# the simulator exercises the same core on both. The console drives it: plug/unplug, EV pilot
# state, card taps, EV power draw, faults.
from firmware import hal, compat


class SimPilot(hal.Pilot):
    def __init__(self):
        self.offered = None  # amps offered by the EVSE (None = not available / F)
        self.ev_state = "A"

    def offer(self, amps):
        self.offered = amps

    def state(self):
        return self.ev_state


class SimRelay(hal.Relay):
    def __init__(self):
        self._closed = False
        self.welded = False

    def set(self, closed):
        if not self.welded:
            self._closed = bool(closed)

    def closed(self):
        return self._closed

    def feedback(self):
        return self._closed


class SimMeter(hal.Meter):
    """Integrates the EV's power draw while the relay is closed; persists nothing itself (the
    register is restored from the station's own records after a restart)."""

    def __init__(self, relay, voltage=230.0, phases=3):
        self.relay = relay
        self.voltage = voltage
        self.phases = phases
        self.ev_power_w = 0.0
        self._wh = 0.0
        self._t = compat.ticks_ms()

    def _integrate(self):
        t = compat.ticks_ms()
        dt = compat.ticks_diff(t, self._t)
        self._t = t
        if dt > 0 and self.relay.closed():
            self._wh += self.ev_power_w * dt / 3600000.0

    def set_register(self, wh):
        self._integrate()
        if wh > self._wh:
            self._wh = wh

    def energy_wh(self):
        self._integrate()
        return self._wh

    def power_w(self):
        return self.ev_power_w if self.relay.closed() else 0.0

    def current_a(self):
        p = self.power_w()
        i = p / (self.voltage * self.phases) if self.phases else 0.0
        return (i,) * self.phases

    def voltage_v(self):
        return (self.voltage,) * self.phases


class SimLock(hal.Lock):
    def __init__(self):
        self._locked = False
        self.broken = False

    def set(self, locked):
        if not self.broken:
            self._locked = bool(locked)

    def locked(self):
        return self._locked


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
        evses = []
        for i in range(1, n_evses + 1):
            relay = SimRelay()
            evses.append(hal.Evse(i, SimPilot(), relay, SimMeter(relay), SimLock()))
        hal.Board.__init__(self, evses, SimReader(), data_dir)
        self.serial = serial
        self.reboot_requested = False

    def reboot(self):
        # The simulator restarts the station in the same process (see host/sim.py).
        self.reboot_requested = True
