# Modbus RTU meters (SDM120/SDM630), S0 pulses and the estimate, on the fake `machine`.
# Portable (pytest and micropython).
from fake_machine import portable  # noqa: F401
import os
import machine
from fake_machine.modbus_slave import Slave, crc16

from board import modbus, meters
from firmware.compat import asyncio
from firmware.saved_energy import SavedEnergy
from firmware.storage import Store


def run(coro):
    return asyncio.run(coro)


def bus(slave, timeout_ms=60):
    machine.reset_all()
    u = machine.UART(2, 9600)
    u.device = slave
    return modbus.ModbusRTU(u, de_pin=4, timeout_ms=timeout_ms), u


SDM630_VALUES = {0: 230.5, 2: 231.0, 4: 229.5, 6: 10.25, 8: 11.5, 10: 9.75, 0x34: 7123.5,
                 0x48: 1234.567}


def test_crc16_reference_vector():
    # Modbus spec example: 01 04 00 00 00 0A -> CRC 70 0D (low byte first)
    assert modbus.crc16(b"\x01\x04\x00\x00\x00\x0a") == 0x0D70
    assert crc16(b"\x01\x04\x00\x00\x00\x0a") == 0x0D70


def test_request_frame_and_float_decoding():
    s = Slave(7, {0: 1.5, 2: -2.25})
    b, u = bus(s)
    data = run(b.read_input(7, 0, 4))
    assert s.requests[-1] == bytes([7, 4, 0, 0, 0, 4]) + bytes([crc16(
        bytes([7, 4, 0, 0, 0, 4])) & 0xFF, crc16(bytes([7, 4, 0, 0, 0, 4])) >> 8])
    assert modbus.float_at(data, 0) == 1.5 and modbus.float_at(data, 2) == -2.25
    assert s.bad_requests == 0
    de = machine.created[("pin", 4)]
    assert de.value() == 0 and de.writes >= 2, "RS485 driver enabled only to send"


def test_rs485_driver_released_after_txdone_without_holding_the_loop():
    s = Slave(7, {0: 1.5, 2: -2.25})
    b, u = bus(s, timeout_ms=5000)  # the driver's guard is real ms: keep it out of the way
    u.baudrate = 2400
    u.realtime = True           # the 8-byte request takes 34 ms on the wire
    de = machine.created[("pin", 4)]
    seen = []
    real = u.txdone

    def txdone():
        seen.append(de.value())
        return real()
    u.txdone = txdone
    # the UART's wire time runs on event-loop turns: the frame is only out once other tasks
    # have had 34 turns, so the wait for txdone() must await (load cannot change that)
    data, turns = portable.run_on_loop_clock(b.read_input(7, 0, 4), u)
    u.clock = machine._ticks
    assert modbus.float_at(data, 0) == 1.5 and de.value() == 0
    assert len(seen) > 1 and seen == [1] * len(seen), "DE held until the frame was out"
    assert turns >= 34, turns
    assert u.flushes == 0
    u.txdone = None             # a UART without txdone(): flush() as before
    data = run(b.read_input(7, 0, 4))
    assert modbus.float_at(data, 2) == -2.25 and u.flushes == 1 and de.value() == 0


def test_sdm630_reads_all_figures():
    s = Slave(1, SDM630_VALUES)
    b, _ = bus(s)
    m = meters.SdmMeter(b, "SDM630", addr=1)
    assert run(m.update()) is True
    assert abs(m.energy_wh() - 1234567.0) < 0.5
    assert m.power_w() == 7123.5
    assert m.voltage_v() == (230.5, 231.0, 229.5)
    assert m.current_a() == (10.25, 11.5, 9.75)
    assert not m.estimated() and not m.fault()
    starts = sorted(set((r[2] << 8) | r[3] for r in s.requests))
    assert starts == [0x00, 0x34, 0x48]


def test_sdm120_single_phase_map():
    s = Slave(3, {0: 229.0, 6: 15.5, 0x0C: 3550.0, 0x48: 42.0})
    b, _ = bus(s)
    m = meters.SdmMeter(b, "SDM120", addr=3)
    assert run(m.update())
    assert m.voltage_v() == (229.0,) and m.current_a() == (15.5,)
    assert m.power_w() == 3550.0 and m.energy_wh() == 42000.0


def test_timeouts_and_crc_errors_become_a_meter_fault():
    for mode, err in (("silent", "timeout"), ("badcrc", "crc"), ("exception", "exception"),
                      ("wrongaddr", "frame")):
        s = Slave(1, SDM630_VALUES)
        b, _ = bus(s, timeout_ms=30)
        m = meters.SdmMeter(b, "SDM630", fail_after=3)
        assert run(m.update())
        good_wh = m.energy_wh()
        s.mode = mode
        for i in range(3):
            assert run(m.update()) is False
            assert m.last_error == err, (mode, m.last_error)
            assert m.fault() == (i == 2), (mode, i)
        assert m.energy_wh() == good_wh, "last good reading kept"
        s.mode = "ok"
        assert run(m.update()) and not m.fault()


def test_energy_never_runs_backwards():
    s = Slave(1, SDM630_VALUES)
    b, _ = bus(s)
    m = meters.SdmMeter(b, "SDM630")
    run(m.update())
    s.set_float(0x48, 1.0)
    run(m.update())
    assert abs(m.energy_wh() - 1234567.0) < 0.5


def test_unknown_model_is_a_clear_error():
    e = portable.raises(ValueError, meters.SdmMeter, None, "SDM999")
    assert "SDM999" in str(e)


class Relay:
    def __init__(self, closed=True):
        self.c = closed

    def closed(self):
        return self.c


def _data_dir():
    return "/tmp/s0test-" + "".join("%02x" % b for b in os.urandom(6))


def _remove(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


HW = machine.Counter


def s0_meter(hw, **kw):
    """An S0 meter on GPIO27 counted by the pulse counter (hw) or by the pin IRQ (a firmware
    without machine.Counter)."""
    machine.reset_all()
    machine.Counter = HW if hw else None
    try:
        m = meters.S0Meter(27, **kw)
    finally:
        machine.Counter = HW
    assert m.mode == ("pcnt" if hw else "irq")
    return m, machine.created[("pin", 27)]


def s0_boot(d, relay, store=None, hw=True):
    """A boot of the S0 meter on data directory `d`: a fresh pin and pulse count."""
    saved = SavedEnergy(store or Store(d), "s0-meter1.json")
    return s0_meter(hw, pulses_per_kwh=1000, min_pulse_ms=30, saved=saved, relay=relay)


def pulses(m, pin, n, clock, poll=True, low=50, high=300):
    """n 1 Wh pulses; with `poll` the poll task's update() runs after each (the worst case
    for flash writes)."""
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]
    try:
        for _ in range(n):
            pin.value(0)
            clock[0] += low
            pin.value(1)
            clock[0] += high
            if poll:
                run(m.update(clock[0]))
    finally:
        meters.ticks_ms = orig


def test_s0_irq_counts_on_the_edge_and_rejects_bounce():
    m, pin = s0_meter(False, pulses_per_kwh=1000, min_pulse_ms=30)
    assert pin._trigger == machine.Pin.IRQ_FALLING and pin._hard, "hard IRQ on one edge"
    clock = [100000]
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]
    try:
        for _ in range(5):
            # contact bounce at the start (2 ms) and at the end (1 ms) of a 35 ms pulse
            for level, ms in ((0, 2), (1, 2), (0, 31), (1, 1), (0, 1), (1, 300)):
                pin.value(level)
                clock[0] += ms
        run(m.update(clock[0]))
    finally:
        meters.ticks_ms = orig
    assert m.count == 5 and m.rejected == 10, (m.count, m.rejected)
    assert m.energy_wh() == 5.0
    m, pin = s0_meter(False, min_pulse_ms=30, edge="rising")
    assert pin._trigger == machine.Pin.IRQ_RISING


def test_s0_pulses_during_a_2s_stall_are_all_counted():
    # a stall (a blocking C call) delays soft IRQs until it ends: the old handler then read
    # the pin level late and lost every pulse; the counter and the edge IRQ lose none
    for hw in (True, False):
        m, pin = s0_meter(hw, pulses_per_kwh=1000, min_pulse_ms=30)
        clock = [100000]
        machine.stall()
        pulses(m, pin, 20, clock, poll=False, low=40, high=60)   # 20 pulses in 2 s
        machine.stall(False)
        run(m.update(clock[0]))
        assert m.count == 20 and m.energy_wh() == 20.0, (hw, m.count, m.rejected)
        assert m.rejected == 0


def test_s0_power_from_the_pulse_interval_decays_when_pulses_stop():
    for hw in (True, False):
        m, pin = s0_meter(hw, pulses_per_kwh=1000, min_pulse_ms=30)
        clock = [100000]
        pulses(m, pin, 5, clock, low=60, high=300)    # 1 Wh per 360 ms = 10 kW
        assert abs(m.power_w() - 10000.0) < 1.0, (hw, m.power_w())
        clock[0] += 3600
        run(m.update(clock[0]))
        assert m.power_w() <= 1000.0, (hw, m.power_w())   # 1 Wh in >= 3.6 s


def test_s0_counter_overflow_and_irq_count_wrap():
    m, pin = s0_meter(True, pulses_per_kwh=1000, min_pulse_ms=30)
    clock = [100000]
    pulses(m, pin, 70000, clock, poll=False, low=30, high=30)
    assert m._ctr.overflows >= 2, "the 16-bit hardware register wrapped"
    run(m.update(clock[0]))
    assert m.count == 70000 and m.energy_wh() == 70000.0
    m, pin = s0_meter(False, pulses_per_kwh=1000, min_pulse_ms=30)
    m._n = m._seen = meters._WRAP - 2     # the IRQ's small-int count about to wrap
    pulses(m, pin, 5, clock, poll=False)
    assert m._n < 5
    run(m.update(clock[0]))
    assert m.count == 5


def test_s0_counter_rate_rule_caps_a_noise_burst():
    m, pin = s0_meter(True, pulses_per_kwh=1000, min_pulse_ms=30)
    assert m._ctr.filter_ns == 30000000 and m._ctr.edge == machine.Counter.FALLING
    clock = [100000]
    run(m.update(clock[0]))
    for _ in range(50):                   # 50 glitches within 100 ms: at most 2 pulses
        pin.value(0)
        pin.value(1)
    clock[0] += 100
    run(m.update(clock[0]))
    assert m.count == 2 and m.rejected == 48


def test_s0_register_survives_reboots_with_few_writes():
    for hw in (True, False):
        d = _data_dir()
        try:
            relay = Relay(True)
            m, pin = s0_boot(d, relay, hw=hw)
            assert m.energy_wh() == 0.0
            clock = [100000]
            pulses(m, pin, 1000, clock)
            assert m.count == 1000 and m.energy_wh() == 1000.0
            # 1 kWh of pulses: one write per ~10 Wh, never one per pulse
            assert m.saved.saves <= 1000 / 10 + 1, m.saved.saves
            relay.c = False                  # charging stops: the exact register is written
            run(m.update(clock[0]))
            n = m.saved.saves
            run(m.update(clock[0]))
            assert m.saved.saves == n, "one write per stop, not one per poll"
            m, pin = s0_boot(d, relay, hw=hw)       # reboot after a clean stop: nothing added
            assert m.energy_wh() == 1000.0
            relay.c = True
            pulses(m, pin, 25, clock)
            seen = m.energy_wh()
            assert seen == 1025.0
            m, pin = s0_boot(d, relay, hw=hw)       # power cut while charging
            wh = m.energy_wh()
            assert seen <= wh <= seen + 10.0, "monotonic; at most 10 Wh added by the cut"
            pulses(m, pin, 5, clock)
            assert m.energy_wh() == wh + 5.0
        finally:
            _remove(d)


def test_s0_stall_burst_keeps_the_saved_register_monotonic():
    # 37 pulses arrive in one update after a stall (more than the 10 Wh save step): every
    # reading stays at or below the saved mark, readings never go back, and a cut at any
    # point restarts at or above every reading given
    for hw in (True, False):
        d = _data_dir()
        try:
            m, pin = s0_boot(d, Relay(True), hw=hw)
            clock = [100000]
            seen = []
            pulses(m, pin, 3, clock)
            seen.append(m.energy_wh())
            machine.stall()
            pulses(m, pin, 37, clock, poll=False, low=40, high=60)
            seen.append(m.energy_wh())
            assert seen[-1] <= m.saved.mark
            machine.stall(False)
            seen.append(m.energy_wh())
            run(m.update(clock[0]))
            seen.append(m.energy_wh())
            assert seen[-1] == 40.0 and m.saved.mark >= 40.0, (hw, seen, m.saved.mark)
            assert_monotonic(seen)
            m, pin = s0_boot(d, Relay(True), hw=hw)     # a cut now
            assert m.energy_wh() >= max(seen)
        finally:
            _remove(d)


def test_s0_never_hands_out_more_than_it_saved():
    d = _data_dir()
    try:
        m, pin = s0_boot(d, Relay(True))
        clock = [100000]
        pulses(m, pin, 3, clock)
        mark = m.saved.mark
        assert m.energy_wh() == 3.0 and mark >= 3.0
        pulses(m, pin, int(mark) + 5, clock, poll=False)   # counted before the poll runs
        assert m.energy_wh() <= mark, "nothing past the saved mark before update() saves"
        m, pin = s0_boot(d, Relay(True))     # a cut now: what was handed out is not lost
        assert m.energy_wh() >= mark
    finally:
        _remove(d)


def test_s0_failed_save_is_a_meter_fault():
    class Full(Store):
        def save(self, name, obj):
            raise OSError(28)

    d = _data_dir()
    try:
        m, pin = s0_boot(d, Relay(True), Full(d))
        pulses(m, pin, 1, [100000], poll=False)
        assert run(m.update()) is False and m.fault()
        assert m.energy_wh() == 0.0, "nothing handed out that was not saved"
    finally:
        _remove(d)


class Offer:
    def __init__(self, amps=16):
        self.amps = amps

    def offered(self):
        return self.amps


def est_boot(d, relay, clock, store=None):
    """A boot of the estimated meter on data directory `d`: the integral restarts in RAM."""
    saved = SavedEnergy(store or Store(d), "estimated-meter1.json")
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]
    try:
        return meters.EstimatedMeter(Offer(16), relay, phases=3, volts=230.0, saved=saved)
    finally:
        meters.ticks_ms = orig


def polls(m, clock, n, seen):
    """n polls one second apart (the board's slow loop) at 16 A x 3 x 230 V = 11040 W;
    every reading is appended to `seen`."""
    for _ in range(n):
        clock[0] += 1000
        run(m.update(clock[0]))
        seen.append(m.energy_wh())


def assert_monotonic(seen):
    for i in range(1, len(seen)):
        assert seen[i] >= seen[i - 1], (i, seen[i - 1], seen[i])


def test_estimated_register_survives_reboots_with_few_writes():
    d = _data_dir()
    try:
        relay = Relay(True)
        clock = [100000]
        seen = []
        m = est_boot(d, relay, clock)
        assert m.energy_wh() == 0.0 and m.estimated() is True
        polls(m, clock, 400, seen)             # 400 s at 11040 W: ~1227 Wh
        wh = m.energy_wh()
        assert abs(wh - 11040.0 * 399 / 3600) < 0.001, wh  # counted in whole mWh
        # one write per ~10 Wh, never one per poll
        assert m.saved.saves <= wh / 10 + 1, m.saved.saves
        relay.c = False                        # charging stops: the exact register is written
        polls(m, clock, 1, seen)
        n = m.saved.saves
        polls(m, clock, 5, seen)
        assert m.saved.saves == n, "one write per stop, not one per poll"
        stopped = m.energy_wh()
        m = est_boot(d, relay, clock)          # reboot after a clean stop: < 1 Wh added
        assert stopped <= m.energy_wh() < stopped + 1
        seen.append(m.energy_wh())
        relay.c = True
        polls(m, clock, 20, seen)
        before = m.energy_wh()
        assert before > stopped
        m = est_boot(d, relay, clock)          # power cut while charging
        wh = m.energy_wh()
        assert before <= wh <= before + 10.0, "monotonic; at most 10 Wh added by the cut"
        seen.append(wh)
        polls(m, clock, 20, seen)
        assert m.energy_wh() > wh and not m.fault()
        assert_monotonic(seen)
    finally:
        _remove(d)


def test_saved_marks_are_whole_wh_at_or_above_the_register():
    """A mark's text must reload at or above every reading handed out, also where floats are
    single precision (ESP32): marks are whole Wh, rounded up."""
    d = _data_dir()
    try:
        s = SavedEnergy(Store(d), "e.json")
        s.keep(1234.4, True)
        assert s.mark == 1245 and s.cap(1234.4) == 1234.4
        s.keep(1240.2, False)                      # the relay opened: the register, rounded up
        assert s.mark == 1241 and Store(d).load("e.json") == {"wh": 1241}
        n = s.saves
        s.keep(1240.2, False)
        s.keep(1240.2, True)                       # closing again does not write by itself
        assert s.saves == n
        assert SavedEnergy(Store(d), "e.json").start_wh == 1241
    finally:
        _remove(d)


def test_estimated_failed_save_is_a_meter_fault():
    class Full(Store):
        fail = True

        def save(self, name, obj):
            if self.fail:
                raise OSError(28)
            Store.save(self, name, obj)

    d = _data_dir()
    try:
        clock = [100000]
        store = Full(d)
        m = est_boot(d, Relay(True), clock, store)
        polls(m, clock, 2, [])
        assert m.fault() and run(m.update(clock[0])) is False
        assert m.energy_wh() == 0.0, "nothing handed out that was not saved"
        store.fail = False                     # the flash recovers: so does the meter
        polls(m, clock, 1, [])
        assert not m.fault() and m.energy_wh() > 0.0
        assert m.saved.mark >= m.energy_wh()
    finally:
        _remove(d)


def test_estimated_meter_is_flagged_and_integrates():
    class P:
        def offered(self):
            return 16

    class R:
        def __init__(self):
            self.c = True

        def closed(self):
            return self.c

    r = R()
    m = meters.EstimatedMeter(P(), r, phases=3, volts=230.0)
    assert m.estimated() is True
    t0 = m._t
    run(m.update(t0))
    assert m.power_w() == 16 * 230.0 * 3
    run(m.update(t0 + 3600000))
    assert abs(m.energy_wh() - 11040.0) < 1e-6
    r.c = False
    run(m.update(t0 + 3600000 * 2))
    assert m.power_w() == 0
