"""The command reader of `python -m host.csms`: drive the demo CSMS from stdin.

    list                              connected stations
    call ID ACTION {json payload}     send a CALL (any OCPP 2.0.1 action) to station ID
    help

Every command gets one JSON line on stdout; a `call` gets it when the station's
CALLRESULT / CALLERROR arrives (or the CSMS gives up), so several calls may be in flight and
their replies carry the station, action and message id. Bad input gets an {"ok": false}
line, never a traceback.
"""
import asyncio
import json
import sys

from ocpp.v201 import call as ocpp_call

from host.csms import CsmsCallError

HELP = ("list | call ID ACTION {json payload} | help   "
        "e.g. call CS001 Reset {\"type\":\"Immediate\"}")


def _action_class(action):
    cls = getattr(ocpp_call, action, None)
    if not isinstance(cls, type) or action.startswith("_"):
        return None
    return cls


class CsmsConsole:
    def __init__(self, csms, out=None, timeout=30):
        self.csms = csms
        self.out = out or sys.stdout
        self.timeout = timeout
        self._tasks = set()

    def write(self, obj):
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def handle(self, line):
        """Run one command line. Replies at once, or starts the call and replies later."""
        words = line.split(None, 3)
        if not words:
            return self.write({"ok": False, "error": "empty line; " + HELP})
        cmd = words[0]
        if cmd == "help":
            return self.write({"ok": True, "help": HELP})
        if cmd == "list":
            return self.write({"ok": True, "stations": sorted(self.csms.sessions)})
        if cmd != "call":
            return self.write({"ok": False, "error": "unknown command %r; %s" % (cmd, HELP)})
        if len(words) < 3:
            return self.write({"ok": False, "error": "usage: call ID ACTION {json payload}"})
        cp, action = words[1], words[2]
        text = words[3] if len(words) > 3 else "{}"
        err = {"ok": False, "station": cp, "action": action}
        try:
            payload = json.loads(text)
        except ValueError as e:
            err["error"] = "payload is not JSON: %s" % e
            return self.write(err)
        if not isinstance(payload, dict):
            err["error"] = "payload must be a JSON object"
            return self.write(err)
        if cp not in self.csms.sessions:
            err["error"] = "station %s is not connected (list shows who is)" % cp
            return self.write(err)
        if _action_class(action) is None:
            err["error"] = "unknown OCPP 2.0.1 action %r" % action
            return self.write(err)
        t = asyncio.get_running_loop().create_task(self._call(cp, action, payload))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _call(self, cp, action, payload):
        r = {"ok": False, "station": cp, "action": action}
        try:
            r["result"] = await self.csms.call(cp, action, payload, timeout=self.timeout)
            r["ok"] = True
        except CsmsCallError as e:
            r["error"] = "CALLERROR"
            r["code"] = e.code
            r["description"] = e.description
            r["details"] = e.details
        except TypeError as e:   # a field the action does not have
            r["error"] = "payload does not fit %s: %s" % (action, e)
        except asyncio.TimeoutError:
            r["error"] = "no reply within %s s" % self.timeout
        except KeyError:
            r["error"] = "station %s disconnected" % cp
        except Exception as e:   # schema violations (ocpp's FormatViolation ...), a lost link
            cause = getattr(e, "details", None)
            cause = cause.get("cause") if isinstance(cause, dict) else None
            r["error"] = "%s: %s" % (type(e).__name__, str(cause or e).split("\n")[0])
        self.write(r)

    async def run(self, reader):
        """Read command lines from an asyncio StreamReader until its end (then only serve)."""
        while True:
            line = await reader.readline()
            if not line:
                return
            line = line.decode(errors="replace").strip()
            if line:
                self.handle(line)


class _FileLines:
    """readline() of a stdin that is a regular file (`< commands.txt`), in a worker thread."""

    async def readline(self):
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        return line.encode()


async def stdin_reader():
    """Something with an async readline() -> bytes (b"" at the end) over stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):
        return _FileLines()
    return reader
