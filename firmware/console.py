# Line-command console shared by the simulator (stdin/stdout) and the device's serial REPL.
# Every command gets exactly one JSON-able dict back: {"ok": true, ...} or {"ok": false, "error": ...}.
# Variables are named Component[ci]@evse[,connector].Variable[vi], e.g.
#   OCPPCommCtrlr.HeartbeatInterval   OCPPCommCtrlr.MessageTimeout[Default]   EVSE@1.AvailabilityState
from firmware import log


class ConsoleError(Exception):
    pass


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
            "reboot": self._reboot,
            "quit": self._quit,
        }
        # Other layers (simulator, board, charging) add their commands here.
        for fn in station._listeners.get("console", ()):
            fn(self)

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
            return {"ok": False, "error": str(e)}
        except Exception as e:
            log.exc("console", "command %s failed" % words[0], e)
            return {"ok": False, "error": "%s failed: %s" % (words[0], e)}
        out = {"ok": True}
        if r:
            out.update(r)
        return out

    def _help(self, args):
        return {"commands": sorted(self.commands)}

    def _status(self, args):
        st = self.st
        s = st.status()
        ev = st.blocks.get("evse")
        s["evses"] = [ev.status(e.id) if ev is not None else {"id": e.id}
                      for e in st.board.evses]
        return s

    def _get(self, args):
        if len(args) != 1:
            raise ConsoleError("usage: get Component.Variable")
        item = parse_var(args[0])
        r = self.st.dm.csms_get(item)
        if r.get("attributeStatus") != "Accepted":
            raise ConsoleError("%s: %s" % (args[0], r.get("attributeStatus")))
        return {"name": args[0], "value": r.get("attributeValue")}

    def _set(self, args):
        if len(args) < 2:
            raise ConsoleError("usage: set Component.Variable VALUE")
        item = parse_var(args[0])
        item["attributeValue"] = " ".join(args[1:])
        r = self.st.dm.csms_set_many([item])[0]
        status = r.get("attributeStatus")
        if status not in ("Accepted", "RebootRequired"):
            raise ConsoleError("%s: %s" % (args[0], status))
        return {"name": args[0], "status": status}

    def _log(self, args):
        try:
            n = int(args[0]) if args else 10
        except ValueError:
            raise ConsoleError("usage: log N")
        return {"lines": log.recent(n)}

    def _mem(self, args):
        from firmware import compat
        if args == ["gc"]:
            compat.collect()
        free, alloc, peak = compat.mem_figures()
        return {"free": free, "alloc": alloc, "peak": peak}

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
