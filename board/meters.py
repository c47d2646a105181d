# Energy meters implementing hal.Meter: Eastron SDM120/SDM630 over Modbus RTU, S0 pulse
# input, and an estimate from the offered current when nothing is fitted. Each caches its
# figures; `async update()` (called by the board's poll task) refreshes them, and
# `fault()` tells the board whether to report "meter".
import machine

from board.modbus import MeterError, float_at
from firmware.compat import ticks_ms, ticks_diff
from firmware.hal import Meter

# Input registers (function 04), float32 big-endian. (start, count) blocks per model.
SDM = {
    # model: (volts/amps block start, count, power reg, energy reg, phases)
    "SDM120": (0x00, 8, 0x0C, 0x48, 1),    # V@0, I@6; P@12; import kWh@72
    "SDM630": (0x00, 12, 0x34, 0x48, 3),   # V1-3@0..4, I1-3@6..10; P total@52; kWh@72
}


class SdmMeter(Meter):
    def __init__(self, bus, model="SDM630", addr=1, fail_after=3):
        if model not in SDM:
            raise ValueError("meter model %r not one of %s" % (model, ", ".join(SDM)))
        self.bus = bus
        self.addr = addr
        self._map = SDM[model]
        self.model = model
        self._wh = 0.0
        self._w = 0.0
        self._v = None
        self._a = None
        self.fail_after = fail_after
        self.failures = 0
        self.last_error = None

    async def update(self):
        blk, n, p_reg, e_reg, ph = self._map
        try:
            d = await self.bus.read_input(self.addr, blk, n)
            if ph == 1:
                v = (float_at(d, 0),)
                a = (float_at(d, 6),)
            else:
                v = (float_at(d, 0), float_at(d, 2), float_at(d, 4))
                a = (float_at(d, 6), float_at(d, 8), float_at(d, 10))
            d = await self.bus.read_input(self.addr, p_reg, 2)
            w = float_at(d, 0)
            d = await self.bus.read_input(self.addr, e_reg, 2)
            wh = float_at(d, 0) * 1000.0
        except MeterError as e:
            self.failures += 1
            self.last_error = e.args[0]
            return False
        self._v, self._a, self._w = v, a, w
        if wh >= self._wh:  # the register never runs backwards; ignore a glitch
            self._wh = wh
        self.failures = 0
        return True

    def fault(self):
        return self.failures >= self.fail_after

    def energy_wh(self):
        return self._wh

    def power_w(self):
        return self._w

    def current_a(self):
        return self._a

    def voltage_v(self):
        return self._v


class _Kept(Meter):
    """A register counted in RAM (S0 pulses, the estimate), kept across reboots in `saved`
    (a firmware.saved_energy.SavedEnergy): the meter starts from there and its update()
    saves about once per 10 Wh and when `relay` opens. Without `saved` it starts at 0 on
    every boot (tests)."""

    def __init__(self, saved, relay):
        self.saved = saved
        self.relay = relay
        self.start_wh = saved.start_wh if saved is not None else 0.0
        self.last_error = None

    def _keep(self, wh):
        """From update(): record the register `wh`; False when the save failed."""
        if self.saved is not None:
            # the flash write happens here, in the poll task, never in an IRQ or a read
            try:
                self.saved.keep(wh, self.relay is None or self.relay.closed())
            except OSError as e:
                # flash full or failing: the register stops at the saved mark; say so
                self.last_error = "save: %s" % e
                return False
        self.last_error = None
        return True

    def _out(self, wh):
        # energy counted past the saved mark shows once update() has moved the mark
        return wh if self.saved is None else self.saved.cap(wh)

    def fault(self):
        return self.last_error is not None


_WRAP = 0x3FFFFFFF   # the IRQ's pulse count wraps here: a small int, no allocation in an ISR
_units = [0]         # next PCNT unit to hand out (one per S0 meter)


class S0Meter(_Kept):
    """Pulse output (DIN 43864 / IEC 62053-31), counted without ever reading the pin late:
    - by the ESP32 pulse counter (machine.Counter, MicroPython >= 1.25) where the firmware
      has it: the hardware counts while the CPU is busy or the event loop stalls; its glitch
      filter is at most ~13 us, so bounce is also bounded by the rate rule below;
    - else on the pin IRQ's `edge` itself (a hard IRQ where the port has one, timestamped
      at the edge): an edge counts when it comes at least 2 x min_pulse_ms after the last
      counted one (a valid pulse is >= min_pulse_ms on and as long off), so bounce on either
      transition is rejected.
    update() takes the pulses counted since its last call; power comes from the interval
    between counted pulses. The register is kept in `saved` (see _Kept)."""

    def __init__(self, pin, pulses_per_kwh=1000, min_pulse_ms=30, saved=None, relay=None,
                 edge="falling"):
        _Kept.__init__(self, saved, relay)
        self.pin = machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)
        self.wh_per_pulse = 1000.0 / pulses_per_kwh
        self.min_pulse_ms = min_pulse_ms
        self._dead = 2 * min_pulse_ms
        self.count = 0          # pulses taken into the register since boot
        self.rejected = 0       # edges refused as bounce
        self._n = 0             # IRQ path: pulses counted by the handler (wraps at _WRAP)
        self._seen = 0          # ... of which update() has taken
        self._t_edge = None     # ms of the last counted edge (IRQ path)
        self._tc = None         # ms of the last pulse the power figure is based on
        self._w = 0.0
        self._wmax = 0.0
        self._t_upd = None
        self._ctr = None
        ctr = getattr(machine, "Counter", None)
        if ctr is not None:
            try:
                self._ctr = ctr(_units[0], self.pin, filter_ns=min_pulse_ms * 1000000,
                                edge=ctr.RISING if edge == "rising" else ctr.FALLING)
                _units[0] += 1
            except (ValueError, OSError, TypeError):
                self._ctr = None    # no unit left: count in the IRQ
        if self._ctr is None:
            trig = machine.Pin.IRQ_RISING if edge == "rising" else machine.Pin.IRQ_FALLING
            try:
                self.pin.irq(self._edge, trig, hard=True)
            except (TypeError, ValueError):
                self.pin.irq(self._edge, trig)
        self.mode = "pcnt" if self._ctr is not None else "irq"

    def _edge(self, pin):
        # the IRQ itself is the pulse: no pin.value() read, no allocation (hard IRQ safe)
        now = ticks_ms()
        t = self._t_edge
        if t is not None and 0 <= ticks_diff(now, t) < self._dead:
            self.rejected += 1
            return
        self._t_edge = now
        self._n = (self._n + 1) & _WRAP

    def _take(self, now):
        """(new pulses, ms of the last one) since the previous call."""
        if self._ctr is not None:
            n = self._ctr.value(0)      # read and zero in one step: no count is skipped
            # a conforming meter gives at most one pulse per 2 x min_pulse_ms
            t = self._t_upd
            most = n if t is None else ticks_diff(now, t) // self._dead + 1
            if n > most:
                self.rejected += n - most
                n = most
            return (n if n > 0 else 0), now
        n = (self._n - self._seen) & _WRAP
        self._seen = (self._seen + n) & _WRAP
        return n, self._t_edge

    async def update(self, now=None):
        now = ticks_ms() if now is None else now
        n, t = self._take(now)
        self._t_upd = now
        if n:
            self.count += n
            if self._tc is not None and t is not None:
                span = ticks_diff(t, self._tc)
                self._wmax = n * self.wh_per_pulse * 3600000.0 / span if span > 0 else 0.0
            self._tc = t
        if self._tc is not None:
            # power decays once pulses stop coming as fast as before
            since = ticks_diff(now, self._tc)
            w = self.wh_per_pulse * 3600000.0 / since if since > 0 else self._wmax
            self._w = w if w < self._wmax else self._wmax
        return self._keep(self._counted())

    def _counted(self):
        return self.start_wh + self.count * self.wh_per_pulse

    def energy_wh(self):
        return self._out(self._counted())

    def power_w(self):
        return self._w


class EstimatedMeter(_Kept):
    """No meter fitted: power = offered current x nominal voltage x phases while the relay
    is closed, integrated over time. Flagged estimated() so nothing bills from it. The
    integral is kept in `saved` like the S0 register (see _Kept), so a meterStart after a
    reboot is never below a reading reported before it."""

    def __init__(self, pilot, relay, phases=3, volts=230.0, saved=None):
        _Kept.__init__(self, saved, relay)
        self.pilot = pilot
        self.phases = phases
        self.volts = volts
        # counted since boot in whole mWh plus a remainder in W*ms, all ints: adding small
        # float increments to a large register loses them with the ESP32's 32-bit floats
        self._mwh = 0
        self._rest = 0
        self._w = 0
        self._t = ticks_ms()

    async def update(self, now=None):
        now = ticks_ms() if now is None else now
        dt = ticks_diff(now, self._t)
        self._t = now
        if dt > 0:
            e = self._w * dt + self._rest
            self._mwh += e // 3600
            self._rest = e % 3600
        amps = self.pilot.offered() if self.relay.closed() else 0
        self._w = int((amps or 0) * self.volts * self.phases)
        return self._keep(self._wh())

    def _wh(self):
        return self.start_wh + self._mwh / 1000

    def energy_wh(self):
        return self._out(self._wh())

    def power_w(self):
        return self._w

    def current_a(self):
        a = self.pilot.offered() if self.relay.closed() else 0
        return (float(a or 0),) * self.phases

    def voltage_v(self):
        return (self.volts,) * self.phases

    def estimated(self):
        return True
