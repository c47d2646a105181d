# The simulator's meter keeps its register in the data directory with few writes: status
# polls read it every 20 ms, yet it is saved about once per 10 Wh, and a restart on the same
# directory (a SIGKILL in tests/test_power_loss.py) never takes it backwards.
from firmware import compat
from host.sim_board import SimBoard


def test_sim_meter_saves_rarely_and_stays_monotonic_across_restarts(tmp_path, monkeypatch):
    clock = [1000]
    monkeypatch.setattr(compat, "ticks_ms", lambda: clock[0])
    d = str(tmp_path / "sim")
    e = SimBoard(1, d).evses[0]
    e.relay.set(True)
    last = 0.0
    while last < 1000.0:            # 1 kWh at 11 kW, read every 20 ms like the status polls
        clock[0] += 20
        wh = e.meter.energy_wh()
        assert wh >= last
        last = wh
    saved = e.meter.saved
    assert saved.saves <= 1000 / 10 + 1, saved.saves

    e = SimBoard(1, d).evses[0]     # killed while charging: restarts at the saved mark
    wh = e.meter.energy_wh()
    assert last <= wh <= last + 10.0, (last, wh)

    e.relay.set(True)
    clock[0] += 1000
    e.meter.energy_wh()
    e.relay.set(False)
    last = e.meter.energy_wh()      # the relay opened: the register is saved once
    n = e.meter.saved.saves
    clock[0] += 1000
    assert e.meter.energy_wh() == last and e.meter.saved.saves == n
    again = SimBoard(1, d).evses[0].meter.energy_wh()
    assert last <= again < last + 1, "less than 1 Wh added after a stop (marks are whole Wh)"


def test_meter_under_concurrent_switching_bills_exactly_under_micropython():
    import pytest
    from fake_machine import portable
    rc, out = portable.run_micropython(["test_sim_meter_threads"], timeout=120)
    if rc is None:
        pytest.skip(out)
    assert rc == 0 and "SUMMARY 1 0" in out, out[-2000:]
