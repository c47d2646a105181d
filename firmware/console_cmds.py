# The console's commands, loaded by the resident front-end (firmware/console.py) on the first
# line and dropped after a linger without input: nothing here may hold state that must
# outlive that (the `quit` flag and the `mem watch` sampler live in firmware/console.py).
# Every command gets exactly one JSON-able dict back: {"ok": true, ...} or {"ok": false, "error": ...}.
# Variables are named Component[ci]@evse[,connector].Variable[vi], e.g.
#   OCPPCommCtrlr.HeartbeatInterval   OCPPCommCtrlr.MessageTimeout[Default]   EVSE@1.AvailabilityState

from firmware import compat, log
from firmware.console import ConsoleError, watch, watch_start


def dm_request(name, dm, *args):
    """dm_csms.<name>(dm, *args) for a command or an installer setting: the module is
    dropped again unless it was loaded already (by the variables block)."""
    dm_csms = compat.borrow(DM_CSMS)
    try:
        return getattr(dm_csms, name)(dm, *args)
    finally:
        compat.release(DM_CSMS)


DM_CSMS = "firmware.dm_csms"


def parse_limit(args, board, cmd):
    """`CMD N AMPS|off` (console `limit`, the simulator's `extlimit`) -> (EVSE id, amps or
    None); N = 0 is the whole station."""
    usage = "usage: %s N AMPS|off (N = EVSE id, 0 = station-wide)" % cmd
    if len(args) != 2:
        raise ConsoleError(usage)
    try:
        n = int(args[0])
        amps = None if args[1] == "off" else float(args[1])
    except ValueError:
        raise ConsoleError(usage)
    if n != 0 and board.evse(n) is None:
        raise ConsoleError("no EVSE %d" % n)
    if amps is not None and not 0 <= amps <= 1000:  # also refuses nan
        raise ConsoleError("AMPS must be 0..1000 or off")
    return n, amps


def parse_var(name):
    """'Comp[ci]@1,1.Var[vi]' -> dict with component/variable in OCPP GetVariableData shape."""
    dot = name.find(".")
    if dot <= 0 or dot == len(name) - 1:
        raise ConsoleError("expected Component.Variable, got %r" % name)
    comp_s, var_s = name[:dot], name[dot + 1:]
    comp = {}
    if "@" in comp_s:
        comp_s, ev = comp_s.split("@", 1)
        parts = ev.split(",")
        try:
            evse = {"id": int(parts[0])}
            if len(parts) > 1:
                evse["connectorId"] = int(parts[1])
        except ValueError:
            raise ConsoleError("bad EVSE in %r" % name)
        comp["evse"] = evse
    comp_name, ci = _split_instance(comp_s)
    var_name, vi = _split_instance(var_s)
    comp["name"] = comp_name
    if ci:
        comp["instance"] = ci
    var = {"name": var_name}
    if vi:
        var["instance"] = vi
    return {"component": comp, "variable": var}


def _split_instance(s):
    if s.endswith("]") and "[" in s:
        i = s.index("[")
        return s[:i], s[i + 1:-1]
    return s, None


class Commands:
    def __init__(self, console):
        self.console = console   # the resident front-end: its quit flag
        self.st = station = console.st
        self.commands = {
            "help": self._help,
            "status": self._status,
            "get": self._get,
            "set": self._set,
            "log": self._log,
            "trace": self._trace,
            "mem": self._mem,
            "stall": self._stall,
            "limit": self._limit,
            "modules": self._modules,
            "reboot": self._reboot,
            "quit": self._quit,
        }
        self.syntax = {}   # `help CMD` of commands added by other layers
        # Other layers (simulator, board, blocks) add their commands (and syntax) here, at
        # every load
        station.emit("console", self)

    async def handle(self, line):
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command; try 'help'"}
        fn = self.commands.get(words[0])
        if fn is None:
            return {"ok": False, "error": "unknown command %r; try 'help'" % words[0][:40]}
        try:
            r = fn(words[1:])
            if hasattr(r, "send"):
                r = await r
        except ConsoleError as e:
            out = {"ok": False, "error": str(e)}
            if e.extra:
                out.update(e.extra)
            return out
        except Exception as e:
            log.exc("console", "command %s failed" % words[0], e)
            return {"ok": False, "error": "%s failed: %s" % (words[0], e)}
        out = {"ok": True}
        if r:
            out.update(r)
        return out

    def _help(self, args):
        if not args:
            return {"commands": sorted(self.commands)}
        if args[0] not in self.commands:
            raise ConsoleError("unknown command %r; try 'help'" % args[0][:40])
        usage = self.syntax.get(args[0])
        if usage is None:   # the core commands' table loads for the question only
            from firmware import compat, console_help
            usage = console_help.SYNTAX.get(args[0], args[0])
            compat.unload("firmware.console_help")
        return {"command": args[0], "usage": usage}

    def _status(self, args):
        st = self.st
        s = st.status()
        ev = st.blocks.get("evse")
        s["evses"] = [ev.status(e.id) if ev is not None else {"id": e.id}
                      for e in st.board.evses]
        if ev is not None:
            s["station_limits"] = dict(ev.station_limits)
        return s

    def _limit(self, args):
        """`limit N AMPS|off`: the local limit (an operator, an energy manager on the serial
        line) of EVSE N, 0 = the whole station; below 6 A the EVSE suspends."""
        n, amps = parse_limit(args, self.st.board, "limit")
        self.st.emit("charging_limit", n, "local", amps)
        return {"evse": n, "limit": amps}

    def _get(self, args):
        if len(args) != 1:
            raise ConsoleError("usage: get Component.Variable")
        item = parse_var(args[0])
        r = dm_request("get", self.st.dm, item)
        if r.get("attributeStatus") != "Accepted":
            raise ConsoleError("%s: %s" % (args[0], r.get("attributeStatus")))
        return {"name": args[0], "value": r.get("attributeValue")}

    def _set(self, args):
        if len(args) < 2:
            raise ConsoleError("usage: set Component.Variable VALUE")
        item = parse_var(args[0])
        item["attributeValue"] = " ".join(args[1:])
        r = dm_request("set_many", self.st.dm, [item])[0]
        status = r.get("attributeStatus")
        if status not in ("Accepted", "RebootRequired"):
            info = r.get("attributeStatusInfo") or {}
            extra = {"status": status}
            why = ""
            if info.get("reasonCode"):
                extra["reasonCode"] = info["reasonCode"]
                why = " (%s" % info["reasonCode"]
                if info.get("additionalInfo"):
                    extra["additionalInfo"] = info["additionalInfo"]
                    why += ": %s" % info["additionalInfo"]
                why += ")"
            raise ConsoleError("%s: %s%s" % (args[0], status, why), extra)
        return {"name": args[0], "status": status}

    def _log(self, args):
        try:
            n = int(args[0]) if args else 10
        except ValueError:
            raise ConsoleError("usage: log N")
        return {"lines": log.recent(n)}

    def _mem(self, args):
        from firmware import compat
        if len(args) == 2 and args[0] == "watch":
            try:
                ms = int(args[1])
            except ValueError:
                raise ConsoleError("usage: mem [gc | blocks | watch MS]")
            watch_start(ms)
        elif args == ["gc"]:
            compat.collect()
        elif args == ["blocks"]:
            # MicroPython prints its block statistics (largest allocated and free block, in
            # 16-byte blocks on 64-bit) to stdout, ahead of this reply
            compat.collect()
            import micropython
            micropython.mem_info()
        elif args:
            raise ConsoleError("usage: mem [gc | blocks | watch MS]")
        free, alloc, peak = compat.mem_figures()
        return {"free": free, "alloc": alloc, "peak": peak, "live_max": watch[0],
                "flash_written": self.st.store.bytes_written}

    def _stall(self, args):
        from firmware import safety
        r = {"max_ms": safety.stall[0], "wakeups": safety.stall[1]}
        ev = self.st.blocks.get("evse")
        sp = ev.stepper if ev is not None else None
        if sp is not None:   # the safety thread's own lateness: what the relay deadline sees
            r["stepper_ms"] = sp.late[0]
            r["stepper_thread"] = sp.threaded
        if args == ["reset"]:
            safety.stall[0] = safety.stall[1] = 0
            if sp is not None:
                sp.late[0] = sp.late[1] = 0
        return r

    def _modules(self, args):
        # the station's modules: not this one, which is loaded only while the console is used
        # (asking would always find it)
        import sys
        return {"modules": sorted(m for m in sys.modules if m != __name__)}

    def _trace(self, args):
        if args not in (["on"], ["off"]):
            raise ConsoleError("usage: trace on|off")
        self.st.rpc.trace = args[0] == "on"
        return {"trace": self.st.rpc.trace}

    def _reboot(self, args):
        self.st.spawn(self._later_reboot())
        return {"rebooting": True}

    async def _later_reboot(self):
        from firmware import compat
        await compat.sleep_ms(100)  # let the reply reach the operator first
        self.st.reboot("LocalReset")

    def _quit(self, args):
        self.console.quit = True
        return {"bye": True}
