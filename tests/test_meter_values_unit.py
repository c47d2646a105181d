"""The meter values block on its own (pytest and micropython): TxEnded samples held as compact rows, and the
clock-aligned loop sleeping until its boundary. The protocol side (TC_J_*) is covered against
the CSMS in test_transactions.py and test_coverage_gjp.py."""
import asyncio
import os

from firmware import compat, hal
from firmware.meter_values import ALIGN, ENERGY, MAX_ENDED
from firmware.station import Station
from host.sim_board import SimBoard

ALL = (ENERGY, "Power.Active.Import", "Current.Import", "Voltage", "Current.Offered",
       "Frequency")  # the last is not supported and must be skipped


class FixedMeter(hal.Meter):
    def __init__(self):
        self.wh = 1234.567

    def energy_wh(self):
        return self.wh

    def power_w(self):
        return 7360

    def current_a(self):
        return (10.666, 10.5, 10.25)

    def voltage_v(self):
        return (230.1, 229.9, 231)


def _block():
    d = "/tmp/mvunit-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    st = Station(SimBoard(1, d), "ws://127.0.0.1:9", "MV1")
    st.board.evse(1).meter = FixedMeter()
    return st, st.blocks["meter_values"]


def test_E06_FR_11_txended_rows_expand_to_the_same_meter_value():
    st, mv = _block()
    # wall-clock times are whole seconds where floats are single precision (an ESP32)
    t, ms = (1795000000, "000") if compat.SINGLE_FLOAT else (1795000000.25, "250")
    expected = mv.sample(1, ALL, "Sample.Periodic", t)
    assert [(s["measurand"], s.get("phase")) for s in expected["sampledValue"]] == [
        (ENERGY, None), ("Power.Active.Import", None),
        ("Current.Import", "L1"), ("Current.Import", "L2"), ("Current.Import", "L3"),
        ("Voltage", "L1-N"), ("Voltage", "L2-N"), ("Voltage", "L3-N"),
        ("Current.Offered", None)]
    assert expected["sampledValue"][2]["value"] == 10.67
    assert expected["timestamp"] == "2026-11-18T11:06:40.%sZ" % ms
    mv._keep_ended(1, ALL, "Sample.Periodic", t)
    mv._keep_ended(1, (ENERGY,), "Sample.Clock", t + 1)
    rows = mv._ended[1]
    assert len(rows) == 2 and rows[0][0] == "Sample.Periodic" and len(rows[0][1]) == 9
    assert rows[0][2] == t and len(rows[0][3]) == 9
    out = mv.ended(1)
    assert out[0] == expected
    assert out[1] == {"timestamp": "2026-11-18T11:06:41.%sZ" % ms, "sampledValue": [
        {"value": 1234.57, "context": "Sample.Clock", "measurand": ENERGY,
         "unitOfMeasure": {"unit": "Wh"}}]}
    assert out[2]["sampledValue"][0]["context"] == "Transaction.End"  # E06.FR.11, last
    assert 1 not in mv._ended


def test_E06_FR_13_txended_samples_thinned_keeping_first_and_latest():
    st, mv = _block()
    for i in range(40):
        st.board.evse(1).meter.wh = 1000 + i
        mv._keep_ended(1, (ENERGY,), "Sample.Periodic", 1795000000 + i)
    out = mv.ended(1)[:-1]
    vals = [m["sampledValue"][0]["value"] for m in out]
    assert len(out) <= MAX_ENDED
    assert vals[0] == 1000 and vals[-1] == 1039 and vals == sorted(vals)


def test_txended_nothing_supported_keeps_nothing():
    st, mv = _block()
    mv._keep_ended(1, ("Frequency",), "Sample.Periodic")
    mv._keep_ended(7, (ENERGY,), "Sample.Periodic")   # no such EVSE
    assert mv._ended.get(1) in (None, []) and 7 not in mv._ended


def test_J01_aligned_loop_sleeps_to_the_boundary_and_wakes_on_a_change():
    """With a 1 h interval the loop reads its settings once instead of once a second; a
    SetVariables of AlignedDataCtrlr.Interval takes effect at once (J01.FR.01)."""
    st, mv = _block()
    st.dm.set(ALIGN, "Interval", 3600)
    reads, ticks = [], []
    get = st.dm.get

    def counting_get(comp, var, *a, **k):
        if comp == ALIGN and var == "Interval":
            reads.append(var)
        return get(comp, var, *a, **k)

    async def tick(at):
        ticks.append(at)

    st.dm.get = counting_get
    mv._clock_tick = tick

    async def run():
        task = asyncio.create_task(mv._aligned_loop())
        await asyncio.sleep(2.5)
        n_idle = len(reads)
        st.dm.set(ALIGN, "Interval", 1)
        await asyncio.sleep(1.6)
        task.cancel()
        return n_idle

    n_idle = asyncio.run(run())
    assert n_idle == 1
    assert ticks and all(abs(t - round(t)) < 1e-6 for t in ticks)


def test_J01_single_float_port_keeps_aligned_and_txended_times_ints(tmp_path, monkeypatch):
    """Where floats are single precision (ESP32) wall-clock times are ints (see
    test_wall_clock.py); the aligned loop and the TxEnded rows must keep them so."""
    from firmware import compat
    monkeypatch.setattr(compat, "SINGLE_FLOAT", True)
    monkeypatch.setattr(compat, "_clock_delta", 0)
    st, mv = _block()
    st.dm.set(ALIGN, "Interval", 1)
    ticks = []

    async def tick(at):
        ticks.append(at)

    mv._clock_tick = tick

    async def run():
        task = asyncio.create_task(mv._aligned_loop())
        await asyncio.sleep(2.6)
        task.cancel()

    asyncio.run(run())
    assert len(ticks) >= 2 and all(type(t) is int for t in ticks), ticks
    assert ticks == sorted(set(ticks))
    mv._keep_ended(1, (ENERGY,), "Sample.Periodic")
    assert type(mv._ended[1][-1][2]) is int
