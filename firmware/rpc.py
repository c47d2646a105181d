# OCPP-J RPC framing (OCPP 2.0.1 part 4): CALL [2, id, action, payload],
# CALLRESULT [3, id, payload], CALLERROR [4, id, code, description, details].
# At most one CALL from the station is outstanding; CSMS CALLs are answered meanwhile.
#
# The reply to the station's CALL takes effect before the next incoming frame is handled:
# the receive loop wakes the waiting caller and then waits until call() has handed the reply
# over (HANDOFF_MS at most). The caller runs on, up to its next await, before the receive
# loop resumes, so whatever it does with the result synchronously (boot status, the
# HeartbeatInterval of a BootNotificationResponse, an Authorize result, a TransactionEvent's
# idTokenInfo) is in place when the CSMS's next CALL, often in the same TCP segment, reaches
# the gate and the handlers. Callers therefore apply a result without awaiting anything first.
import json

from firmware import compat, log


def status_info(status, reason=None, info=None):
    """A response {"status": ...} with statusInfo (reasonCode, additionalInfo cut to the
    schemas' 512 characters) when a reason is given: the blocks' one way to refuse."""
    r = {"status": status}
    if reason:
        si = {"reasonCode": reason}
        if info:
            si["additionalInfo"] = str(info)[:512]
        r["statusInfo"] = si
    return r

CALL = 2
CALLRESULT = 3
CALLERROR = 4

MAX_ID_LEN = 36
HANDOFF_MS = 1000  # longest the receive loop waits for the caller to take its reply
MAX_DESCRIPTION = 255


class CallError(Exception):
    """A CALLERROR, received from the CSMS or raised by a handler to be sent to it."""

    def __init__(self, code, description="", details=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = details if details is not None else {}


class Offline(Exception):
    """No connection to the CSMS (never connected, or lost while waiting for a reply)."""


def _validator():
    try:
        from firmware import validate
        return validate
    except ImportError:
        return None


class Rpc:
    def __init__(self, validator=None):
        self.handlers = {}
        self.demand = None  # action -> handler for actions not in handlers, or None
        self.validator = validator if validator is not None else _validator()
        # The WebSocket to the CSMS, None while offline: the only record of the connection
        # (Station.connected reads it). Assign through `ws`, which keeps link_ev in step.
        self._ws = None
        self.memory_error = None  # a MemoryError while sending, for the connection loop
        self.link_ev = compat.asyncio.Event()  # set exactly while a WebSocket is attached
        self.trace = False
        # Set by the station: gate(action, payload) returns a CallError to refuse a CSMS request
        # (e.g. SecurityError while BootNotification is Rejected), or None to let it through.
        self.gate = None
        self._seq = 0
        self._prefix = "%x-" % compat.random_int(0, 0xFFFFFF)
        self._pending_id = None
        self._reply = None
        self._reply_ev = compat.asyncio.Event()
        self._taken = compat.asyncio.Event()  # call() has taken the reply _on_reply stored
        self.handoff_ms = HANDOFF_MS
        self._call_lock = compat.asyncio.Lock()
        # Length of the frame being handled, for the BytesPerMessage limits: handlers compare
        # it instead of serialising the request again (a multi-KB copy on a small heap).
        # Characters, which equal bytes for ASCII and undercount other UTF-8.
        self.frame_len = 0

    @property
    def ws(self):
        return self._ws

    @ws.setter
    def ws(self, ws):
        self._ws = ws
        if ws is None:
            self.link_ev.clear()
        else:
            self.link_ev.set()

    def register(self, action, handler):
        self.handlers[action] = handler

    def next_id(self):
        self._seq += 1
        return self._prefix + str(self._seq)

    # ---------------------------------------------------------------- outgoing
    async def _send(self, frame):
        ws = self._ws
        if ws is None:
            raise Offline("not connected")
        if frame[0] == CALL:
            # as JSON text pieces that the WebSocket writes one after the other: a big
            # message (a NotifyReport part, an Ended event) never exists as one string
            head = "[2,%s,%s," % (json.dumps(frame[1]), json.dumps(frame[2]))
            p = frame[3]
            text = [head] + p + ["]"] if isinstance(p, list) else json_pieces(p, [head], "]")
        else:
            text = json.dumps(frame)
        if self.trace:
            log.info("ocpp", ">> " + redact(text if isinstance(text, str) else "".join(text)))
        try:
            await ws.send(text)
        except MemoryError as e:
            # a frame may be half written: the link is unusable. The connection loop
            # reconnects and counts it (Station.out_of_memory)
            text = None
            self.memory_error = e
            ws.abort("out of memory while sending")
            raise Offline("send failed: MemoryError")
        except Exception as e:  # transport gone: the connection loop reconnects
            raise Offline("send failed: %s" % (e,))

    async def call(self, action, payload, timeout_ms=30000, msg_id=None):
        """Send a CALL and return the CALLRESULT payload (`payload` may be a list of JSON
        text pieces that make up the object).
        Raises CallError (CALLERROR or an invalid reply), compat.TimeoutError or Offline."""
        async with self._call_lock:
            if self._ws is None:
                raise Offline("not connected")
            mid = msg_id or self.next_id()
            self._pending_id = mid
            self._reply = None
            self._reply_ev.clear()
            try:
                await self._send([CALL, mid, action, payload])
                await compat.wait_for_ms(self._reply_ev.wait(), timeout_ms)
            finally:
                self._pending_id = None
                # lets the receive loop go on (also after a timeout or cancellation); it runs
                # again only when this task next awaits, i.e. after the caller used the reply
                self._taken.set()
            reply = self._reply
            self._reply = None
            if reply is None:
                raise Offline("connection lost while waiting for %s reply" % action)
            if reply[0] == CALLERROR:
                raise CallError(reply[2], reply[3], reply[4])
            body = reply[2]
            v = self.validator
            if v is not None:
                err = v.check_response(action, body)
                if err:
                    raise CallError(err[0], "invalid %s response: %s" % (action, err[1]))
            return body

    # ---------------------------------------------------------------- incoming
    async def serve(self, ws):
        """Attach `ws` (if it is not already), process its frames until it closes, detach it;
        returns the exception that ended it."""
        self.ws = ws
        try:
            while True:
                msg = await ws.recv()
                await self.on_frame(msg)
        except Exception as e:
            return e
        finally:
            if self._ws is ws:  # not detached meanwhile (Station.stop)
                self.ws = None
            if self._pending_id is not None:
                self._reply = None
                self._reply_ev.set()  # wake the caller: Offline

    async def on_frame(self, text):
        if self.trace:
            log.info("ocpp", "<< " + (redact(text) if isinstance(text, str) else repr(text)[:200]))
        if not isinstance(text, str):
            await self._error("-1", "RpcFrameworkError", "binary frames are not used by OCPP-J")
            return
        self.frame_len = len(text)
        try:
            msg = json.loads(text)
        except Exception:  # ValueError, RecursionError, MemoryError on hostile input
            await self._error("-1", "RpcFrameworkError", "frame is not valid JSON")
            return
        # a too-short reply still goes to _on_reply (ignored or a local FormatViolation):
        # a CALLERROR only ever answers a CALL (part 4, 4.2.3)
        if not isinstance(msg, list) or len(msg) < 2 or (
                len(msg) < 3 and msg[0] not in (CALLRESULT, CALLERROR)):
            await self._error(_readable_id(msg), "RpcFrameworkError",
                              "frame is not a JSON array of at least 3 elements")
            return
        mid = msg[1]
        if not isinstance(mid, str) or not mid or len(mid) > MAX_ID_LEN:
            await self._error("-1", "RpcFrameworkError", "message id must be a string of 1..36 characters")
            return
        kind = msg[0]
        if kind == CALL and type(kind) is int:
            await self._on_call(msg)
        elif kind == CALLRESULT and type(kind) is int:
            if self._on_reply(msg, 3):
                await self._handoff()
        elif kind == CALLERROR and type(kind) is int:
            if self._on_reply(msg, 5):
                await self._handoff()
        else:
            await self._error(mid, "MessageTypeNotSupported", "unknown message type id %r" % (kind,))

    def _on_reply(self, msg, length):
        """Store the reply for the waiting call(); True when it was one."""
        mid = msg[1]
        if mid != self._pending_id or self._reply is not None:
            log.warn("ocpp", "ignoring reply with unexpected id %s" % mid)
            return False
        if len(msg) != length or (length == 3 and not isinstance(msg[2], dict)):
            msg = [CALLERROR, mid, "FormatViolation", "malformed reply frame", {}]
        elif length == 5:
            code, desc, details = msg[2], msg[3], msg[4]
            msg = [CALLERROR, mid, code if isinstance(code, str) else "GenericError",
                   desc if isinstance(desc, str) else "", details if isinstance(details, dict) else {}]
        self._reply = msg
        self._taken.clear()
        self._reply_ev.set()
        return True

    async def _handoff(self):
        # Usually taken within two loop turns (the woken caller, and its wait_for where that
        # wraps a task); plain yields are cheaper than the bounded wait, which is for the rest.
        for _ in range(3):
            await compat.sleep_ms(0)
            if self._taken.is_set():
                return
        try:
            await compat.wait_for_ms(self._taken.wait(), self.handoff_ms)
        except compat.TimeoutError:
            log.warn("ocpp", "reply not taken within %d ms, going on" % self.handoff_ms)

    async def _on_call(self, msg):
        mid = msg[1]
        if len(msg) != 4 or not isinstance(msg[2], str):
            await self._error(mid, "RpcFrameworkError", "CALL must be [2, id, action, payload]")
            return
        action, payload = msg[2], msg[3]
        if not isinstance(payload, dict):
            await self._error(mid, "FormatViolation", "payload must be a JSON object")
            return
        try:
            if self.gate is not None:
                refused = self.gate(action, payload)
                if refused is not None:
                    raise refused
            handler = self.handlers.get(action)
            if handler is None and self.demand is not None:
                handler = self.demand(action)  # an on-demand block's (Station._demand_handler)
            v = self.validator
            if handler is None:
                if v is not None and v.known_action(action):
                    raise CallError("NotSupported", "%s is not supported by this station" % action)
                raise CallError("NotImplemented", "unknown action %s" % action[:64])
            if v is not None:
                err = v.check_request(action, payload)
                if err:
                    raise CallError(err[0], err[1])
            result = handler(payload)
            if hasattr(result, "send"):  # coroutine (async handler) on both targets
                result = await result
            after = None
            if isinstance(result, tuple):
                result, after = result
        except CallError as e:
            await self._error(mid, e.code, e.description, e.details)
            return
        except Exception as e:
            log.exc("ocpp", "handler for %s failed" % action, e)
            await self._error(mid, "InternalError", "%s handler failed: %s" % (action, _short(e)))
            return
        try:
            await self._send([CALLRESULT, mid, result])
        except Offline:
            drop = getattr(after, "drop", None)  # the follow-up will not run: let it clean up
            if drop is not None:
                drop()
            return
        if after is not None:
            log.adopt(compat.create_task(_guard(after, action)))

    async def _error(self, mid, code, description, details=None):
        if len(description) > MAX_DESCRIPTION:
            description = description[:MAX_DESCRIPTION]
        try:
            await self._send([CALLERROR, mid, code, description, details or {}])
        except Offline:
            pass


async def _guard(after, action):
    try:
        await after()
    except Exception as e:
        log.exc("ocpp", "follow-up of %s failed" % action, e)


SECRET_KEYS = ("basicAuthPassword",)  # SetNetworkProfile connectionData


def _secret_variables():
    # the device-model table flags secrets; read it only when a trace needs it
    from firmware import dm_table as T
    return [r[1] for r in T.Rows() if T.is_secret(r[3])]


def json_pieces(obj, out, tail):
    """`obj` (a dict) as JSON text pieces appended to `out`, then `tail`: one piece per
    member, and one per element of a member that is a list (meterValue, reportData...)."""
    sep = "{"
    for k in obj:
        v = obj[k]
        if isinstance(v, list) and len(v) > 1:
            out.append("%s%s:[%s" % (sep, json.dumps(k), json.dumps(v[0])))
            for i in range(1, len(v)):
                out.append("," + json.dumps(v[i]))
            out.append("]")
        else:
            out.append("%s%s:%s" % (sep, json.dumps(k), json.dumps(v)))
        sep = ","
    out.append(("}" if sep == "," else "{}") + tail)
    return out


def redact(text):
    """A frame for the trace log with secrets masked: SetVariables values of secret variables
    and SetNetworkProfile's basicAuthPassword. Unparsable text containing 'assword' is
    withheld entirely rather than risk printing a secret."""
    if "assword" not in text:
        return text
    try:
        frame = json.loads(text)
    except Exception:
        return "<frame withheld: %d bytes>" % len(text)
    _mask(frame, 0, _secret_variables())
    return json.dumps(frame)


def _mask(node, depth, secrets):
    if depth > 12:
        return
    if isinstance(node, dict):
        var = node.get("variable")
        if isinstance(var, dict) and var.get("name") in secrets and "attributeValue" in node:
            node["attributeValue"] = "***"
        for k in node:
            if k in SECRET_KEYS:
                node[k] = "***"
            else:
                _mask(node[k], depth + 1, secrets)
    elif isinstance(node, list):
        for x in node:
            _mask(x, depth + 1, secrets)


def _readable_id(msg):
    if isinstance(msg, list) and len(msg) >= 2 and isinstance(msg[1], str) and 0 < len(msg[1]) <= MAX_ID_LEN:
        return msg[1]
    return "-1"


def _short(e):
    s = "%s: %s" % (type(e).__name__, e)
    return s[:120]
