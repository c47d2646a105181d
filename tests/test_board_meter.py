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


def test_s0_counts_pulses_of_at_least_30_ms():
    machine.reset_all()
    m = meters.S0Meter(27, pulses_per_kwh=1000, min_pulse_ms=30)
    pin = machine.created[("pin", 27)]
    clock = [100000]
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]
    try:
        for width in (35, 50, 10, 29, 30, 5):
            pin.value(0)
            clock[0] += width
            pin.value(1)
            clock[0] += 1000
        assert m.count == 3 and m.rejected == 3
        assert m.energy_wh() == 3.0
        run(m.update(clock[0]))
        assert m.power_w() > 0
    finally:
        meters.ticks_ms = orig


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


def s0_boot(d, relay, store=None):
    """A boot of the S0 meter on data directory `d`: a fresh pin and pulse count."""
    machine.reset_all()
    saved = SavedEnergy(store or Store(d), "s0-meter1.json")
    m = meters.S0Meter(27, pulses_per_kwh=1000, min_pulse_ms=30, saved=saved, relay=relay)
    return m, machine.created[("pin", 27)]


def pulses(m, pin, n, clock, poll=True):
    """n accepted 1 Wh pulses; with `poll` the poll task's update() runs after each (the
    worst case for flash writes)."""
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]
    try:
        for _ in range(n):
            pin.value(0)
            clock[0] += 50
            pin.value(1)
            clock[0] += 300
            if poll:
                run(m.update(clock[0]))
    finally:
        meters.ticks_ms = orig


def test_s0_register_survives_reboots_with_few_writes():
    d = _data_dir()
    try:
        relay = Relay(True)
        m, pin = s0_boot(d, relay)
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
        m, pin = s0_boot(d, relay)       # reboot after a clean stop: nothing added
        assert m.energy_wh() == 1000.0
        relay.c = True
        pulses(m, pin, 25, clock)
        seen = m.energy_wh()
        assert seen == 1025.0
        m, pin = s0_boot(d, relay)       # power cut while charging
        wh = m.energy_wh()
        assert seen <= wh <= seen + 10.0, "monotonic; at most 10 Wh added by the cut"
        pulses(m, pin, 5, clock)
        assert m.energy_wh() == wh + 5.0
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
        assert m.energy_wh() == mark, "capped at the saved mark until update() saves"
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
