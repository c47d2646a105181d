"""OCPP-J RPC framing errors (part 4 §4.2-4.3), sent as raw frames by the CSMS to a station on
CPython and under micropython. After every hostile frame the station still answers a valid call."""
import pytest

LONG = "x" * 300

# (frame text, reply id, expected CALLERROR code)
CASES = [
    ("this is not json", "-1", "RpcFrameworkError"),
    ('{"not": "an array"}', "-1", "RpcFrameworkError"),
    ('[2, "e1"]', "e1", "RpcFrameworkError"),
    ('[2, 17, "DataTransfer", {"vendorId": "x"}]', "-1", "RpcFrameworkError"),
    ('[2, "%s", "DataTransfer", {"vendorId": "x"}]' % ("i" * 37), "-1", "RpcFrameworkError"),
    ('[2, "e2", "DataTransfer"]', "e2", "RpcFrameworkError"),
    ('[7, "e3", "DataTransfer", {}]', "e3", "MessageTypeNotSupported"),
    ('[true, "e4", "DataTransfer", {}]', "e4", "MessageTypeNotSupported"),
    ('[2, "e5", "NoSuchAction", {}]', "e5", "NotImplemented"),
    # a real OCPP 2.0.1 action that only local controllers implement
    ('[2, "e6", "PublishFirmware", {"location": "http://x", "checksum": "abc", "requestId": 1}]',
     "e6", "NotSupported"),
    ('[2, "e7", "DataTransfer", []]', "e7", "FormatViolation"),
    ('[2, "e8", "DataTransfer", {}]', "e8", "OccurrenceConstraintViolation"),
    ('[2, "e9", "DataTransfer", {"vendorId": 5}]', "e9", "TypeConstraintViolation"),
    ('[2, "e10", "DataTransfer", {"vendorId": "%s"}]' % LONG, "e10", "PropertyConstraintViolation"),
    ('[2, "e11", "DataTransfer", {"vendorId": "x", "bogus": 1}]', "e11", "FormatViolation"),
    ('[2, "e12", "GetVariables", {"getVariableData": [{"component": {"name": "X"}, '
     '"variable": {"name": "Y"}, "attributeType": "Nope"}]}]', "e12", "PropertyConstraintViolation"),
    ('[2, "e13", "GetVariables", {"getVariableData": []}]', "e13", "OccurrenceConstraintViolation"),
]


def booted(csms, st):
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")


def test_rpc_framework_error_codes(csms, station):
    st = station()
    booted(csms, st)
    for text, rid, code in CASES:
        reply = csms.raw(st.identity, text, reply_id=rid)
        assert reply[0] == 4 and reply[1] == rid, (text, reply)
        assert reply[2] == code, (text, reply)
        assert isinstance(reply[3], str) and len(reply[3]) <= 255 and isinstance(reply[4], dict)
        ok = csms.call(st.identity, "DataTransfer", {"vendorId": "after"})
        assert ok["status"] == "UnknownVendorId"


def test_binary_frame_is_refused(csms, station):
    st = station()
    booted(csms, st)
    reply = csms.raw(st.identity, b'[2, "b1", "DataTransfer", {"vendorId": "x"}]', reply_id="-1")
    assert reply[0] == 4 and reply[2] == "RpcFrameworkError"
    assert csms.call(st.identity, "DataTransfer", {"vendorId": "x"})["status"] == "UnknownVendorId"


def _station_frames_after(csms, st, n):
    return [m["frame"] for m in csms.csms.messages[n:] if m["cp"] == st.identity and m["dir"] == "in"]


def _stray_replies_get_no_answer(csms, st, texts, ids):
    n = len(csms.csms.messages)
    for text in texts:
        csms.raw(st.identity, text)
    # the station handles frames in order: anything it sent about the stray replies arrives
    # before this answer
    assert csms.call(st.identity, "DataTransfer", {"vendorId": "x"})["status"] == "UnknownVendorId"
    assert st.status()["connected"] is True
    sent = _station_frames_after(csms, st, n)
    # ignored means unanswered: no frame under those ids, and no CALLERROR at all (not even
    # under the "-1" of an unreadable id); part 4 §4.2.3 uses CALLERROR only to answer a CALL
    assert not [f for f in sent if isinstance(f, list) and len(f) > 1 and f[1] in ids], sent
    assert not [f for f in sent if isinstance(f, list) and f and f[0] == 4], sent


def test_replies_with_unknown_ids_are_ignored(csms, station):
    st = station()
    booted(csms, st)
    _stray_replies_get_no_answer(
        csms, st, ('[3, "nobody-asked", {}]', '[4, "nobody-asked", "GenericError", "", {}]',
                   '[4, "y", 5, null, 7]'), ("nobody-asked", "y"))


def test_too_short_reply_with_unknown_id_is_ignored(csms, station):
    st = station()
    booted(csms, st)
    _stray_replies_get_no_answer(csms, st, ('[3, "x"]',), ("x",))


def test_csms_call_answered_while_station_call_outstanding(csms, station):
    """Part 4 §4.1.1: the station answers CSMS CALLs while its own CALL awaits a reply, and a
    CALL left unanswered times out after MessageTimeout without harming the connection."""
    st = station(args=["--set", "OCPPCommCtrlr.MessageTimeout[Default]=3"])
    booted(csms, st)
    csms.csms.hold.add("Heartbeat")
    n = len(csms.csms.calls("Heartbeat", st.identity))
    st.cmd("set OCPPCommCtrlr.HeartbeatInterval 1")
    csms.wait_for(lambda: len(csms.csms.calls("Heartbeat", st.identity)) > n, 10, "held heartbeat")
    assert csms.call(st.identity, "DataTransfer", {"vendorId": "x"})["status"] == "UnknownVendorId"
    csms.csms.hold.clear()
    # the held heartbeat timed out; the next one is answered normally
    m = len(csms.csms.calls("Heartbeat", st.identity))
    csms.wait_for(lambda: len(csms.csms.calls("Heartbeat", st.identity)) > m + 1, 10, "heartbeats resume")
    assert st.status()["connected"] is True
