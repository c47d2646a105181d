# The ESP32 board: builds the hal objects from the validated config. The safety stepper
# (firmware/stepper.py, its own thread) calls each BoardEvse.fast() and then beat(), which
# feeds the watchdog; `poll()` runs the slow driver loops (meters, card reader) on asyncio.
import machine

from firmware import hal, log
from firmware.saved_energy import SavedEnergy
from firmware.storage import Store
from firmware.compat import asyncio, sleep_ms, ticks_ms, ticks_diff
from board import pilot as pilot_mod
from board import io, meters, modbus

SLOW_PERIOD_MS = 1000    # meters, temperature
LIMIT_PERIOD_MS = 200    # the limit input: well inside the 1 s a limit may take to the pilot
# The watchdog (1-2 s) is fed by the stepper while it and the pilot sampling are alive. A
# hung event loop (no OCPP, no metering) is tolerated this long, so that a slow DNS miss or
# a long print never resets a charger mid-session, then the feeding stops: the board resets
# with its relays dropping open. The stepper keeps the EV safe meanwhile.
LOOP_DEAD_MS = 60000


class BoardEvse(hal.Evse):
    def __init__(self, c, buses, data_dir):
        p = c["pilot"]
        pil = pilot_mod.Pilot(p["pwm_pin"], p["adc_pin"], cal=p["cal"], invert=p["invert"],
                              samples=p["samples"], debounce=p["debounce"],
                              diode_v=p["diode_v"])
        r = c["relay"]
        relay = io.Relay(r["pin"], r["active_low"], r["feedback_pin"], r["feedback_active_low"])
        lock = None
        if c["lock"]:
            k = c["lock"]
            lock = io.Lock(k["pin"], k["active_low"], k["feedback_pin"], k["feedback_active_low"])
        meter = _meter(c, pil, relay, buses, data_dir)
        hal.Evse.__init__(self, c["id"], pil, relay, meter, lock, c["max_current"], c["phases"],
                          c["connector_type"])
        self.rated_current = c["max_current"]
        self.cable_amps = c["cable_amps"]
        self.allow_ventilation = c["allow_ventilation"]
        self.pp = None
        if c["pp"]:
            x = c["pp"]
            self.pp = pilot_mod.Proximity(x["adc_pin"], x["pullup_ohm"], x["supply_mv"])
            self._pp_limit(self.pp.cable)
        elif self.cable_amps:
            self._pp_limit(self.cable_amps)
        self.rcd = None
        if c["rcd"]:
            x = c["rcd"]
            self.rcd = io.Rcd(x["pin"], x["active_low"], x["test_pin"])
        self.temp = None
        if c["temperature"]:
            x = c["temperature"]
            self.temp = io.Temperature(x["adc_pin"], x["r25"], x["beta"], x["pullup_ohm"],
                                       limit_c=x["limit_c"], hysteresis_c=x["hysteresis_c"])
        self.safety = None  # set by main.py
        # conditions found by the asyncio side (slow()), put into the fault set by fast():
        # the set then has one writer, the stepper's thread, which iterates it every step
        self._hot = False
        self._meter_bad = False

    def _flag(self, name, on):
        # copy-on-write: status() and the console read the set on the event loop while this
        # runs on the stepper's thread; a new set (allocation) only when a fault changes
        f = self._faults
        if on:
            if name not in f:
                g = set(f)
                g.add(name)
                self._faults = g
        elif name in f:
            g = set(f)
            g.discard(name)
            self._faults = g

    def _pp_limit(self, amps):
        # 0 (no cable, short) reaches safety as max_current 0: it opens the relay at once
        r = self.rated_current
        self.max_current = amps if amps < r else r

    def fast(self, now):
        """Pilot burst, proximity pilot and the fault inputs that must be seen within the
        100 ms budget. Allocation-free."""
        self.pilot.sample()
        if self.pp is not None:
            self._pp_limit(self.pp.sample())
        self._flag("diode", self.pilot.diode_fault())
        if self.rcd is not None and not self.rcd.testing:
            # a failed self-test keeps the fault until the next successful test
            self._flag("rcd", self.rcd.tripped() or self.rcd.last_test is False)
        if self.lock is not None and hasattr(self.lock, "fault"):
            self._flag("lock", self.lock.fault(now))
        self._flag("overtemp", self._hot)
        self._flag("meter", self._meter_bad)

    async def slow(self):
        if self.temp is not None:
            self._hot = self.temp.over()
        ok = await self.meter.update()
        self._meter_bad = not ok and self.meter.fault()


def _meter(c, pil, relay, buses, data_dir):
    m = c["meter"]
    t = m["type"]
    if t in ("sdm630", "sdm120"):
        key = ("uart", m["uart"])
        bus = buses.get(key)
        if bus is None:
            uart = machine.UART(m["uart"], m["baud"], tx=m["tx"], rx=m["rx"], timeout=0)
            bus = modbus.ModbusRTU(uart, m["de_pin"], m["timeout_ms"])
            buses[key] = bus
        return meters.SdmMeter(bus, t.upper(), m["addr"])
    # S0 pulses and the estimate count from boot: their register is kept in the data directory
    if t == "s0":
        saved = SavedEnergy(Store(data_dir), "s0-meter%d.json" % c["id"])
        return meters.S0Meter(m["pin"], m["pulses_per_kwh"], m["min_pulse_ms"], saved, relay,
                              m["edge"])
    saved = SavedEnergy(Store(data_dir), "estimated-meter%d.json" % c["id"])
    return meters.EstimatedMeter(pil, relay, c["phases"], c["nominal_voltage"], saved)


def _reader(r):
    t = r["type"]
    if t == "none":
        return None
    from board.mfrc522 import CardReader
    if t == "mfrc522":
        from board.mfrc522 import MFRC522
        spi = machine.SPI(r["spi"], baudrate=r["baudrate"], sck=machine.Pin(r["sck"]),
                          mosi=machine.Pin(r["mosi"]), miso=machine.Pin(r["miso"]))
        return CardReader(MFRC522(spi, r["cs"], r["rst"]))
    from board import pn532
    if t == "pn532_uart":
        return CardReader(pn532.PN532(pn532.make_uart(r["uart"], r["tx"], r["rx"])))
    return CardReader(pn532.PN532(pn532.make_i2c(r["i2c"], r["scl"], r["sda"])))


class EspBoard(hal.Board):
    model = "PyStation-ESP32"

    def __init__(self, cfg, watchdog=True):
        buses = {}
        evses = [BoardEvse(c, buses, cfg["station"]["data_dir"]) for c in cfg["evses"]]
        reader = None
        try:
            reader = _reader(cfg["reader"])
        except (OSError, ValueError) as e:
            # a dead reader must not keep the charger from booting (free vend still works)
            log.exc("board", "card reader unavailable", e)
        hal.Board.__init__(self, evses, reader, cfg["station"]["data_dir"])
        self.cfg = cfg
        self.vendor = cfg["station"]["vendor"]
        self.model = cfg["station"]["model"]
        self.serial = "".join("%02x" % b for b in machine.unique_id())
        self._scan_ms = cfg["reader"]["scan_ms"]
        self._wdt = None
        self._wdt_ms = cfg["watchdog_ms"] if watchdog else 0
        self.beat_ms = ticks_ms()      # last stepper heartbeat (diagnostics)
        self.stepper = None            # set by main.py
        self.safeties = None
        self.errors = 0
        li = cfg.get("limit_input")
        self.limit_input = None
        self.limit_evse = 0
        if li:
            self.limit_evse = li["evse"]
            if li["type"] == "digital":
                self.limit_input = io.LimitInput("digital", li["pin"], li["active_low"],
                                                 amps=li["amps"])
            else:
                self.limit_input = io.LimitInput("analog", li["adc_pin"],
                                                 full_scale_amps=li["full_scale_amps"])
        self.limit_amps = None     # the input's last reading (None: no limit)
        from board import ota
        self.ota = ota.Ota() if ota.available() else None  # "esp32-image" firmware bundles
        import sys
        sl = sys.modules.get("board.slot")  # boot.py counted a trial boot already
        self.slot_counted = bool(sl and sl.counted)
        self._limit_cb = None

    def attach_limits(self, cb):
        """The evse block takes the limit input's readings as cb(evse_id, amps or None),
        source "external"; the current one at once (again after a station restart)."""
        self._limit_cb = cb
        if self.limit_input is not None:
            cb(self.limit_evse, self.limit_amps)

    def poll_limit(self):
        """Read the limit input and hand a changed reading on. False when it did not change."""
        a = self.limit_input.read()
        if a == self.limit_amps:
            return False
        self.limit_amps = a
        if self._limit_cb is not None:
            self._limit_cb(self.limit_evse, a)
        return True

    def beat(self, now=None):
        """Once per stepper period, on the stepper's thread: the ESP32 task watchdog is fed
        per FreeRTOS task, so it is created here, by the task that feeds it."""
        self.beat_ms = ticks_ms() if now is None else now
        if self._wdt is None and self._wdt_ms:
            self._wdt = machine.WDT(timeout=self._wdt_ms)
        self.feed_watchdog(self.beat_ms)

    def healthy(self, now=None, max_age_ms=1000):
        """Every pilot sampled within max_age_ms, and the event loop alive within
        LOOP_DEAD_MS (see there). The stepper itself needs no check: its beat is the only
        feeder, so a stepper that stops or hangs stops the feeding."""
        now = ticks_ms() if now is None else now
        for e in self.evses:
            if ticks_diff(now, e.pilot.last_ms) > max_age_ms:
                return False
        st = self.stepper
        if st is not None and ticks_diff(now, st.loop_ms) > LOOP_DEAD_MS:
            return False
        return True

    def feed_watchdog(self, now=None):
        """Feed only while healthy(), so that a hung stepper (or an event loop dead for
        LOOP_DEAD_MS) ends in a reset with the relay dropping open."""
        if self._wdt is not None and self.healthy(now):
            self._wdt.feed()
            return True
        return False

    def idle(self):
        """The stepper's work after Ctrl-C: relays open, watchdog fed (the plain REPL)."""
        for e in self.evses:
            e.relay.set(False)
        if self._wdt is not None:
            self._wdt.feed()

    def safe_stop(self):
        """Relays open, pilot at steady +12 V: used when the event loop ends (Ctrl-C)."""
        if self.stepper is not None:
            self.stepper.stop(idle=self.idle)
        for e in self.evses:
            e.relay.set(False)
            e.pilot.offer(0)

    def keep_watchdog_alive(self):
        """After Ctrl-C the WDT can not be stopped on ESP32. With the relays open it is safe
        to go on feeding it: the stepper thread does if it took the idle function on (it is
        idling); if it had died before, or there is none, a timer."""
        st = self.stepper
        if self._wdt is None or (st is not None and st.threaded and st.idling):
            return
        wdt = self._wdt
        self._timer = machine.Timer(0)
        self._timer.init(period=1000, mode=machine.Timer.PERIODIC, callback=lambda t: wdt.feed())

    def reboot(self):
        self.safe_stop()
        machine.reset()

    async def rcd_self_test(self):
        """Self-test every RCD with its relay open; a failure latches the rcd fault. While
        it runs RCD trips are hidden from the safety: main.py awaits it before the station
        exists, so nothing can permit charging meanwhile."""
        for e in self.evses:
            if e.rcd is None or e.relay.closed():
                continue
            ok = await e.rcd.self_test()
            if ok is False:
                # now, not at the stepper's next fast(): the station comes next. A new set,
                # not add(): the stepper's thread may be iterating the old one
                e._faults = e._faults | {"rcd"}
                log.error("board", "EVSE %d RCD self-test failed" % e.id)

    async def _slow_loop(self):
        while True:
            for e in self.evses:
                try:
                    await e.slow()
                except Exception as ex:
                    self.errors += 1
                    log.exc("board", "meter loop", ex)
            await sleep_ms(SLOW_PERIOD_MS)

    async def _reader_loop(self):
        while True:
            try:
                await self.reader.scan()
            except Exception as ex:
                self.errors += 1
                log.exc("board", "reader", ex)
            await sleep_ms(self._scan_ms)

    async def _limit_loop(self):
        while True:
            try:
                self.poll_limit()
            except Exception as ex:
                self.errors += 1
                log.exc("board", "limit input", ex)
            await sleep_ms(LIMIT_PERIOD_MS)

    async def poll(self):
        # the pilot and fault inputs are sampled by the safety stepper (BoardEvse.fast)
        tasks = [asyncio.create_task(self._slow_loop())]
        if self.limit_input is not None:
            tasks.append(asyncio.create_task(self._limit_loop()))
        if hasattr(self.reader, "scan"):
            tasks.append(asyncio.create_task(self._reader_loop()))
        await asyncio.gather(*tasks)

    def status(self):
        out = []
        for e in self.evses:
            p = e.pilot
            d = {"id": e.id, "pilot": p.state(), "high_v": round(p.high_v, 2),
                 "low_v": round(p.low_v, 2), "offer": p.offered(), "relay": e.relay.closed(),
                 "feedback": e.relay.feedback(), "faults": sorted(e.faults()),
                 "max_current": e.max_current, "energy_wh": e.meter.energy_wh(),
                 "power_w": e.meter.power_w(), "estimated": e.meter.estimated()}
            if e.temp is not None:
                d["temp_c"] = e.temp.last_c
            out.append(d)
        return out
