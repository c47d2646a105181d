# firmware/rpc.py against a scripted in-memory WebSocket: handler failures become InternalError
# and the dispatcher keeps serving; `after` work runs only once the CALLRESULT is out; a CALL
# timing out leaves the link usable; replies to someone else's CALL are ignored. Portable:
# pytest and micropython (driven by test_portable_micropython.py).
import json

from fake_link import FakeWs
from firmware import compat
from firmware.rpc import Rpc, CallError


class _NoValidation:
    def known_action(self, a):
        return a in ("Reset", "DataTransfer")

    def check_request(self, a, p):
        return None

    def check_response(self, a, p):
        return None


def _serve(ws, rpc, until):
    async def run():
        task = compat.create_task(rpc.serve(ws))
        for _ in range(200):
            await compat.sleep_ms(2)
            if until():
                break
        task.cancel()
    compat.run(run())


def test_handler_exception_is_internal_error_and_serving_continues():
    rpc = Rpc(_NoValidation())

    def broken(payload):
        return payload["missing"]  # KeyError
    rpc.register("Reset", broken)
    rpc.register("DataTransfer", lambda p: {"status": "UnknownVendorId"})
    ws = FakeWs(['[2, "a", "Reset", {}]', '[2, "b", "DataTransfer", {"vendorId": "x"}]'])
    _serve(ws, rpc, lambda: len(ws.out) >= 2)
    assert ws.out[0][0] == 4 and ws.out[0][1] == "a" and ws.out[0][2] == "InternalError"
    assert "KeyError" in ws.out[0][3]
    assert ws.out[1] == [3, "b", {"status": "UnknownVendorId"}]


def test_handler_call_error_is_sent_as_is():
    rpc = Rpc(_NoValidation())

    def refuse(payload):
        raise CallError("OccurrenceConstraintViolation", "too many items", {"limit": 2})
    rpc.register("DataTransfer", refuse)
    ws = FakeWs(['[2, "c", "DataTransfer", {}]'])
    _serve(ws, rpc, lambda: ws.out)
    assert ws.out[0] == [4, "c", "OccurrenceConstraintViolation", "too many items", {"limit": 2}]


def test_after_runs_once_the_result_is_sent():
    rpc = Rpc(_NoValidation())
    seen = []
    ws = FakeWs(['[2, "d", "Reset", {}]'])

    async def after():
        seen.append(len(ws.out))

    rpc.register("Reset", lambda p: ({"status": "Accepted"}, after))
    _serve(ws, rpc, lambda: seen)
    assert ws.out[0] == [3, "d", {"status": "Accepted"}]
    assert seen == [1]


def test_call_timeout_then_link_still_usable_and_stray_reply_ignored():
    rpc = Rpc(_NoValidation())
    rpc.register("DataTransfer", lambda p: {"status": "Rejected"})
    ws = FakeWs([])
    result = {}

    async def run():
        task = compat.create_task(rpc.serve(ws))
        await compat.sleep_ms(1)
        try:
            await rpc.call("Heartbeat", {}, timeout_ms=50)
        except compat.TimeoutError:
            result["timeout"] = True
        late_id = ws.out[0][1]
        ws.feed(json.dumps([3, late_id, {"currentTime": "2026-01-01T00:00:00Z"}]))  # too late
        ws.feed('[2, "e", "DataTransfer", {"vendorId": "v"}]')
        await compat.sleep_ms(20)
        call = compat.create_task(rpc.call("Heartbeat", {}, timeout_ms=2000))
        await compat.sleep_ms(5)
        ws.feed(json.dumps([3, ws.out[-1][1], {"currentTime": "2026-01-01T00:00:01Z"}]))
        result["reply"] = await call
        task.cancel()
    compat.run(run())
    assert result["timeout"]
    assert [3, "e", {"status": "Rejected"}] in ws.out
    assert result["reply"] == {"currentTime": "2026-01-01T00:00:01Z"}


def test_trace_never_logs_passwords():
    from firmware import log
    lines = []
    old_sink = log.sink
    log.sink = lines.append
    try:
        rpc = Rpc(_NoValidation())
        rpc.trace = True
        rpc.register("SetVariables", lambda p: {"setVariableResult": []})
        rpc.register("SetNetworkProfile", lambda p: {"status": "Accepted"})
        ws = FakeWs([
            '[2, "p1", "SetVariables", {"setVariableData": [{"attributeValue": "Sup3r-Secret-Passw0rd",'
            ' "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]}]',
            '[2, "p2", "SetNetworkProfile", {"configurationSlot": 1, "connectionData": {'
            '"basicAuthPassword": "An0ther-Secret-Passw0rd"}}]',
            '{"broken": "password Third-Secret-Passw0rd"'])
        _serve(ws, rpc, lambda: len(ws.out) >= 3)
    finally:
        log.sink = old_sink
    text = "\n".join(lines)
    assert "SecurityCtrlr" in text and "SetNetworkProfile" in text  # the frames were traced
    for secret in ("Sup3r-Secret", "An0ther-Secret", "Third-Secret"):
        assert secret not in text, text


class _ChasingWs(FakeWs):
    """A CSMS that answers each CALL and sends its next CALL right behind the answer, both
    already waiting when the station reads the first (one TCP segment)."""

    def __init__(self, reply, chase):
        FakeWs.__init__(self)
        self.reply = reply
        self.chase = chase

    async def send(self, text):
        await FakeWs.send(self, text)
        frame = self.out[-1]
        if frame[0] == 2:
            self.feed(json.dumps([3, frame[1], self.reply]))
            for c in self.chase:
                self.feed(c)
            self.chase = ()


def test_call_result_takes_effect_before_the_next_incoming_call():
    # B01/B03: what the caller does with a CALLRESULT (boot status, HeartbeatInterval) is done
    # before the CSMS's next CALL, queued behind the result, reaches a handler or the gate
    rpc = Rpc(_NoValidation())
    state = {"boot": None}
    seen = []
    rpc.register("DataTransfer", lambda p: seen.append(state["boot"]) or {"status": "Accepted"})
    rpc.gate = lambda action, payload: seen.append(("gate", state["boot"])) and None
    ws = _ChasingWs({"status": "Accepted"}, ['[2, "n1", "DataTransfer", {"vendorId": "x"}]'])

    async def run():
        task = compat.create_task(rpc.serve(ws))
        await compat.sleep_ms(1)
        body = await rpc.call("BootNotification", {})
        state["boot"] = body["status"]  # no await between the reply and applying it
        for _ in range(100):
            if len(ws.out) >= 2:
                break
            await compat.sleep_ms(2)
        task.cancel()
    compat.run(run())
    assert seen == [("gate", "Accepted"), "Accepted"], seen
    assert ws.out[1] == [3, "n1", {"status": "Accepted"}]


def test_reply_nobody_takes_does_not_hold_the_link():
    # the hand-off is bounded: a reply whose caller never resumes delays the next frame by
    # at most handoff_ms, it does not stop the dispatcher
    rpc = Rpc(_NoValidation())
    rpc.handoff_ms = 30
    rpc.register("DataTransfer", lambda p: {"status": "Accepted"})
    ws = FakeWs()
    rpc._pending_id = "orphan"  # as if a caller were waiting, but none is
    ws.feed('[3, "orphan", {}]')
    ws.feed('[2, "n2", "DataTransfer", {"vendorId": "x"}]')
    _serve(ws, rpc, lambda: ws.out)
    assert ws.out == [[3, "n2", {"status": "Accepted"}]]
