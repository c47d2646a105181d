"""Relay reaction probe for `python -m tools bench` (runs under micropython and CPython).

    micropython tools/reaction.py ROOT TLS_PORT CAFILE DATA_DIR SECONDS [asyncio]

The ESP32 board on the fake `machine` (tests/fake_machine) runs board/main.py with its safety
stepper. An EV thread cycles C -> (EV opens S2: B | RCD trips) at random moments and polls the
relay output every ms; meanwhile the station side holds the event loop with the heaviest
blocking work, back to back: a TLS handshake to a loopback server, a DNS miss (the resolver's
lookup replaced by a 2 s blocking failure: a real miss would leave loopback), a synchronous
rewrite of a full 256 KB outbox (put()'s last-resort compaction), a FullInventory report built
in one go and a traced 20 KB frame printed and held for its time on a 115200-baud UART.
Prints one JSON line.
With `asyncio`, the stepper runs as an asyncio task (no _thread): the design before.
"""
import sys

ROOT = sys.argv[1]
for _p in (ROOT, ROOT + "/tests", ROOT + "/tests/fake_machine"):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from fake_machine import portable  # noqa: E402,F401
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import machine  # noqa: E402
from fake_machine.waves import PilotWave, Lcg  # noqa: E402
from firmware import compat, log, safety, stepper as stepper_mod  # noqa: E402
from firmware.compat import asyncio, ticks_ms, ticks_diff  # noqa: E402

try:
    import _thread
except ImportError:
    _thread = None


def _sleep_ms(ms):
    if compat.MICROPYTHON:
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def make_board(data_dir):
    from board import config, device
    from fake_machine import example_config
    raw = example_config(data_dir, ROOT)
    e = raw["evses"][0]
    e["pp"] = None
    e["cable_amps"] = 16
    e["temperature"] = None
    e["rcd"] = {"pin": 35, "active_low": True}       # trip input; no self-test at boot
    e["relay"] = {"pin": 26, "feedback_pin": None}   # no aux contact: the fake one would never follow the coil
    machine.reset_all()
    return device.EspBoard(config.validate(raw))


class Ev:
    """The EV and the scope: drives the pilot wave / RCD input, times the relay output."""

    def __init__(self, wave, relay, rcd):
        self.wave, self.relay, self.rcd = wave, relay, rcd
        self.cb = []
        self.trip = []
        self.timeouts = 0
        self.run = True
        self.done = False
        self.rng = Lcg(7)

    def _wait(self, want, limit_ms):
        t0 = ticks_ms()
        while self.relay.value() != want:
            if ticks_diff(ticks_ms(), t0) > limit_ms:
                return None
            _sleep_ms(1)
        return ticks_diff(ticks_ms(), t0)

    def _opened(self, limit_ms=10000):
        dt = self._wait(0, limit_ms)
        return limit_ms if dt is None else dt   # never dropped: a miss counts as the limit

    def loop(self):
        w = self.wave
        k = 0
        try:
            while self.run:
                w.duty = 16 / 0.6
                w.high_v = 6.0                        # C: wants energy
                if self._wait(1, 10000) is None:
                    self.timeouts += 1
                    w.high_v = 9.0
                    _sleep_ms(100)
                    continue
                _sleep_ms(50 + self.rng.next() % 250)  # a random phase of the station's work
                k += 1
                if k % 2:
                    w.high_v = 9.0                    # EV opens S2: C -> B
                    self.cb.append(self._opened())
                    _sleep_ms(100)
                else:
                    self.rcd.value(0)                 # RCD trips (active low)
                    self.trip.append(self._opened())
                    _sleep_ms(50)
                    self.rcd.value(1)
                    w.high_v = 12.0                   # unplug: clears the rcd fault
                    _sleep_ms(200)
                    w.high_v = 9.0
                    _sleep_ms(100)
        finally:
            self.done = True


class Work:
    """The station's heaviest blocking jobs, each run without yielding."""

    def __init__(self, board, port, cafile, data_dir):
        from firmware.storage import Store
        from firmware.device_model import DeviceModel
        self.port, self.cafile = port, cafile
        self.dm = DeviceModel(Store(data_dir + "/dm"), board.evses)
        self.queue = self._full_queue(data_dir + "/q")
        self.frame = '[2,"1","NotifyReport",{"x":"%s"}]' % ("y" * 20000)
        self.counts = {"tls": 0, "dns": 0, "compact": 0, "report": 0, "trace": 0}
        self.worst = {}

    def _full_queue(self, d):
        from firmware.storage import Store
        from firmware import msg_queue

        class St:
            store = Store(d)

            class rpc:
                n = [0]

                @staticmethod
                def next_id():
                    St.rpc.n[0] += 1
                    return "m%d" % St.rpc.n[0]

            def on(self, *a):
                pass

            def spawn(self, c):
                pass
        q = msg_queue.MessageQueue(St())
        pad = "z" * 600
        try:
            for i in range(2000):
                q.put("SecurityEventNotification", {"type": "X", "techInfo": pad, "n": i})
        except msg_queue.QueueFull:
            pass
        return q

    def tls(self):
        ctx = compat.tls_context(self.cafile)
        s = socket.socket()
        s.connect(socket.getaddrinfo("127.0.0.1", self.port)[0][-1])
        try:
            t = ctx.wrap_socket(s, server_hostname="localhost")
            t.close()
        except Exception:
            s.close()
            raise

    def dns(self):
        def slow_miss(host, port):
            _sleep_ms(2000)
            raise OSError("lookup of %s timed out" % host)
        real = compat._lookup
        compat._lookup = slow_miss
        try:
            compat._dns.clear()
            compat.resolve("csms.invalid", 443)
        except OSError:
            pass
        finally:
            compat._lookup = real

    def compact(self):
        # the outbox compacts in its own task, 4 KB per step; the heaviest case is put()'s
        # last resort, one synchronous rewrite of the whole full journal: that is run here
        self.queue._compact()

    def report(self):
        from firmware import dm_csms
        n = 0
        for item in dm_csms.report(self.dm, "FullInventory"):
            n += len(json.dumps(item))
        return n

    def trace(self):
        sys.stdout.write(self.frame + "\n")
        _sleep_ms(len(self.frame) * 10 // 115)      # 10 bits per byte at 115200 baud

    def once(self):
        for name in ("tls", "dns", "compact", "report", "trace"):
            t0 = ticks_ms()
            try:
                getattr(self, name)()
                self.counts[name] += 1
            except Exception as e:
                self.counts[name + "_err"] = repr(e)
            dt = ticks_diff(ticks_ms(), t0)
            if dt > self.worst.get(name, 0):
                self.worst[name] = dt


def main():
    port, cafile, data_dir, seconds = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    use_thread = not (len(sys.argv) > 6 and sys.argv[6] == "asyncio")
    log.level = 3
    if not use_thread:
        stepper_mod._thread = None
    board = make_board(data_dir)
    wave = PilotWave(9.0, -12.0, 100.0, noise_v=0.3)
    machine.created[("adc", 36)].source = wave
    ev = Ev(wave, machine.created[("pin", 26)], machine.created[("pin", 35)])
    work = Work(board, port, cafile, data_dir)
    from board import main as board_main

    class Station:
        def emit(self, *a):
            pass

        async def run(self):
            board.safeties[0].permit(True, True, 16)
            start_ev()
            t0 = ticks_ms()
            while ticks_diff(ticks_ms(), t0) < seconds * 1000:
                work.once()
                await asyncio.sleep(0)
            ev.run = False
            while not ev.done:
                await asyncio.sleep(0.01)
            raise SystemExit

    def start_ev():
        if _thread is not None:
            _thread.start_new_thread(ev.loop, ())
        else:
            raise RuntimeError("the probe's EV needs _thread")

    try:
        asyncio.run(board_main.run(board, board.cfg, station_factory=lambda b, c: Station()))
    except SystemExit:
        pass
    finally:
        board.stepper.stop()
    out = {"runtime": sys.implementation.name, "stepper": "thread" if use_thread else "asyncio",
           "cb": ev.cb, "trip": ev.trip, "timeouts": ev.timeouts,
           "stepper_late_ms": board.stepper.late[0], "loop_stall_ms": safety.stall[0],
           "work": work.counts, "work_worst_ms": work.worst,
           "debounce": board.evses[0].pilot.debounce}
    with open(data_dir + "/reaction.json", "w") as f:
        f.write(json.dumps(out))


main()
