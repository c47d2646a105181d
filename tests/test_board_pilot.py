# Control/proximity pilot driver on the fake `machine`: synthetic noisy waveforms ->
# detected states, diode check, debounce. Portable (pytest and micropython).
from fake_machine import portable  # noqa: F401  (puts the fake machine on sys.path)
import machine
from fake_machine.waves import PilotWave, LEVEL, NO_DIODE_LOW, CAL

from board import pilot as P


def make(**kw):
    machine.reset_all()
    p = P.Pilot(25, 36, cal=CAL, **kw)
    adc = machine.created[("adc", 36)]
    pwm = machine.created[("pwm", 25)]
    return p, adc, pwm


def settle(p, n=5):
    for _ in range(n):
        p.sample()
    return p.state()


def test_duty_cycle_per_iec_61851_table():
    assert abs(P.duty_for(6) - 10.0) < 1e-6
    assert abs(P.duty_for(32) - 53.333) < 0.01
    assert abs(P.duty_for(51) - 85.0) < 1e-6
    assert abs(P.duty_for(63) - 89.2) < 1e-6
    assert P.duty_for(0) == 100.0 and P.duty_for(None) == 0.0
    assert P.duty_for(3) == P.duty_for(6)
    for a in (6, 10, 13, 16, 20, 32, 40, 51, 63, 80):
        assert abs(P.amps_for(P.duty_for(a)) - a) < 1e-6, a


def test_pwm_output_follows_offer():
    p, adc, pwm = make()
    assert pwm.freq() == 1000
    assert pwm.duty_u16() == 65535, "boot: steady +12 V"
    p.offer(16)
    assert abs(pwm.duty_u16() - 65535 * 16 / 0.6 / 100) <= 1
    p.offer(None)
    assert pwm.duty_u16() == 0
    q, _, pwm2 = make(invert=True)
    q.offer(0)
    assert pwm2.duty_u16() == 0


def test_classify_levels():
    for st, v in LEVEL.items():
        assert P.classify(v) == st
    assert P.classify(8.0) == "B" and P.classify(5.0) == "C" and P.classify(11.0) == "A"


def test_states_from_noisy_waveforms_with_pwm():
    for amps, duty in ((16, P.duty_for(16)), (6, 10.0), (63, P.duty_for(63))):
        for st in ("B", "C", "D"):
            p, adc, _ = make()
            p.offer(amps)
            adc.source = PilotWave(LEVEL[st], -12.0, duty, noise_v=0.4, seed=amps)
            assert settle(p) == st, (amps, st, p.high_v)
            assert not p.diode_fault()
            assert p.low_v < -11.0


def test_states_without_pwm_and_error_states():
    for st in ("A", "B", "C", "E", "F"):
        p, adc, _ = make()
        adc.source = PilotWave(LEVEL[st], -12.0, 100.0 if st != "F" else 0.0, noise_v=0.3)
        assert settle(p) == st, (st, p.high_v)


def test_noise_spikes_do_not_change_state():
    p, adc, _ = make(samples=64)
    p.offer(32)
    adc.source = PilotWave(6.0, -12.0, P.duty_for(32), noise_v=0.5, spike_every=13)
    for _ in range(50):
        p.sample()
        assert p.state() in ("A", "C")
    assert p.state() == "C"


def test_missing_diode_detected_only_with_pwm():
    for st in ("B", "C"):
        p, adc, _ = make()
        p.offer(16)
        adc.source = PilotWave(LEVEL[st], NO_DIODE_LOW[st], P.duty_for(16), noise_v=0.3)
        settle(p, 2)
        assert not p.diode_fault(), "debounced"
        settle(p, 3)
        assert p.state() == st and p.diode_fault(), st
        # unplug clears it
        adc.source = PilotWave(12.0, -12.0, P.duty_for(16))
        p.sample()
        assert p.state() == "A" and not p.diode_fault()
    p, adc, _ = make()
    p.offer(0)
    adc.source = PilotWave(9.0, -9.0, 100.0)
    settle(p, 6)
    assert p.state() == "B" and not p.diode_fault()


def test_debounce_counts_bursts_and_unplug_is_immediate():
    p, adc, _ = make(debounce=3)
    p.offer(16)
    d = P.duty_for(16)
    adc.source = PilotWave(9.0, -12.0, d)
    settle(p)
    assert p.state() == "B"
    adc.source = PilotWave(6.0, -12.0, d)
    p.sample()
    p.sample()
    assert p.state() == "B"
    p.sample()
    assert p.state() == "C"
    # one glitching burst of B does not leave C
    adc.source = PilotWave(9.0, -12.0, d)
    p.sample()
    adc.source = PilotWave(6.0, -12.0, d)
    p.sample()
    p.sample()
    assert p.state() == "C"
    adc.source = PilotWave(12.0, -12.0, d)
    p.sample()
    assert p.state() == "A", "a drop to A needs one burst"


def test_stalled_sampling_reads_as_pilot_fault():
    p, adc, _ = make()
    adc.source = PilotWave(6.0, -12.0, 100.0)
    settle(p)
    assert p.state() == "C"
    p.max_age_ms = -1
    assert p.state() == "F"


def test_burst_does_not_allocate():
    try:
        import gc
        import micropython  # noqa: F401
    except ImportError:
        portable.skip("heap accounting is only meaningful on micropython")
    p, adc, _ = make()
    wave = PilotWave(6.0, -12.0, 26.7, noise_v=0.0)
    vals = [wave() for _ in range(64)]
    i = [0]

    def src():
        i[0] = (i[0] + 1) & 63
        return vals[i[0]]
    adc.source = src
    p.sample()
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(20):
        p.sample()
    grew = gc.mem_alloc() - before
    assert grew <= 64, grew  # allocating per burst would be >= 20 * 16 bytes


def test_proximity_cable_coding():
    assert P.cable_amps(1500) == 13 and P.cable_amps(680) == 20
    assert P.cable_amps(220) == 32 and P.cable_amps(100) == 63
    assert P.cable_amps(1e6) == 0 and P.cable_amps(10) is None
    machine.reset_all()
    pp = P.Proximity(39, pullup_ohm=1000, supply_mv=3300)
    adc = machine.created[("adc", 39)]
    for ohms, amps in ((1500, 13), (680, 20), (220, 32), (100, 63)):
        v = 3.3 * ohms / (ohms + 1000)
        adc.source = lambda v=v: int(v / 3.3 * 65535)
        assert pp.amps() == amps, (ohms, pp.ohms())
    adc.source = lambda: 65535
    assert pp.amps() == 0
