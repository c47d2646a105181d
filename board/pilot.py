# Control pilot (CP) and proximity pilot (PP) on ESP32.
#
# CP out: 1 kHz LEDC PWM into the +/-12 V op-amp stage. CP in: the pilot divided down to
# 0..3.3 V on an ADC1 pin (ADC2 is unusable while WiFi runs). MicroPython can not sample on
# a timer interrupt, so each `sample()` reads a burst spanning at least one PWM period and
# splits it at 0 V into the high phase (gives the state: 12/9/6/3/0 V) and the low phase
# (must sit at -12 V while the EV diode is present).
import machine

from board.io import adc
from firmware.compat import ticks_ms, ticks_diff

# Upper edges (volts) of the +side level per state, IEC 61851-1 nominal 12/9/6/3/0/-12 V
# with the decision points half-way between nominal levels.
_EDGES = ((10.5, "A"), (7.5, "B"), (4.5, "C"), (1.5, "D"), (-1.5, "E"))
# Two successive samples closer than this (volts) sit on a plateau, not on an edge or a
# spike: above what +/- 0.5 V of ADC noise makes between two samples (1 V), well below a
# state step (3 V).
FLAT_V = 1.5


def classify(high_v):
    """Pilot state from the +side level in volts."""
    for edge, st in _EDGES:
        if high_v > edge:
            return st
    return "F"


def duty_for(amps):
    """PWM duty in percent for an offer, IEC 61851-1 Table A.8.
    None -> 0 % (-12 V, state F), 0 -> 100 % (no PWM), else 6..80 A."""
    if amps is None:
        return 0.0
    if amps <= 0:
        return 100.0
    if amps < 6:
        amps = 6
    if amps > 80:
        amps = 80
    if amps <= 51:
        return amps / 0.6
    return amps / 2.5 + 64


def amps_for(duty):
    """Inverse of duty_for for 10..96 % (what an EV reads)."""
    if duty <= 85:
        return duty * 0.6
    return (duty - 64) * 2.5


class Pilot:
    """hal.Pilot on LEDC PWM + ADC1 bursts.

    cal = (raw_at_minus_12V, raw_at_plus_12V) from read_u16, measured per board.
    debounce: bursts a new state must persist; a drop to A (unplug) needs at most two."""

    def __init__(self, pwm_pin, adc_pin, cal=(2000, 62000), invert=False, samples=64,
                 debounce=3, diode_v=-10.5, freq=1000, max_age_ms=250):
        self._invert = invert
        self.max_age_ms = max_age_ms
        self._pwm = machine.PWM(machine.Pin(pwm_pin), freq=freq, duty_u16=self._u16(0))
        self._adc = adc(adc_pin)
        self._read = self._adc.read_u16  # bound once: binding per burst would allocate
        lo, hi = cal
        self._raw_m12 = lo
        self._v_per_raw = 24.0 / (hi - lo)
        self._raw_zero = self.raw_of(0.0)
        # thresholds in raw counts so that a burst needs no float arithmetic
        self._edges = tuple((self.raw_of(e), st) for e, st in _EDGES)
        self._diode_raw = self.raw_of(diode_v)
        self._flat = int(FLAT_V / self._v_per_raw)
        self.samples = samples
        self.debounce = debounce
        self._offer = 0
        self._state = "A"
        self._cand = "A"
        self._cand_n = 0
        self._diode_n = 0
        self._diode_bad = False
        self.high_raw = self.low_raw = self.raw_of(12.0)
        self.min_raw = self.max_raw = self.high_raw
        self.last_ms = ticks_ms()
        self.offer(0)

    def _u16(self, pct):
        d = int(pct * 65535 / 100 + 0.5)
        return 65535 - d if self._invert else d

    # ------------------------------------------------------------------ hal.Pilot
    def offer(self, amps):
        self._offer = amps
        self._pwm.duty_u16(self._u16(duty_for(amps)))

    def offered(self):
        return self._offer

    def state(self):
        # A stalled sampling task must not leave a stale "C" behind: report F (pilot fault).
        if ticks_diff(ticks_ms(), self.last_ms) > self.max_age_ms:
            return "F"
        return self._state

    def diode_fault(self):
        return self._diode_bad

    # ------------------------------------------------------------------ sampling
    def volts(self, raw):
        return (raw - self._raw_m12) * self._v_per_raw - 12.0

    def raw_of(self, volts):
        return self._raw_m12 + int((volts + 12.0) / self._v_per_raw)

    @property
    def high_v(self):
        return self.volts(self.high_raw)

    @property
    def low_v(self):
        return self.volts(self.low_raw)

    def _classify_raw(self, r):
        for edge, st in self._edges:
            if r > edge:
                return st
        return "F"

    def sample(self):
        """Read one burst and update the debounced state. Allocation-free.

        A level is taken only from samples that agree with the one before (within
        FLAT_V, both on the same side of 0 V): samples on a rising or falling edge (finite
        rise time, the line's and the ADC filter's RC) and isolated spikes differ from
        their neighbour and are left out, so at 10 % duty or 96 % duty the few samples of
        the short phase are not dragged towards the other level."""
        read = self._read
        zero = self._raw_zero
        tol = self._flat
        ntol = -tol
        hi_sum = hi_n = lo_sum = lo_n = 0
        hp_sum = hp_n = lp_sum = lp_n = 0   # the flat ("plateau") samples of each side
        run = 0                             # successive flat samples so far
        h1 = h2 = -1                        # the two highest +side samples
        mx = 0
        mn = 65535
        prev = -65536
        n = self.samples
        while n:  # a while loop: range() would allocate an iterator per burst
            n -= 1
            v = read()
            if v > mx:
                mx = v
            if v < mn:
                mn = v
            d = v - prev
            if v >= zero:
                hi_sum += v
                hi_n += 1
                if v > h2:
                    if v > h1:
                        h2 = h1
                        h1 = v
                    else:
                        h2 = v
                if ntol <= d <= tol and prev >= zero:
                    # the higher of the pair: on a shoulder of the phase the other one
                    # has started down the edge already
                    hp_sum += v if d > 0 else prev
                    hp_n += 1
                    run += 1
                else:
                    run = 0
            else:
                lo_sum += v
                lo_n += 1
                if ntol <= d <= tol and prev < zero:
                    run += 1
                    # three in a row: two samples either side of the trough of a -12 V
                    # phase too short to settle (96 % duty) agree, but are not a plateau
                    if run >= 2:
                        lp_sum += v if d < 0 else prev
                        lp_n += 1
                else:
                    run = 0
            prev = v
        self.min_raw = mn
        self.max_raw = mx
        if hp_n:
            self.high_raw = hp_sum // hp_n
        elif hi_n and self._offer:
            # PWM runs but no two +side samples in a row agree (10 % duty sampled coarsely:
            # one sample per phase sits on the edge). The second highest: edges only pull
            # down, and one spike is left out; never the mean, which an edge drags from B
            # down to C.
            self.high_raw = h2 if hi_n >= 2 else h1
        elif lp_n:
            self.high_raw = lp_sum // lp_n   # steady level below 0 V: F, or E
        else:
            self.high_raw = hi_sum // hi_n if hi_n else (lo_sum // lo_n if lo_n else mx)
        if lp_n:
            self.low_raw = lp_sum // lp_n
        else:
            self.low_raw = lo_sum // lo_n if lo_n else mn
        self._update(self._classify_raw(self.high_raw))
        self.last_ms = ticks_ms()
        # Diode check needs a flat -side: only while PWM runs and a vehicle is connected. A
        # burst without one (96 % duty: the -12 V phase is shorter than the fall time) can
        # not tell, so it neither counts towards the fault nor clears it.
        pwm_on = self._offer is not None and self._offer > 0
        if pwm_on and lp_n and self._state in ("B", "C", "D"):
            if self.low_raw > self._diode_raw:
                self._diode_n += 1
                if self._diode_n >= self.debounce:
                    self._diode_bad = True
            else:
                self._diode_n = 0
        if self._state == "A":
            self._diode_n = 0
            self._diode_bad = False
        return self._state

    def _update(self, st):
        if st == self._state:
            self._cand_n = 0
            return
        if st != self._cand:
            self._cand = st
            self._cand_n = 1
        else:
            self._cand_n += 1
        # A drop to A (unplug) needs two bursts, not `debounce`: still faster than any other
        # change, but one glitching burst neither opens the relay under load nor ends the
        # transaction as an EV-side disconnect.
        need = self.debounce
        if st == "A" and need > 2:
            need = 2
        if self._cand_n >= need:
            self._state = st
            self._cand_n = 0


# Cable coding resistor between PP and PE (IEC 61851-1 Annex B): the decision points sit
# between the nominal values 100/220/680/1500 ohm; above 2700 ohm no cable is inserted.
_PP_RANGES = ((50, None), (160, 63), (450, 32), (1100, 20), (2700, 13))


def cable_amps(ohms):
    """Cable rating in A for a PP resistance; 0 = no cable, None = short/invalid."""
    for edge, amps in _PP_RANGES:
        if ohms < edge:
            return amps
    return 0


class Proximity:
    """PP read through a pull-up `pullup_ohm` to `supply_mv` on an ADC1 pin.

    sample() is for the fast path: one ADC read compared against the decision points
    converted to microvolts at start-up (no float, no allocation), debounced over
    `debounce` equal readings. `cable` holds the result: amps, 0 = no cable or a short."""

    def __init__(self, adc_pin, pullup_ohm=1000, supply_mv=3300, debounce=2):
        self._adc = adc(adc_pin)
        self._read = self._adc.read_uv  # bound once: binding per read would allocate
        self.pullup = pullup_ohm
        self.supply_uv = supply_mv * 1000
        # ohms < edge  <=>  uv < edge * supply / (pullup + edge), rounded up: exact on ints
        self._uv_edges = tuple((-(-edge * self.supply_uv // (pullup_ohm + edge)), amps or 0)
                               for edge, amps in _PP_RANGES)
        self.debounce = debounce
        self.cable = self._classify(self._read())
        self._cand = self.cable
        self._cand_n = 0

    def ohms(self):
        uv = self._adc.read_uv()
        if uv >= self.supply_uv:
            return 1e9
        return self.pullup * uv / (self.supply_uv - uv)

    def amps(self):
        return cable_amps(self.ohms())

    def _classify(self, uv):
        for edge, amps in self._uv_edges:
            if uv < edge:
                return amps
        return 0

    def sample(self):
        """One reading; returns the debounced cable rating in A (0 = none)."""
        a = self._classify(self._read())
        if a == self.cable:
            self._cand_n = 0
        elif a != self._cand:
            self._cand = a
            self._cand_n = 1
        else:
            self._cand_n += 1
        if self._cand_n >= self.debounce:
            self.cable = a
            self._cand_n = 0
        return self.cable
