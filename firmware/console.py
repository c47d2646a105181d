# Line-command console shared by the simulator (stdin/stdout) and the device's serial REPL.
# Every command gets exactly one JSON-able dict back: {"ok": true, ...} or {"ok": false, "error": ...}.
# Variables are named Component[ci]@evse[,connector].Variable[vi], e.g.
#   OCPPCommCtrlr.HeartbeatInterval   OCPPCommCtrlr.MessageTimeout[Default]   EVSE@1.AvailabilityState
import json

from firmware import log


class ConsoleError(Exception):
    """A refused command: the message, and optional fields for the JSON reply."""

    def __init__(self, msg, extra=None):
        super().__init__(msg)
        self.extra = extra


def reply_json(reply):
    """One reply as a JSON line with "ok" first (MicroPython dicts keep no order)."""
    rest = dict(reply)
    ok = rest.pop("ok", False)
    tail = json.dumps(rest)[1:-1] if rest else ""
    return '{"ok": %s%s}' % ("true" if ok else "false", ", " + tail if tail else "")




def dm_request(name, dm, *args):
    """dm_csms.<name>(dm, *args) for a command or an installer setting: the module is
    dropped again unless it was loaded already (by the variables block)."""
    import sys
    had = "firmware.dm_csms" in sys.modules
    from firmware import dm_csms
    try:
        return getattr(dm_csms, name)(dm, *args)
    finally:
        if not had:
            from firmware import compat
            compat.unload("firmware.dm_csms")


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


class Console:
    def __init__(self, station):
        self.st = station
        self.quit = False
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
        # Other layers (simulator, board, charging) add their commands (and syntax) here.
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
        usage = "usage: limit N AMPS|off (N = EVSE id, 0 = station-wide)"
        if len(args) != 2:
            raise ConsoleError(usage)
        try:
            n = int(args[0])
            amps = None if args[1] == "off" else float(args[1])
        except ValueError:
            raise ConsoleError(usage)
        if n != 0 and self.st.board.evse(n) is None:
            raise ConsoleError("no EVSE %d" % n)
        if amps is not None and not 0 <= amps <= 1000:  # also refuses nan
            raise ConsoleError("AMPS must be 0..1000 or off")
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
            _watch_start(ms)
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
        return {"free": free, "alloc": alloc, "peak": peak, "live_max": _watch[0],
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
        import sys
        return {"modules": sorted(sys.modules)}

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
        self.quit = True
        return {"bye": True}


# `mem watch MS`: a sampler that collects every MS ms and keeps the largest live heap it saw
# (a benchmark aid; it costs a collection per sample). 0 stops it. Module-level, so it
# outlives a station restart inside the simulator.
_watch = [None, None]


def _watch_start(ms):
    from firmware import compat
    if _watch[1] is not None:
        _watch[1].cancel()
        _watch[1] = None
    _watch[0] = None
    if ms > 0:
        _watch[1] = compat.create_task(_watch_loop(ms))


async def _watch_loop(ms):
    from firmware import compat
    while True:
        compat.collect()
        a = compat.mem_figures()[1]
        if a is not None and (_watch[0] is None or a > _watch[0]):
            _watch[0] = a
        await compat.sleep_ms(ms)
