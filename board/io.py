# Simple digital/analog I/O around the contactor: relay with optional auxiliary contact,
# RCD/RCM input with self-test, socket lock with feedback, NTC temperature sensor, and the
# energy manager's limit input.
import machine

from firmware.compat import sleep_ms, ticks_ms, ticks_diff


def _out(pin, active_low, on):
    return machine.Pin(pin, machine.Pin.OUT, value=(not on) if active_low else on)


def _in(pin):
    return None if pin is None else machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)


def _active(p, active_low):
    """A digital input's logical level; None without an input."""
    if p is None:
        return None
    v = p.value()
    return (not v) if active_low else bool(v)


def adc(pin):
    """An ADC on `pin`, attenuated for the full 0-3.3 V range where the port can."""
    a = machine.ADC(machine.Pin(pin))
    try:
        a.atten(machine.ADC.ATTN_11DB)
    except AttributeError:
        pass
    return a


class Relay:
    """hal.Relay. The output is driven to 'open' in the constructor."""

    def __init__(self, pin, active_low=False, feedback_pin=None, feedback_active_low=False):
        self._al = active_low
        self._pin = _out(pin, active_low, False)
        self._closed = False
        self._fb = _in(feedback_pin)
        self._fb_al = feedback_active_low

    def set(self, closed):
        closed = bool(closed)
        self._pin.value((not closed) if self._al else closed)
        self._closed = closed

    def closed(self):
        return self._closed

    def feedback(self):
        return _active(self._fb, self._fb_al)


class Rcd:
    """Residual-current monitor: trip output (input here) and optional test output."""

    def __init__(self, pin, active_low=True, test_pin=None):
        self._in = _in(pin)
        self._al = active_low
        self._test = None
        if test_pin is not None:
            self._test = machine.Pin(test_pin, machine.Pin.OUT, value=0)
        self.testing = False
        self.last_test = None  # True/False after a self-test

    def tripped(self):
        return _active(self._in, self._al)

    async def self_test(self, trip_ms=200, release_ms=1000):
        """Inject the test current; the monitor must trip, then release. Run it only with the
        relay open; the board hides the expected trip from the safety while testing."""
        if self._test is None:
            return None
        self.testing = True
        ok = False
        try:
            self._test.value(1)
            ok = await _wait(self.tripped, True, trip_ms)
            self._test.value(0)
            ok = ok and await _wait(self.tripped, False, release_ms)
        finally:
            self._test.value(0)
            self.testing = False
        self.last_test = ok
        return ok


async def _wait(fn, want, ms):
    t0 = ticks_ms()
    while fn() != want:
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await sleep_ms(5)
    return True


class Lock:
    """hal.Lock: one actuator output, optional feedback input (True = locked)."""

    def __init__(self, pin, active_low=False, feedback_pin=None, feedback_active_low=False):
        self._al = active_low
        self._pin = _out(pin, active_low, False)
        self._want = False
        self._since = ticks_ms()
        self._fb = _in(feedback_pin)
        self._fb_al = feedback_active_low

    def set(self, locked):
        locked = bool(locked)
        if locked != self._want:
            self._since = ticks_ms()
        self._want = locked
        self._pin.value((not locked) if self._al else locked)

    def locked(self):
        return _active(self._fb, self._fb_al)

    def commanded(self):
        return self._want

    def fault(self, now, travel_ms=1000):
        """Feedback disagrees with the command longer than the actuator travel time."""
        fb = self.locked()
        return fb is not None and fb != self._want and ticks_diff(now, self._since) > travel_ms


def _ln(x):
    """Natural log without `math` (not on the allowed-import list): scale into [0.5, 1),
    then the atanh series, which converges fast there."""
    k = 0
    while x >= 1.0:
        x *= 0.5
        k += 1
    while x < 0.5:
        x *= 2.0
        k -= 1
    y = (x - 1.0) / (x + 1.0)
    y2 = y * y
    term = y
    s = 0.0
    n = 1
    while n < 40:
        s += term / n
        term *= y2
        n += 2
    return 2.0 * s + k * 0.6931471805599453


class Temperature:
    """NTC to GND with a pull-up to 3.3 V; Beta equation. Over-temperature with hysteresis."""

    def __init__(self, pin, r25=10000, beta=3950, pullup_ohm=10000, supply_mv=3300,
                 limit_c=80, hysteresis_c=10):
        self._adc = adc(pin)
        self.r25 = r25
        self.beta = beta
        self.pullup = pullup_ohm
        self.supply_uv = supply_mv * 1000
        self.limit = limit_c
        self.hyst = hysteresis_c
        self.hot = False
        self.last_c = None

    def read_c(self):
        uv = self._adc.read_uv()
        if uv <= 0 or uv >= self.supply_uv:
            return None  # open or shorted sensor
        r = self.pullup * uv / (self.supply_uv - uv)
        t = 1.0 / (1.0 / 298.15 + _ln(r / self.r25) / self.beta) - 273.15
        self.last_c = t
        return t

    def over(self):
        """Update and return the over-temperature flag; a broken sensor counts as hot."""
        t = self.read_c()
        if t is None or t >= self.limit:
            self.hot = True
        elif t < self.limit - self.hyst:
            self.hot = False
        return self.hot


class LimitInput:
    """An energy manager's charging-limit signal (config key limit_input). read() gives
    the limit in amps, or None for no limit. Digital: `amps` while the input is active.
    Analog: 0..3.3 V at the ADC scaled to 0..full_scale_amps, in whole amps; the reading
    moves only once the signal is a quarter amp past a step edge, so noise does not toggle."""

    def __init__(self, kind, pin, active_low=True, amps=0.0, full_scale_amps=32.0, samples=8):
        self.kind = kind
        self.amps = amps
        self.full_scale = full_scale_amps
        self.samples = samples
        self._al = active_low
        self._last = None
        if kind == "digital":
            self._pin = _in(pin)
            self._adc = None
        else:
            self._pin = None
            self._adc = adc(pin)

    def read(self):
        if self._adc is None:
            return self.amps if _active(self._pin, self._al) else None
        n = self.samples
        raw = 0
        for _ in range(n):
            raw += self._adc.read_u16()
        a = raw * self.full_scale / (n * 65535.0)
        last = self._last
        # whole amps, never above the signal: down at once, up only a quarter amp past the
        # next step (the hysteresis keeps a noisy signal from toggling the PWM upwards)
        if last is None or a < last or a >= last + 1.25:
            last = float(int(a))
            self._last = last
        return last
