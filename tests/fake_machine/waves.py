"""Synthetic control-pilot waveforms as seen by the ADC after the divider."""

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
    `step_us`, with uniform noise of +/- `noise_v` and an occasional spike."""

    def __init__(self, high_v=12.0, low_v=-12.0, duty=100.0, noise_v=0.3, step_us=23,
                 spike_every=0, seed=1):
        self.high_v = high_v
        self.low_v = low_v
        self.duty = duty
        self.noise_v = noise_v
        self.step_us = step_us
        self.spike_every = spike_every
        self.t_us = 0
        self.n = 0
        self.rng = Lcg(seed)

    def __call__(self):
        self.t_us = (self.t_us + self.step_us) % 1000
        self.n += 1
        v = self.high_v if self.t_us < self.duty * 10 else self.low_v
        r = self.rng.next()
        v += ((r % 2001) - 1000) / 1000.0 * self.noise_v
        if self.spike_every and self.n % self.spike_every == 0:
            v = 12.0 if (r >> 8) & 1 else -12.0
        return raw(v)


# +side level per state when the EV diode is present; the -side without a diode follows
# the EV resistor through the 1 kOhm source resistor.
LEVEL = {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0, "F": -12.0}
NO_DIODE_LOW = {"B": -9.0, "C": -6.0, "D": -3.0}
