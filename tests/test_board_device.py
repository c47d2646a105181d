# The assembled ESP32 board on the fake `machine`: construction from the config, fault
# inputs, watchdog policy, and the real-time loop from main.py (relay opening after the
# EV leaves C, measured on the wall clock). Portable (pytest and micropython).
from fake_machine import portable  # noqa: F401
import json
import os
import machine
from fake_machine.waves import PilotWave, CAL

from board import config
from board import device, meters
from firmware.compat import asyncio, ticks_ms, ticks_diff


# the estimated meter keeps its register in the data dir: never the example's /data
DATA = "/tmp/boarddev-" + "".join("%02x" % b for b in os.urandom(6))


def cfg(**over):
    with open("board/config.example.json") as f:
        raw = json.load(f)
    raw["wifi"] = None
    raw["station"]["data_dir"] = DATA
    e = raw["evses"][0]
    e["meter"] = {"type": "none"}
    e["pilot"]["cal"] = list(CAL)
    e["pp"] = None
    e["cable_amps"] = 16
    raw["reader"] = over.pop("reader", {"type": "none"})
    for k in over:
        e[k] = over[k]
    return config.validate(raw)


def make(**over):
    machine.reset_all()
    return device.EspBoard(cfg(**over))


def test_board_builds_from_config_with_relay_open():
    b = make()
    e = b.evses[0]
    assert machine.created[("pin", 26)].value() == 0, "relay output open"
    assert machine.created[("pwm", 25)].duty_u16() == 65535, "pilot at steady +12 V"
    assert e.meter.estimated() is True
    assert machine.WDT.instance is not None and machine.WDT.instance.timeout == 8000
    assert b.serial == "240ac4123456"
    assert b.status()[0]["relay"] is False


def test_reader_and_modbus_meter_are_wired_from_config():
    from fake_machine.rc522 import FakeMFRC522, Card
    machine.reset_all()
    c = cfg(meter={"type": "sdm120", "uart": 2, "tx": 17, "rx": 16, "addr": 5},
            reader={"type": "mfrc522", "spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5})
    # the fake chip must be attached before the driver's init runs: patch SPI creation
    fake = FakeMFRC522([Card(b"\x01\x02\x03\x04")])
    orig = machine.SPI.__init__

    def spi_init(self, *a, **kw):
        orig(self, *a, **kw)
        self.device = fake
    machine.SPI.__init__ = spi_init
    try:
        b = device.EspBoard(c)
    finally:
        machine.SPI.__init__ = orig
    assert b.evses[0].meter.model == "SDM120" and b.evses[0].meter.addr == 5
    asyncio.run(b.reader.scan())
    assert b.reader.poll() == ("01020304", "ISO14443")


def test_s0_meter_register_is_kept_in_the_data_dir_across_reboots():
    d = "/tmp/s0board-" + "".join("%02x" % b for b in os.urandom(6))
    c = cfg(meter={"type": "s0", "pin": 32}, pp=None, temperature=None)
    c["station"]["data_dir"] = d
    clock = [100000]
    orig = meters.ticks_ms
    meters.ticks_ms = lambda: clock[0]

    def boot():
        machine.reset_all()
        return device.EspBoard(c).evses[0], machine.created[("pin", 32)]

    def charge(e, pin, wh):
        for _ in range(wh):          # 1000 pulses/kWh; the slow loop after each pulse
            pin.value(0)
            clock[0] += 50
            pin.value(1)
            clock[0] += 300
            asyncio.run(e.slow())
    try:
        e, pin = boot()
        assert e.meter.energy_wh() == 0.0
        e.relay.set(True)
        charge(e, pin, 42)
        assert e.meter.energy_wh() == 42.0
        e.relay.set(False)
        asyncio.run(e.slow())        # the relay opened: the exact register is saved
        e, pin = boot()
        assert e.meter.energy_wh() == 42.0, "continues from the saved register"
        e.relay.set(True)
        charge(e, pin, 3)
        e, pin = boot()              # power cut while charging
        assert 45.0 <= e.meter.energy_wh() <= 55.0
        assert "meter" not in e.faults()
    finally:
        meters.ticks_ms = orig
        for n in os.listdir(d):
            os.remove(d + "/" + n)
        os.rmdir(d)


def test_fault_inputs_are_reported():
    b = make()
    e = b.evses[0]
    adc = machine.created[("adc", 36)]
    adc.source = PilotWave(9.0, -12.0, 100.0)
    now = ticks_ms()
    e.fast(now)
    assert "rcd" not in e.faults()
    machine.created[("pin", 35)].value(0)   # RCD trip output, active low
    e.fast(now)
    assert "rcd" in e.faults()
    machine.created[("pin", 35)].value(1)
    e.fast(now)
    assert "rcd" not in e.faults()


def test_rcd_self_test():
    b = make()
    e = b.evses[0]
    trip = machine.created[("pin", 35)]
    test_pin = machine.created[("pin", 27)]

    # a working RCM: trips while the test output is high
    def follow(p):
        trip.value(0 if p.value() else 1)
    test_pin.irq(follow, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)
    asyncio.run(b.rcd_self_test())
    assert e.rcd.last_test is True
    test_pin.irq(None)
    asyncio.run(b.rcd_self_test())    # a dead RCM never trips
    assert e.rcd.last_test is False
    assert "rcd" in e.faults(), "flagged at once, before the next pilot burst"
    e.fast(ticks_ms())
    assert "rcd" in e.faults(), "a failed self-test blocks charging"


def test_station_is_created_only_after_the_rcd_self_test():
    # the self-test hides RCD trips: a station running meanwhile could permit charging
    from board import main
    b = make(temperature=None)
    e = b.evses[0]
    machine.created[("adc", 36)].source = PilotWave(12.0, -12.0, 100.0)
    trip = machine.created[("pin", 35)]

    def follow(p):
        trip.value(0 if p.value() else 1)
    machine.created[("pin", 27)].irq(follow, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)
    seen = []

    def factory(bd, c):
        seen.append((e.rcd.testing, e.rcd.last_test))
        return None

    async def scenario():
        t = asyncio.create_task(main.run(b, b.cfg, station_factory=factory))
        for _ in range(300):
            await asyncio.sleep(0.01)
            if seen:
                break
        t.cancel()
    asyncio.run(scenario())
    assert seen == [(False, True)], seen


def test_watchdog_fed_only_while_healthy():
    b = make()
    adc = machine.created[("adc", 36)]
    adc.source = PilotWave(12.0, -12.0, 100.0)
    wdt = machine.WDT.instance
    b.evses[0].fast(ticks_ms())
    b.beat()
    assert b.feed_watchdog() is True and wdt.feeds == 1
    b.beat_ms = ticks_ms() - 5000       # the safety loop stopped beating
    assert b.feed_watchdog() is False and wdt.feeds == 1
    b.beat()
    b.evses[0].pilot.last_ms = ticks_ms() - 5000   # pilot sampling stalled
    assert b.feed_watchdog() is False


def test_realtime_loop_opens_relay_within_100ms_after_c_to_b():
    from board import main
    from firmware import safety
    b = make(rcd=None, temperature=None)
    adc = machine.created[("adc", 36)]
    relay = machine.created[("pin", 26)]
    wave = PilotWave(9.0, -12.0, 100.0, noise_v=0.3)
    adc.source = wave
    result = {}
    wakeups = safety.stall[1]

    async def scenario():
        t = asyncio.create_task(main.run(b, b.cfg, station_factory=lambda bd, c: None))
        await asyncio.sleep(0.1)
        s = b.safeties[0]
        s.permit(True, True, 16)
        await asyncio.sleep(0.1)
        wave.duty = 16 / 0.6
        wave.high_v = 6.0                  # EV closes S2: state C
        t0 = ticks_ms()
        while not relay.value() and ticks_diff(ticks_ms(), t0) < 3000:
            await asyncio.sleep(0.002)
        result["close_ms"] = ticks_diff(ticks_ms(), t0)
        result["closed"] = relay.value()
        await asyncio.sleep(0.2)
        wave.high_v = 9.0                  # EV opens S2: back to B
        t0 = ticks_ms()
        while relay.value() and ticks_diff(ticks_ms(), t0) < 1000:
            await asyncio.sleep(0.002)
        result["open_ms"] = ticks_diff(ticks_ms(), t0)
        result["wdt"] = machine.WDT.instance.feeds
        t.cancel()

    asyncio.run(scenario())
    print("relay close after B->C: %d ms, open after C->B: %d ms" % (
        result["close_ms"], result["open_ms"]))
    assert result["closed"] == 1 and result["close_ms"] <= 3000, (result, b.safeties[0].status())
    assert result["open_ms"] <= 100, result
    assert result["wdt"] >= 1, "watchdog fed while healthy"
    assert safety.stall[1] > wakeups, "the board's safety loop feeds the stall monitor"


def test_console_task_answers_one_json_line_per_command():
    from board import main

    class Lines:
        def __init__(self, lines):
            self.lines = list(lines)

        async def readline(self):
            if self.lines:
                return self.lines.pop(0)
            raise asyncio.CancelledError()

    class StandIn:
        async def handle(self, line):
            if line == "boom":
                raise RuntimeError("x")
            return {"ok": True, "echo": line}

    out = []
    try:
        asyncio.run(main.console_task(StandIn(), Lines([b"status\n", b"\n", b"boom\r\n"]),
                                      out.append))
    except asyncio.CancelledError:
        pass
    assert [json.loads(x) for x in out] == [
        {"ok": True, "echo": "status"}, {"ok": False, "error": "console: x"}]


def test_diag_helpers_print_json_without_secrets():
    from board import diag
    b = make()
    from firmware import safety
    s = safety.Safety(b.evses[0])
    raw = cfg()
    raw["station"]["password"] = "hunter2"
    diag.ctx.clear()
    diag.ctx.update(board=b, safeties=[s], cfg=raw)
    lines = []
    import builtins
    orig = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(str(x) for x in a))
    try:
        diag.status()
        diag.config()
        r = diag._ask("status")
    finally:
        builtins.print = orig
        diag.ctx.clear()
    st = json.loads(lines[0])
    assert st["ok"] and st["safety"][0]["relay"] is False and st["evses"][0]["id"] == 1
    assert "hunter2" not in lines[1] and json.loads(lines[1])["station"]["password"] == "***"
    assert r == {"ok": False, "error": "station not running"}


def test_ntc_temperature_and_overtemp_hysteresis():
    from board import io
    machine.reset_all()
    t = io.Temperature(33, r25=10000, beta=3950, pullup_ohm=10000, limit_c=80, hysteresis_c=10)
    adc = machine.created[("adc", 33)]

    def at_ohms(r):
        uv = 3300000 * r / (r + 10000)
        adc.source = lambda: int(uv * 65535 / 3300000) + 1
    at_ohms(10000)
    assert abs(t.read_c() - 25.0) < 0.5
    at_ohms(1000)          # ~ 85 C
    assert t.over() is True
    at_ohms(1300)          # ~ 78 C: inside the hysteresis band, still hot
    assert t.over() is True
    at_ohms(2000)          # ~ 64 C
    assert t.over() is False
    adc.source = lambda: 0  # shorted sensor reads as hot
    assert t.over() is True


def test_diag_calibrate_reads_both_pilot_rails():
    from board import diag
    from fake_machine.waves import raw
    b = make()
    pwm = machine.created[("pwm", 25)]
    adc = machine.created[("adc", 36)]
    # the ADC sees what the PWM drives: 0 % duty = -12 V, 100 % = +12 V
    adc.source = lambda: raw(-12.0) if pwm.duty_u16() == 0 else raw(12.0)
    diag.ctx.clear()
    diag.ctx.update(board=b)
    lines = []
    import builtins
    orig = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(str(x) for x in a))
    try:
        diag.calibrate(0)
    finally:
        builtins.print = orig
        diag.ctx.clear()
    r = json.loads(lines[0])
    assert r["ok"] and r["cal"] == [raw(-12.0), raw(12.0)]
    assert pwm.duty_u16() == 65535 and machine.created[("pin", 26)].value() == 0


def test_main_forgets_the_config_module_and_reports_bad_config():
    import sys
    from board import main
    from firmware import compat
    import board.config  # noqa: F401
    compat.unload("board.config")
    compat.unload("board.config")    # again: no KeyError from MicroPython's module dict
    assert "board.config" not in sys.modules
    import board
    assert not hasattr(board, "config")
    lines = []
    import builtins
    orig = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(str(x) for x in a))
    try:
        main.main("/nonexistent/config.json")   # returns: REPL stays, nothing started
    finally:
        builtins.print = orig
    assert lines and lines[0].startswith("CONFIG ERROR:") and "not found" in lines[0]
