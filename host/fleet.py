# Fleet mode of the simulator: N independent stations in one process, on one event loop, for
# CSMS load tests (CPython and MicroPython).
#
#   python -m host.sim --csms URL --stations N [--id-prefix P] [--data-dir DIR] [--script FILE]
#   micropython -X heapsize=32M -m host.sim --csms URL --stations 100 ...
#
# Station i (1..N) is P0001, P0002, ... with its own board, device model, message queue and
# data directory DIR/P0001 (DIR defaults to .sim-data). Console lines:
#   @P0001 CMD    one station's console (one JSON reply, with "station" added)
#   @all CMD      every station (one reply per station)
#   CMD           same as @all CMD
#   fleet         a summary: stations, connected, accepted, memory
#   wait SECONDS  pause (in a script); `wait accepted [SECONDS]` waits until every station is
#                 Accepted, at most SECONDS (default 300): then an error naming the late ones
# --no-fsync: the stations' data directories are written without fsync (a fleet's first boot
# costs about 7 fsyncs per station); a SIGKILL of the fleet may then lose their last writes.
# --script FILE runs such lines in order while stdin stays open for more; their replies
# carry "script": LINE_NUMBER.
#
# What the stations share: the process (one event loop, one safety stepper for all, see
# FleetStepper), the log (ring of `log N` and stderr lines; each line names the station whose
# task wrote it, "[P0001 evse] ..."), the clock correction learned from the CSMS and the DNS
# cache (firmware/compat.py).
import sys

from firmware import compat, log
from firmware.console import ConsoleError
from firmware.safety import Safety
from firmware.stepper import Stepper, PERIOD_MS

try:
    import _thread
except ImportError:
    _thread = None

MAX_STATIONS = 10000


def station_ids(prefix, n):
    width = max(4, len(str(n)))
    return ["%s%0*d" % (prefix, width, i) for i in range(1, n + 1)]


def check_args(a):
    """Fleet options (parsed by host.sim.parse_args) -> ConsoleError for bad ones."""
    try:
        n = int(a["stations"])
        if not 1 <= n <= MAX_STATIONS:
            raise ValueError
    except ValueError:
        raise ConsoleError("--stations must be a number from 1 to %d" % MAX_STATIONS)
    a["stations"] = n
    if a["csms"] is None:
        raise ConsoleError("--stations needs --csms URL (e.g. of `python -m host.csms`)")
    if a.get("id_given"):
        raise ConsoleError("--stations names the stations from --id-prefix; --id is for one station")
    p = a.get("id_prefix") or "CS"
    for c in p:
        if not (c.isalpha() or c.isdigit() or c in "-_."):
            raise ConsoleError("--id-prefix may hold letters, digits, '-', '_' and '.' only")
    a["id_prefix"] = p
    if not a.get("data_dir_given"):
        a["data_dir"] = ".sim-data"
    if a.get("script"):
        try:
            open(a["script"]).close()
        except OSError as e:
            raise ConsoleError("--script %s: cannot read it (%s)" % (a["script"], e))
    return a


WAIT_ACCEPTED_S = 300  # `wait accepted` gives up after this: a script never hangs

class FleetStepper:
    """Steps the Stepper of every station's board from one thread (a task where the runtime
    has no threads): N stations cost one 10 ms loop, not N threads. Each board keeps its own
    Stepper (its event ring, flag and lateness figures), which evse.Block finds as
    board.stepper, as on a real board. The thread never takes more than half of the time:
    after a round that took longer than the period it sleeps as long as the round took."""

    def __init__(self, period_ms=PERIOD_MS):
        self.steppers = []
        self.period_ms = period_ms
        self.rounds = 0
        self.worst_round_ms = 0
        self._run = False
        self.alive = False

    def attach(self, board):
        safeties = []
        for hw in board.evses:
            hw.safety = Safety(hw)
            safeties.append(hw.safety)
        sp = Stepper(safeties, period_ms=self.period_ms)
        board.stepper = sp
        self.steppers.append(sp)
        return sp

    def _round(self):
        t0 = compat.ticks_ms()
        for sp in self.steppers:
            now = compat.ticks_ms()
            late = compat.ticks_diff(now, sp.last_ms) - self.period_ms
            lt = sp.late
            if late > lt[0]:
                lt[0] = late
            lt[1] += 1
            try:
                sp.step(now)
            except Exception as e:
                sp.fail_all(now, e)
        took = compat.ticks_diff(compat.ticks_ms(), t0)
        self.rounds += 1
        if took > self.worst_round_ms:
            self.worst_round_ms = took
        return took

    def _wait(self, took):
        return self.period_ms - took if took < self.period_ms // 2 else max(took, self.period_ms // 2)

    def _loop(self):
        self.alive = True
        try:
            while self._run:
                ms = self._wait(self._round())
                if compat.MICROPYTHON:
                    import time
                    time.sleep_ms(ms)
                else:
                    import time
                    time.sleep(ms / 1000)
        finally:
            self.open_all()
            self.alive = False

    async def _task(self):
        self.alive = True
        try:
            while self._run:
                await compat.sleep_ms(self._wait(self._round()))
        finally:
            self.open_all()
            self.alive = False

    def start(self):
        self._run = True
        now = compat.ticks_ms()
        for sp in self.steppers:
            sp.last_ms = now
        if _thread is not None:
            for sp in self.steppers:
                sp.threaded = True
            _thread.start_new_thread(self._loop, ())
            return None
        return compat.create_task(self._task())

    async def stop(self):
        self._run = False
        for _ in range(100):
            if not self.alive:
                break
            await compat.sleep_ms(10)
        self.open_all()

    def open_all(self):
        for sp in self.steppers:
            sp.open_all()


def _tagged(reply, ident):
    # "ok" stays the first key: the reply dict keeps its order and "station" goes last
    reply["station"] = ident
    return reply


class Fleet:
    def __init__(self, args, simulator_class, write=None):
        self.args = args
        self.ids = station_ids(args["id_prefix"], args["stations"])
        self.stepper = FleetStepper()
        self.sims = {}
        self._sim_class = simulator_class
        self.tasks = []
        self.write = write

    def build(self):
        """Create every station (boards, device models on flash); ConsoleError on bad input."""
        base = self.args["data_dir"].rstrip("/")
        short = False
        for ident in self.ids:
            a = dict(self.args)
            a["id"] = ident
            a["data_dir"] = base + "/" + ident
            try:
                sim = self._sim_class(a)
                self.stepper.attach(sim.board)
                sim.make_station()
                self.sims[ident] = sim
            except MemoryError:
                short = True
                break
        if short:   # give the heap back first: the message needs some of it
            n = len(self.sims)
            self.sims = {}
            self.stepper.steppers = []
            sim = a = None
            compat.collect()
            raise ConsoleError("out of memory after %d stations%s" % (
                n, " (start micropython with a bigger heap, e.g. "
                "`micropython -X heapsize=64M -m host.sim ...`)" if compat.MICROPYTHON else ""))

    def start(self):
        self.stepper.start()
        first = self.stepper.steppers[0]
        self.tasks.append(compat.create_task(first.watch_loop()))   # feeds the `stall` figures
        log.owners = {}   # the stations share the log: each line names its station
        for ident, sim in self.sims.items():
            t = compat.create_task(sim.run())
            log.own(t, ident)
            self.tasks.append(t)

    def summary(self):
        n = len(self.sims)
        conn = acc = 0
        for sim in self.sims.values():
            st = sim.station
            if st is not None and st.connected:
                conn += 1
            if st is not None and st.boot_status == "Accepted":
                acc += 1
        r = {"ok": True, "stations": n, "connected": conn, "accepted": acc,
             "quit": sum(1 for s in self.sims.values() if s.quit),
             "stepper_rounds": self.stepper.rounds, "stepper_worst_round_ms": self.stepper.worst_round_ms}
        compat.collect()
        heap = compat.mem_figures()[1]
        if heap is not None:
            r["heap_alloc"] = heap
        rss = _rss_kb()
        if rss is not None:
            r["rss_kb"] = rss
        return r

    def late(self):
        """Identities of the running stations not (yet) Accepted, in order."""
        return [i for i in self.ids if not self.sims[i].quit and (
            self.sims[i].station is None or self.sims[i].station.boot_status != "Accepted")]

    def all_accepted(self):
        return not self.late()

    async def handle(self, line):
        """Run one console line; return the list of replies (JSON-able dicts)."""
        words = line.split(None, 1)
        head = words[0] if words else ""
        rest = words[1] if len(words) > 1 else ""
        if head == "fleet":
            return [self.summary()]
        if head == "wait":
            return [await self._wait(rest)]
        if head.startswith("@"):
            who = head[1:]
            if who == "all":
                targets = self.ids
            elif who in self.sims:
                targets = (who,)
            else:
                return [{"ok": False, "error": "no station %s (stations are %s..%s)"
                         % (who, self.ids[0], self.ids[-1])}]
            line = rest
        else:
            targets = self.ids
        if line.split(None, 1)[:1] == ["quit"] and len(targets) == len(self.ids) \
                and not self.args.get("verbose"):
            log.level = 3   # every station goes offline on purpose: not a warning each
        out = []
        for ident in targets:
            sim = self.sims[ident]
            if sim.quit:
                out.append(_tagged({"ok": False, "error": "station has quit"}, ident))
                continue
            out.append(_tagged(await sim.handle(line), ident))
        return out

    async def _wait(self, arg):
        words = arg.split()
        if words[:1] == ["accepted"]:
            try:
                limit = float(words[1]) if len(words) > 1 else WAIT_ACCEPTED_S
                if limit <= 0 or len(words) > 2:
                    raise ValueError
            except ValueError:
                return {"ok": False, "error": "usage: wait accepted [SECONDS], SECONDS > 0"}
            t0 = compat.ticks_ms()
            while not self.all_accepted():
                if compat.ticks_diff(compat.ticks_ms(), t0) >= limit * 1000:
                    late = self.late()
                    return {"ok": False, "error": "%d of %d stations not Accepted after %g s"
                            % (len(late), len(self.sims), limit), "not_accepted": late[:20]}
                await compat.sleep_ms(100)
            return {"ok": True, "accepted": len(self.sims)}
        try:
            s = float(arg)
            if s < 0:
                raise ValueError
        except ValueError:
            return {"ok": False, "error": "usage: wait SECONDS | wait accepted [SECONDS]"}
        await compat.sleep_ms(int(s * 1000))
        return {"ok": True, "waited": s}

    def done(self):
        for sim in self.sims.values():
            if not sim.quit and not (sim.console is not None and sim.console.quit):
                return False
        return True

    async def run_script(self, path):
        with open(path) as f:
            lines = f.read().split("\n")
        n = 0
        for line in lines:
            n += 1
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for r in await self.handle(line):
                r["script"] = n   # the script's line number: tells these from console replies
                self.write(r)
            if self.done():
                return

    async def stop(self):
        if not self.args.get("verbose"):
            log.level = 3   # N stations going offline on purpose: no warning each
        for sim in self.sims.values():
            sim.quit = True
        for t in self.tasks[1:]:
            try:
                await compat.wait_for_ms(t, 5000)
            except Exception:
                pass
        self.tasks[0].cancel()
        await self.stepper.stop()


def _rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class _NoSync:
    """storage.fs for --no-fsync: os, with fsync a no-op."""

    def __init__(self, real):
        self._real = real

    def fsync(self, fd):
        pass

    def __getattr__(self, name):
        return getattr(self._real, name)


async def fleet_main(args, simulator_class, stdin_lines, write):
    if not args["verbose"]:
        log.level = 2   # N stations' info lines would drown the console: warnings and errors only
    if args.get("no_fsync"):
        from firmware import storage
        storage.fs = _NoSync(storage.fs)
    fleet = Fleet(args, simulator_class, write)
    try:
        fleet.build()
    except ConsoleError as e:
        print("host.sim: %s" % e, file=sys.stderr)
        return 2
    fleet.start()
    script = None
    if args.get("script"):
        script = compat.create_task(fleet.run_script(args["script"]))
    lines = await stdin_lines.open()
    eof = []
    reader = compat.create_task(_console(fleet, lines, eof))
    # ends when every station has quit, or stdin is at its end and the script has run
    while not fleet.done() and not (eof and (script is None or script.done())):
        await compat.sleep_ms(100)
    for t in (script, reader):
        if t is not None and not t.done():
            t.cancel()
    await fleet.stop()
    return 0


async def _console(fleet, lines, eof):
    while True:
        line = await lines.readline()
        if not line:
            eof.append(True)
            return
        line = line.strip()
        if line:
            for r in await fleet.handle(line):
                fleet.write(r)
