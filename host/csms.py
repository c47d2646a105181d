"""Demo / test CSMS built on the mobilityhouse `ocpp` package and `websockets` (CPython only).

It accepts stations, logs every frame, validates every frame a station sends against the
official OCPP 2.0.1 JSON schemas, answers with scriptable responses, and lets a test send
CALLs (well-formed through `ocpp`'s ChargePoint, or raw frames for robustness tests).
"""
import asyncio
import base64
import sys
import json
import logging
import os
import threading
import time
import urllib.parse

try:
    import jsonschema
    import ocpp.v201
    from ocpp.charge_point import camel_to_snake_case
    from ocpp.routing import on
    from ocpp.v201 import call as ocpp_call
    from ocpp.v201 import call_result
    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response
except ImportError as _e:   # run outside the venv: say how, not just "No module named"
    from host import missing_package
    print(missing_package(_e, "host.csms"), file=sys.stderr)
    raise SystemExit(2)

SCHEMA_DIR = os.path.join(os.path.dirname(ocpp.v201.__file__), "schemas")
_schema_cache = {}


def schema_errors(action, kind, payload):
    """List of jsonschema error messages for `payload` as `<action><kind>` (kind Request/Response)."""
    key = action + kind
    validator = _schema_cache.get(key)
    if validator is None:
        path = os.path.join(SCHEMA_DIR, key + ".json")
        if not os.path.exists(path):
            return ["no schema for %s" % key]
        with open(path) as f:
            schema = json.load(f)
        validator = jsonschema.Draft6Validator(schema)
        _schema_cache[key] = validator
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "<root>", e.message)
            for e in validator.iter_errors(payload)]


def _now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class CsmsCallError(Exception):
    def __init__(self, code, description, details=None):
        super().__init__("%s: %s" % (code, description))
        self.code = code
        self.description = description
        self.details = details


def default_response(action, payload):
    """A plausible, schema-valid answer to every station-initiated message."""
    if action == "BootNotification":
        return {"currentTime": _now_iso(), "interval": 300, "status": "Accepted"}
    if action == "Heartbeat":
        return {"currentTime": _now_iso()}
    if action == "Authorize":
        return {"idTokenInfo": {"status": "Accepted"}}
    if action == "TransactionEvent":
        if payload.get("idToken"):
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}
    if action == "DataTransfer":
        return {"status": "UnknownVendorId"}
    if action == "SignCertificate":
        return {"status": "Accepted"}
    return {}


class _Tap:
    """Sits between websockets and ocpp's ChargePoint: records and schema-checks every
    frame, and diverts replies to raw test frames away from the ChargePoint."""

    def __init__(self, csms, session, ws):
        self.csms = csms
        self.session = session
        self.ws = ws

    async def recv(self):
        while True:
            text = await self.ws.recv()
            frame = self.csms._record(self.session, "in", text)
            if isinstance(frame, list) and len(frame) >= 3 and frame[0] in (3, 4):
                fut = self.session.raw_waiters.pop(frame[1], None)
                if fut is not None:
                    if not fut.done():
                        fut.set_result(frame)
                    continue
                if frame[1] in self.session.replies:
                    self.session.replies[frame[1]] = frame
                if frame[1] in self.session.chased:
                    self.session.chased.discard(frame[1])
                    continue  # answers a frame sent by an after_reply hook: recorded only
            if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2 and frame[2] in self.csms.hold:
                continue  # recorded, never answered: lets tests exercise the station's timeouts
            if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
                self.session.in_actions[frame[1]] = (frame[2], frame[3])
                fail = self.csms.call_errors.get(frame[2])
                code = fail(self.session.id, frame[3]) if fail is not None else None
                if code:
                    await self.send(json.dumps([4, frame[1], code, "test CSMS refuses", {}]))
                    continue
            return text

    async def send(self, text):
        frame = self.csms._record(self.session, "out", text)
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
            self.session.out_actions[frame[1]] = frame[2]
        chase = None
        if isinstance(frame, list) and len(frame) >= 3 and frame[0] in (3, 4):
            req = self.session.in_actions.pop(frame[1], None)
            hook = self.csms.after_reply.get(req[0]) if req and frame[0] == 3 else None
            if hook is not None:
                chase = hook(self.session.id, req[1], frame[2])
        await self.ws.send(text)
        # the hook's frames follow the CALLRESULT at once, on the same connection, with
        # nothing awaited in between: a CSMS that acts on its own answer without delay
        for t in chase or ():
            f = self.csms._record(self.session, "out", t)
            self.session.out_actions[f[1]] = f[2]
            self.session.chased.add(f[1])
            await self.ws.send(t)


class Session(ocpp.v201.ChargePoint):
    """One connected station. Handlers route every station-initiated action to the CSMS's
    scriptable responder."""

    def __init__(self, csms, cp_id, ws):
        self.csms = csms
        self.raw_waiters = {}
        self.replies = {}
        self.out_actions = {}
        self.in_actions = {}  # id of a station CALL not answered yet -> (action, payload)
        self.chased = set()  # ids of CALLs sent by after_reply hooks, not answered yet
        self.ws = ws
        super().__init__(cp_id, _Tap(csms, self, ws), response_timeout=30)

    def _answer(self, action, kwargs):
        payload = self.csms._last_payload.get((self.id, action), {})
        resp = self.csms.respond(self.id, action, payload)
        cls = getattr(call_result, action)
        return cls(**camel_to_snake_case(resp))

    @on("BootNotification")
    def _boot(self, **kw):
        return self._answer("BootNotification", kw)

    @on("Heartbeat")
    def _heartbeat(self, **kw):
        return self._answer("Heartbeat", kw)

    @on("StatusNotification")
    def _status(self, **kw):
        return self._answer("StatusNotification", kw)

    @on("DataTransfer")
    def _data_transfer(self, **kw):
        return self._answer("DataTransfer", kw)

    @on("NotifyReport")
    def _notify_report(self, **kw):
        return self._answer("NotifyReport", kw)

    @on("NotifyEvent")
    def _notify_event(self, **kw):
        return self._answer("NotifyEvent", kw)

    @on("SecurityEventNotification")
    def _security_event(self, **kw):
        return self._answer("SecurityEventNotification", kw)

    @on("Authorize")
    def _authorize(self, **kw):
        return self._answer("Authorize", kw)

    @on("TransactionEvent")
    def _transaction_event(self, **kw):
        return self._answer("TransactionEvent", kw)

    @on("MeterValues")
    def _meter_values(self, **kw):
        return self._answer("MeterValues", kw)

    @on("FirmwareStatusNotification")
    def _fw_status(self, **kw):
        return self._answer("FirmwareStatusNotification", kw)

    @on("LogStatusNotification")
    def _log_status(self, **kw):
        return self._answer("LogStatusNotification", kw)

    @on("NotifyMonitoringReport")
    def _monitoring_report(self, **kw):
        return self._answer("NotifyMonitoringReport", kw)

    @on("SignCertificate")
    def _sign_certificate(self, **kw):
        return self._answer("SignCertificate", kw)

    @on("NotifyChargingLimit")
    def _notify_charging_limit(self, **kw):
        return self._answer("NotifyChargingLimit", kw)

    @on("ClearedChargingLimit")
    def _cleared_charging_limit(self, **kw):
        return self._answer("ClearedChargingLimit", kw)

    @on("ReportChargingProfiles")
    def _report_charging_profiles(self, **kw):
        return self._answer("ReportChargingProfiles", kw)

    @on("NotifyCustomerInformation")
    def _notify_customer_information(self, **kw):
        return self._answer("NotifyCustomerInformation", kw)

    @on("ReservationStatusUpdate")
    def _reservation_status(self, **kw):
        return self._answer("ReservationStatusUpdate", kw)


class Csms:
    def __init__(self, log=None, passwords=None, quiet=False):
        self.log = log or logging.getLogger("csms")
        self.quiet = quiet
        self.passwords = passwords or {}  # identity -> Basic auth password (security profile 1)
        self.sessions = {}
        self.messages = []  # dicts: t, cp, dir ('in' = from station), frame
        self.schema_violations = []
        self.responders = {}  # action -> fn(cp_id, payload) -> response payload dict
        self.hold = set()  # actions whose station CALLs are recorded but left unanswered
        # action -> fn(cp_id, payload) -> errorCode to answer with a CALLERROR, or None
        self.call_errors = {}
        # action -> fn(cp_id, request payload, response payload) -> raw CALL frames (text) to
        # send right behind the CALLRESULT to that station CALL, or None. Their replies are
        # only recorded (reply_to() finds them).
        self.after_reply = {}
        self.auth_failures = 0
        self.connections = 0
        # (identity, client certificate dict or None, time) per connection
        self.peercerts = []
        self._last_payload = {}
        self._uids = 0  # message ids of CALLs sent with call(): unique also when concurrent
        self._server = None
        self.port = None
        self.host = "127.0.0.1"
        self.changed = asyncio.Event()

    # ------------------------------------------------------------ scripting
    def respond(self, cp_id, action, payload):
        fn = self.responders.get(action)
        if fn is not None:
            return fn(cp_id, payload)
        return default_response(action, payload)

    def calls(self, action=None, cp=None):
        """Payloads of CALLs the station(s) sent, oldest first."""
        return [m["frame"][3] for m in self.messages
                if m["dir"] == "in" and m["frame"][0] == 2
                and (action is None or m["frame"][2] == action) and (cp is None or m["cp"] == cp)]

    def reply_to(self, msg_id, cp=None):
        """The station's CALLRESULT / CALLERROR frame answering the CSMS CALL `msg_id`, or None."""
        for m in self.messages:
            f = m["frame"]
            if m["dir"] == "in" and isinstance(f, list) and len(f) >= 3 and f[0] in (3, 4) \
                    and f[1] == msg_id and (cp is None or m["cp"] == cp):
                return f
        return None

    def _record(self, session, direction, text):
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError, UnicodeDecodeError):
            frame = text
        entry = {"t": time.time(), "cp": session.id, "dir": direction, "frame": frame}
        self.messages.append(entry)
        if not self.quiet:
            self.log.info("%s %s %s", session.id, "<-" if direction == "in" else "->", text)
        if direction == "in" and isinstance(frame, list) and frame:
            errors = []
            if frame[0] == 2 and len(frame) == 4:
                self._last_payload[(session.id, frame[2])] = frame[3]
                errors = schema_errors(frame[2], "Request", frame[3])
            elif frame[0] == 3 and len(frame) == 3:
                action = session.out_actions.pop(frame[1], None)
                if action:
                    errors = schema_errors(action, "Response", frame[2])
            elif frame[0] == 4:
                session.out_actions.pop(frame[1], None)
            for e in errors:
                self.schema_violations.append((session.id, text[:300], e))
                self.log.error("schema violation from %s: %s in %s", session.id, e, text[:300])
        self.changed.set()
        return frame

    # ------------------------------------------------------------ server
    def _check_request(self, connection, request):
        cp_id = urllib.parse.unquote(request.path.strip("/").split("/")[-1])
        expected = self.passwords.get(cp_id)
        if expected is None:
            return None
        header = request.headers.get("Authorization", "")
        ok = False
        if header.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
                ok = user == cp_id and pw == expected
            except Exception:
                ok = False
        if not ok:
            self.auth_failures += 1
            return Response(401, "Unauthorized", Headers({"WWW-Authenticate": 'Basic realm="ocpp"'}), b"")
        return None

    async def _handler(self, ws):
        cp_id = urllib.parse.unquote(ws.request.path.strip("/").split("/")[-1])
        if ws.subprotocol != "ocpp2.0.1":
            await ws.close(1002, "subprotocol ocpp2.0.1 required")
            return
        self.connections += 1
        session = Session(self, cp_id, ws)
        # the TLS client certificate the station presented (security profile 3), or None
        session.peercert = ws.transport.get_extra_info("peercert") if ws.transport else None
        self.peercerts.append((cp_id, session.peercert, time.time()))
        self.sessions[cp_id] = session
        self.log.info("station %s connected", cp_id)
        try:
            await session.start()
        except Exception as e:  # connection closed
            self.log.info("station %s disconnected: %s", cp_id, e)
        finally:
            if self.sessions.get(cp_id) is session:
                del self.sessions[cp_id]
            for fut in session.raw_waiters.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("station disconnected"))
            self.changed.set()

    async def start(self, host="127.0.0.1", port=0, ssl_context=None):
        self.host = host
        self._server = await serve(self._handler, host, port, subprotocols=["ocpp2.0.1"],
                                   process_request=self._check_request, ssl=ssl_context,
                                   ping_interval=None, max_size=2 ** 20,
                                   backlog=1024)  # a fleet's boot storm connects all at once
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, scheme="ws"):
        host = self.host if ":" not in self.host else "[%s]" % self.host
        return "%s://%s:%d" % (scheme, host, self.port)

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------ CSMS -> station
    async def call(self, cp_id, action, payload, timeout=15):
        """Send a well-formed CALL through ocpp's ChargePoint; return the raw response payload
        or raise CsmsCallError."""
        session = self.sessions[cp_id]
        req = getattr(ocpp_call, action)(**camel_to_snake_case(payload))
        self._uids += 1
        uid = "csms-%d" % self._uids
        session.replies[uid] = None
        session._response_timeout = timeout
        try:
            await session.call(req, suppress=False, unique_id=uid)
        except Exception:
            frame = session.replies.get(uid)
            if frame and frame[0] == 4:
                raise CsmsCallError(frame[2], frame[3], frame[4])
            raise
        finally:
            frame = session.replies.pop(uid, None)
        return frame[2]

    async def raw(self, cp_id, text, reply_id=None, timeout=10):
        """Send any frame; if reply_id (an id, or a tuple of acceptable ids) is given, wait for
        the CALLRESULT/CALLERROR carrying it."""
        session = self.sessions[cp_id]
        fut = None
        ids = reply_id if isinstance(reply_id, tuple) else (reply_id,)
        if reply_id is not None:
            fut = asyncio.get_running_loop().create_future()
            for rid in ids:
                session.raw_waiters[rid] = fut
        frame = session.csms._record(session, "out", text)
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2 and isinstance(frame[2], str) \
                and isinstance(frame[1], str):
            session.out_actions[frame[1]] = frame[2]
        await session.ws.send(text)
        if fut is None:
            return None
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            for rid in ids:
                session.raw_waiters.pop(rid, None)

    async def disconnect(self, cp_id, code=1000):
        session = self.sessions.get(cp_id)
        if session:
            await session.ws.close(code)


class CsmsThread:
    """Runs a Csms on its own event loop in a background thread, for synchronous tests."""

    def __init__(self, **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.csms = self.run(self._make(kw))

    async def _make(self, kw):
        return Csms(**kw)

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, **kw):
        return self.run(self.csms.start(**kw))

    def call(self, cp_id, action, payload, timeout=15):
        return self.run(self.csms.call(cp_id, action, payload, timeout), timeout + 5)

    def raw(self, cp_id, text, reply_id=None, timeout=10):
        return self.run(self.csms.raw(cp_id, text, reply_id, timeout), timeout + 5)

    def wait_for(self, predicate, timeout=15, what="condition"):
        """Poll `predicate()` (evaluated in the test thread) until truthy; return its value."""
        return wait_until(predicate, timeout, what)

    def stop(self):
        try:
            self.run(self.csms.stop(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def main(argv=None):
    """`python -m host.csms [PORT] [--host ADDR]`: run the demo CSMS until interrupted; stdin
    takes commands (host/csms_console.py), replies go to stdout as JSON lines, the frame
    log to stderr."""
    import sys
    from host import csms_console
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m host.csms [PORT] [--host ADDR]   (default 9000 on 127.0.0.1; 0 = any free port)"
    if "-h" in argv or "--help" in argv:
        from host import csms_console
        print(usage + "\n\nstdin commands:\n" + csms_console.__doc__.split("\n", 2)[2])
        return 0
    host = "127.0.0.1"
    if "--host" in argv:
        i = argv.index("--host")
        if i + 1 >= len(argv):
            print(usage, file=sys.stderr)
            return 2
        host = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) > 1 or (argv and not (argv[0].isdigit() and int(argv[0]) < 65536)):
        print("host.csms: PORT must be a number from 0 (any free port) to 65535, got %s\n%s"
              % (" ".join(argv), usage), file=sys.stderr)
        return 2
    port = int(argv[0]) if argv else 9000
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # the ocpp package logs every frame too: Csms._record's line is the one kept
    logging.getLogger("ocpp").setLevel(logging.WARNING)

    async def serve_forever():
        csms = Csms()
        await csms.start(host=host, port=port)
        print("demo CSMS on %s" % csms.url(), file=sys.stderr, flush=True)
        console = csms_console.CsmsConsole(csms)
        console.write({"ok": True, "listening": csms.url()})
        await console.run(await csms_console.stdin_reader())
        await asyncio.Future()  # stdin ended: go on serving

    try:
        asyncio.run(serve_forever())
    except KeyboardInterrupt:
        pass
    except OSError as e:   # port in use, address not on this machine
        print("host.csms: cannot listen on %s port %d: %s (pass another PORT, or --host)"
              % (host, port, e.strerror or e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    # run the host.csms module's main, not this __main__ copy: host.csms_console imports
    # host.csms, and its classes (CsmsCallError) must be the ones the CSMS raises
    from host import csms as _module
    sys.exit(_module.main())


def wait_until(predicate, timeout=15, what="condition"):
    """Poll `predicate()` every 20 ms until truthy and return its value; AssertionError after
    `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.02)
