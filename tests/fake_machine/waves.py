"""Synthetic control-pilot waveforms as seen by the ADC after the divider."""
import math

CAL = (2000, 62000)   # raw at -12 V and +12 V


class Lcg:
    """Deterministic noise on both interpreters."""

    def __init__(self, seed=12345):
        self.x = seed

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x


def raw(volts, cal=CAL):
    lo, hi = cal
    return int(lo + (volts + 12.0) * (hi - lo) / 24.0)


class PilotWave:
    """1 kHz square wave between `high_v` and `low_v` at `duty` percent, sampled every
    `step_us`, with uniform noise of +/- `noise_v` and an occasional spike.

    tau_us > 0 gives the edges a finite rise and fall time: a first-order response with
    that time constant (10-90 % rise = 2.2 tau), as the cable capacitance, the EV's input
    and the ADC's RC filter make it. The transient is the periodic steady state, so with a
    short phase the level never reaches its plateau, as on a real line. offset_us shifts
    where the first sample falls in the period."""

    def __init__(self, high_v=12.0, low_v=-12.0, duty=100.0, noise_v=0.3, step_us=23,
                 spike_every=0, seed=1, tau_us=0.0, offset_us=0):
        self.high_v = high_v
        self.low_v = low_v
        self.duty = duty
        self.noise_v = noise_v
        self.step_us = step_us
        self.spike_every = spike_every
        self.tau_us = tau_us
        self.t_us = offset_us % 1000
        self.n = 0
        self.rng = Lcg(seed)
        self.high_us = duty * 10
        if tau_us > 0 and 0 < duty < 100:
            a = math.exp(-self.high_us / tau_us)
            b = math.exp(-(1000 - self.high_us) / tau_us)
            # level at the rising edge (x0) and at the falling edge (x1), steady state
            self.x0 = (low_v * (1 - b) + high_v * b * (1 - a)) / (1 - a * b)
            self.x1 = high_v + (self.x0 - high_v) * a

    def level(self, t_us):
        """Noise-free level at `t_us` into the period."""
        hi = t_us < self.high_us
        if self.tau_us <= 0 or self.duty <= 0 or self.duty >= 100:
            return self.high_v if hi else self.low_v
        if hi:
            return self.high_v + (self.x0 - self.high_v) * math.exp(-t_us / self.tau_us)
        return self.low_v + (self.x1 - self.low_v) * math.exp(-(t_us - self.high_us) / self.tau_us)

    def __call__(self):
        self.t_us = (self.t_us + self.step_us) % 1000
        self.n += 1
        v = self.level(self.t_us)
        r = self.rng.next()
        v += ((r % 2001) - 1000) / 1000.0 * self.noise_v
        if self.spike_every and self.n % self.spike_every == 0:
            v = 12.0 if (r >> 8) & 1 else -12.0
        return raw(v)


# +side level per state when the EV diode is present; the -side without a diode follows
# the EV resistor through the 1 kOhm source resistor.
LEVEL = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0, "F": -12.0}
NO_DIODE_LOW = {"B": -9.0, "C": -6.0, "D": -3.0}
