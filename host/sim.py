# Station simulator: the portable core on simulated hardware, on CPython or MicroPython.
#
#   python -m host.sim [--csms URL] [--id IDENTITY] [--password PW] [--cafile PEM] [--evses N]
#                      [--data-dir DIR] [--set Component.Variable=VALUE ...] [--verbose]
#                      [--stop-reaction-ms MS]   (test knob: IEC 61851-1's 6 s EV reaction bound)
#   micropython -m host.sim --csms URL ...
#   python -m host.sim --csms URL --stations N [--id-prefix P] [--script FILE]   (host/fleet.py)
#
# With --csms: one command per stdin line, one JSON line per command on stdout, logs on stderr.
# Without --csms (CPython only): start the demo CSMS on a free loopback port and run a demo.
import sys
import json

from firmware import compat, log, safety
from firmware.hal import FAULT_NAMES, PILOT_STATES
from firmware.station import Station
from firmware.console import Console, ConsoleError, reply_json
from host.sim_board import SimBoard

USAGE = ("usage: host.sim [--csms URL] [--id IDENTITY] [--password PW] [--cafile PEM] "
         "[--evses N] [--data-dir DIR] [--set Component.Variable=VALUE] [--verbose] "
         "[--stop-reaction-ms MS] [--keep (demo: keep its data)]\n"
         "       host.sim --csms URL --stations N [--id-prefix P] [--data-dir DIR] [--script FILE]"
         "   (a fleet of N stations, see host/fleet.py)")

OPTIONS = {"--csms": "csms", "--id": "id", "--password": "password", "--cafile": "cafile",
           "--evses": "evses", "--data-dir": "data_dir", "--set": "set",
           "--stop-reaction-ms": "stop_reaction_ms",
           "--stations": "stations", "--id-prefix": "id_prefix", "--script": "script"}


def parse_args(argv):
    """Tiny argument parser (argparse is not available on every MicroPython)."""
    a = {"csms": None, "id": "CS001", "password": None, "cafile": None, "evses": "1",
         "data_dir": None, "set": [], "verbose": False, "stop_reaction_ms": None,
         "stations": None, "id_prefix": None, "script": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            raise ConsoleError(USAGE)
        if arg == "--verbose":
            a["verbose"] = True
            i += 1
            continue
        if arg == "--keep":   # the demo keeps its data directory
            a["keep"] = True
            i += 1
            continue
        if arg == "--no-fsync":   # fleet only (host/fleet.py)
            a["no_fsync"] = True
            i += 1
            continue
        key, val = arg, None
        if "=" in arg and arg.startswith("--"):
            key, val = arg.split("=", 1)
        name = OPTIONS.get(key)
        if name is None:
            raise ConsoleError("unknown option %s\n%s" % (arg, USAGE))
        if val is None:
            if i + 1 >= len(argv):
                raise ConsoleError("option %s needs a value\n%s" % (key, USAGE))
            val = argv[i + 1]
            i += 1
        if name == "set":
            a["set"].append(val)
        else:
            a[name] = val
            a[name + "_given"] = True
        i += 1
    try:
        a["evses"] = int(a["evses"])
        if not 1 <= a["evses"] <= 8:
            raise ValueError
    except ValueError:
        raise ConsoleError("--evses must be a number from 1 to 8")
    if a["stop_reaction_ms"] is not None:
        try:
            a["stop_reaction_ms"] = int(a["stop_reaction_ms"])
            if a["stop_reaction_ms"] < 0:
                raise ValueError
        except ValueError:
            raise ConsoleError("--stop-reaction-ms must be a number of milliseconds")
    if a["csms"] is not None:
        from firmware.ws import split_url, WsError
        try:
            split_url(a["csms"])
        except WsError as e:
            raise ConsoleError("--csms: %s (expected ws://host:port/path or wss://...)" % e)
    if a["stations"] is not None:
        from host import fleet
        return fleet.check_args(a)
    if a["id_prefix"] is not None or a["script"] is not None or a.get("no_fsync"):
        raise ConsoleError("--id-prefix, --script and --no-fsync go with --stations N")
    if a["data_dir"] is None:
        a["data_dir"] = ".sim-data/" + a["id"]
    return a


def apply_settings(station, settings):
    """--set is installer configuration: like SetVariables (type, range and value checks),
    but read-only values (e.g. OCPPCommCtrlr.MessageTimeout[Default]) may be set too."""
    if not settings:
        return
    # the name parser is the console's: borrowed for the boot, left loaded only if a
    # console (another station of a fleet) has it loaded
    cmds = compat.borrow("firmware.console_cmds")
    try:
        _apply_settings(station, settings, cmds.parse_var, cmds.dm_request)
    finally:
        compat.release("firmware.console_cmds")


def _apply_settings(station, settings, parse_var, dm_request):
    for s in settings:
        if "=" not in s:
            raise ConsoleError("--set expects Component.Variable=VALUE, got %r" % s)
        name, value = s.split("=", 1)
        item = parse_var(name)
        item["attributeValue"] = value
        r = dm_request("set_many", station.dm, [item], True)[0]
        status = r.get("attributeStatus")
        if status not in ("Accepted", "RebootRequired"):
            raise ConsoleError("--set %s: %s %s" % (name, status, r.get("attributeStatusInfo") or ""))


SIM_SYNTAX = {
    "plug": "plug N", "unplug": "unplug N", "ev": "ev N A|B|C|D|E|F",
    "stubborn": "stubborn N on|off", "tap": "tap TOKEN [TYPE]", "power": "power N WATTS",
    "fault": "fault N NAME", "clear": "clear N NAME", "lock": "lock N broken|ok",
}


def add_sim_commands(console, board):
    """Console commands that act on the simulated hardware (the EV, the driver, faults)."""

    def evse(args, usage, n=2):
        if len(args) != n:
            raise ConsoleError("usage: " + usage)
        try:
            i = int(args[0])
        except ValueError:
            raise ConsoleError("usage: " + usage)
        e = board.evse(i)
        if e is None:
            raise ConsoleError("no EVSE %s" % args[0])
        return e

    def plug(args):
        # the EV asks to charge (C); it shows B until the EVSE offers current
        evse(args, "plug N", 1).pilot.ev_state = "C"
        return {}

    def unplug(args):
        evse(args, "unplug N", 1).pilot.ev_state = "A"
        return {}

    def ev(args):
        e = evse(args, "ev N A|B|C|D|E|F")
        state = args[1].upper()
        if state not in PILOT_STATES:
            raise ConsoleError("usage: ev N A|B|C|D|E|F")
        e.pilot.ev_state = state
        return {}

    def stubborn(args):
        # an EV that stays in C when the EVSE withdraws its offer
        e = evse(args, "stubborn N on|off")
        if args[1] not in ("on", "off"):
            raise ConsoleError("usage: stubborn N on|off")
        e.pilot.stubborn = args[1] == "on"
        return {}

    def tap(args):
        if not 1 <= len(args) <= 2:
            raise ConsoleError("usage: tap TOKEN [TYPE]")
        board.reader.tap(args[0], args[1] if len(args) > 1 else "ISO14443")
        return {}

    def power(args):
        e = evse(args, "power N WATTS")
        try:
            w = float(args[1])
        except ValueError:
            raise ConsoleError("usage: power N WATTS")
        if not 0 <= w <= 100000:   # also refuses nan: an EV draws, it does not feed back
            raise ConsoleError("power: WATTS must be 0..100000, got %s" % args[1])
        e.meter.ev_power_w = w
        return {}

    def fault(args):
        e = evse(args, "fault N NAME")
        if args[1] not in FAULT_NAMES:
            raise ConsoleError("faults: " + ", ".join(FAULT_NAMES))
        # copy-on-write: the safety stepper's thread may be iterating the current set
        e._faults = set(e._faults) | {args[1]}
        return {}

    def clear(args):
        e = evse(args, "clear N NAME")
        e._faults = set(x for x in e._faults if x != args[1])
        return {}

    def lock(args):
        # break the socket lock (forced open, feedback unlocked) or mend it
        e = evse(args, "lock N broken|ok")
        if args[1] not in ("broken", "ok"):
            raise ConsoleError("usage: lock N broken|ok")
        e.lock.broken = args[1] == "broken"
        return {}

    def extlimit(args):
        # the board's limit input (an energy manager's signal): reported as source "external"
        from firmware.console_cmds import parse_limit  # the console runs the command: loaded
        n, amps = parse_limit(args, board, "extlimit")
        board.set_limit_input(n, amps)
        return {"evse": n, "extlimit": amps}

    for name, fn in (("plug", plug), ("unplug", unplug), ("ev", ev), ("stubborn", stubborn),
                     ("tap", tap), ("power", power), ("fault", fault), ("clear", clear),
                     ("lock", lock), ("extlimit", extlimit)):
        console.commands[name] = fn
    console.syntax.update(SIM_SYNTAX)


class Simulator:
    """Runs the station and restarts it in-process when it asks for a reboot."""

    def __init__(self, args):
        self.args = args
        if args.get("stop_reaction_ms") is not None:
            safety.STOP_REACTION_MS = args["stop_reaction_ms"]
        self.board = SimBoard(args["evses"], args["data_dir"], serial=args["id"])
        self.station = None
        self.console = None
        self.quit = False
        self.boots = 0

    def make_station(self):
        a = self.args
        st = Station(self.board, a["csms"], a["id"], password=a["password"], cafile=a["cafile"])
        if self.boots == 0:
            apply_settings(st, a["set"])
        self.boots += 1
        self.station = st
        # the commands load and drop with each console session: the simulator's are added
        # at every load, like the blocks' and the board's
        board = self.board
        st.on("console", lambda c: add_sim_commands(c, board))
        self.console = Console(st)
        return st

    async def run(self):
        st = self.station or self.make_station()
        while not self.quit:
            task = compat.create_task(st.run())
            while not (self.quit or self.board.reboot_requested or self.console.quit):
                await compat.sleep_ms(50)
            if self.console.quit:
                self.quit = True
            await st.stop()
            task.cancel()
            await compat.sleep_ms(20)
            if self.board.reboot_requested:
                self.board.reboot_requested = False
                if st.start_failed:
                    # restarting in this heap would fail the same way; a board resets instead
                    log.error("sim", "out of memory while starting: exit %d" % REBOOT_EXIT)
                    raise SystemExit(REBOOT_EXIT)
                log.info("sim", "station restarting")
            if not self.quit:
                # as after a hard reset: nothing of the old station is left on the heap
                self.station = self.console = st = None
                task = None
                compat.collect()
                try:
                    st = self.make_station()
                except MemoryError:
                    # a board would start from an empty heap; the simulator exits instead
                    # (its harness sees REBOOT_EXIT) rather than leave a dead station behind
                    log.error("sim", "out of memory while restarting: exit %d" % REBOOT_EXIT)
                    raise SystemExit(REBOOT_EXIT)

    async def handle(self, line):
        if self.console is None:
            return {"ok": False, "error": "station not started yet"}
        return await self.console.handle(line)


def _write(obj):
    sys.stdout.write(reply_json(obj) + "\n")
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


REBOOT_EXIT = 75  # the station wanted a reboot the in-process restart could not give it


class StdinLines:
    """Async `readline()` over stdin on both targets ('' at end of input)."""

    async def open(self):
        self._thread = False
        if compat.MICROPYTHON:
            self._reader = compat.asyncio.StreamReader(sys.stdin)
            return self
        import asyncio
        import os
        import stat
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader()
        mode = os.fstat(sys.stdin.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
            self._thread = True  # a regular file or /dev/null: epoll refuses them
            return self
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self._reader), sys.stdin)
        except (ValueError, OSError):
            self._thread = True  # stdin is a regular file: read it in a worker thread
        return self

    async def readline(self):
        if self._thread:
            import asyncio
            return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        line = await self._reader.readline()
        return line.decode() if isinstance(line, bytes) else line


def data_dir_error(path, e):
    return ("host.sim: cannot use --data-dir %s: %s (it must be a directory this user may "
            "write, or a path where one can be made)" % (path, e))


async def console_main(args):
    try:
        sim = Simulator(args)
        sim.make_station()
    except ConsoleError as e:
        print("host.sim: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:   # e.g. under /proc, a file in the way, read-only (OSError 30)
        print(data_dir_error(args["data_dir"], e), file=sys.stderr)
        return 2
    runner = compat.create_task(sim.run())
    await compat.sleep_ms(0)
    lines = await StdinLines().open()
    while True:
        line = await lines.readline()
        if not line:
            break
        try:
            _write(await sim.handle(line.strip()))   # an empty line too: one reply per line
        except MemoryError:   # the reply did not fit: say so in a few bytes, keep serving
            compat.collect()
            sys.stdout.write('{"ok": false, "error": "out of memory"}\n')
        if sim.console is not None and sim.console.quit:
            break
    sim.quit = True
    try:
        await compat.wait_for_ms(runner, 3000)
    except Exception:
        pass
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except ConsoleError as e:
        print(str(e), file=sys.stderr)
        return 0 if ("-h" in argv or "--help" in argv) else 2
    if args["verbose"]:
        log.level = 0
    if args["csms"] is None:
        if compat.MICROPYTHON:
            print("The demo CSMS needs CPython (mobilityhouse ocpp). Under micropython, pass "
                  "--csms URL of a running CSMS, e.g. one started with `python -m host.csms`.",
                  file=sys.stderr)
            return 2
        from host import demo
        return demo.main(args)
    if args["stations"] is not None:
        from host import fleet
        return compat.run(fleet.fleet_main(args, Simulator, StdinLines(), _write))
    try:
        return compat.run(console_main(args))
    except MemoryError:
        # the heap is too small for the station even to start (its console or first task):
        # said once, and the exit a supervisor restarts on, instead of a traceback
        compat.collect()
        log.error("sim", "out of memory while starting: exit %d" % REBOOT_EXIT)
        return REBOOT_EXIT


if __name__ == "__main__":
    sys.exit(main())
