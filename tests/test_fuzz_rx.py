"""Receive-path fuzzing: 10,000 seeded malformed or hostile frames per target (bad JSON, wrong
types, huge numbers, deep nesting, wrong ids, binary frames, unknown actions, mutated payloads).
Each must get the CALLERROR the OCPP-J rules call for (or, for stray replies, nothing), the
station must never crash, and it must still answer a valid call afterwards."""
import asyncio
import json
import random

from host.csms import schema_errors

FRAMES = 10000
SEED = 20261124

# Actions whose handlers are harmless to run with any valid payload (no reboot, no config change).
SAFE = ("DataTransfer", "GetVariables", "GetLocalListVersion", "GetTransactionStatus",
        "ClearCache")
ALL_ACTIONS = ("Authorize", "BootNotification", "ChangeAvailability", "ClearCache", "DataTransfer",
               "GetBaseReport", "GetVariables", "Reset", "SetVariables", "TriggerMessage",
               "RequestStartTransaction", "UnlockConnector", "SendLocalList", "SetNetworkProfile")
VALID = {
    "DataTransfer": {"vendorId": "com.example", "messageId": "m", "data": {"a": [1, 2]}},
    "GetVariables": {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                          "variable": {"name": "HeartbeatInterval"}}]},
    "GetLocalListVersion": {},
    "GetTransactionStatus": {},
    "ClearCache": {},
}
JUNK = [None, True, False, 0, -1, 1.5, 10 ** 30, -10 ** 30, 1e308, "", "x" * 40, [], {}, [1, [2]],
        {"a": {"b": None}}]


def _mutate(rng, payload):
    p = json.loads(json.dumps(payload))
    if not p or rng.random() < 0.2:
        p = dict(p)
        p[rng.choice(["bogus", "vendorId", "getVariableData", "evseId"])] = rng.choice(JUNK)
        return p
    key = rng.choice(sorted(p))
    op = rng.randrange(4)
    if op == 0:
        del p[key]
    elif op == 1:
        p[key] = rng.choice(JUNK)
    elif op == 2:
        p[key] = "Z" * rng.choice([1, 50, 300, 5000])
    else:
        p[key] = [p[key]] * rng.randrange(0, 40)
    return p


def make_frame(rng, i):
    """Returns (data, kind) where data is str or bytes."""
    mid = "f%d" % i
    r = rng.random()
    if r < 0.06:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), "binary"
    if r < 0.14:
        n = rng.randrange(1, 60)
        return "".join(rng.choice('[]{}",:0123456789abcnulltrue \\') for _ in range(n)), "text"
    if r < 0.18:
        depth = rng.choice([50, 500, 5000, 9000])  # under the station's 20 KB message cap
        return "[2, \"%s\", \"DataTransfer\", " % mid + "[" * depth + "]" * depth + "]", "text"
    if r < 0.22:
        return "[2, \"%s\", \"DataTransfer\", {\"vendorId\": \"v\", \"data\": %s}]" % (
            mid, rng.choice(["1e999999", "-1e999999", "9" * 400, "123456789012345678901234567890"])), "text"
    if r < 0.30:
        frame = [rng.choice(JUNK + [2, 3, 4, 5, 99]), rng.choice([mid, 7, None, "", "i" * 37, mid]),
                 rng.choice(ALL_ACTIONS + ("NoSuch",)), rng.choice(JUNK)]
        return json.dumps(frame[:rng.randrange(1, 5)]), "text"
    if r < 0.36:
        return json.dumps([rng.choice([3, 4]), "stray%d" % i] + rng.choice([[{}], ["GenericError", "", {}], []])), "text"
    if r < 0.42:
        return json.dumps([2, mid, rng.choice(["NoSuchAction", "", "x" * 300, "getvariables"]), {}]), "text"
    if r < 0.70:
        action = rng.choice(ALL_ACTIONS)
        return json.dumps([2, mid, action, _mutate(rng, VALID.get(action, {}))]), "text"
    action = rng.choice(SAFE)
    payload = VALID[action] if rng.random() < 0.5 else _mutate(rng, VALID[action])
    return json.dumps([2, mid, action, payload]), "text"


def expected_reply(data):
    """What OCPP-J says the station must answer: (reply id or None for no reply, allowed codes
    or None for 'a CALLRESULT is fine')."""
    if isinstance(data, bytes):
        return "-1", {"RpcFrameworkError"}
    try:
        msg = json.loads(data)
    except RecursionError:
        # Valid JSON too deep for CPython's recursive parser. A station whose parser copes
        # (MicroPython's is iterative) answers FormatViolation under the frame's id; one whose
        # parser gives up answers RpcFrameworkError under "-1". Both follow OCPP-J.
        mid = data.split('"')[1]
        return ("-1", mid), {"RpcFrameworkError", "FormatViolation"}
    except ValueError:
        return "-1", {"RpcFrameworkError"}
    # a reply too short to be valid is still a reply: never answered (part 4, 4.2.3)
    if not isinstance(msg, list) or len(msg) < 2 or (len(msg) < 3 and msg[0] not in (3, 4)):
        ok_id = isinstance(msg, list) and len(msg) >= 2 and isinstance(msg[1], str) and 0 < len(msg[1]) <= 36
        return (msg[1] if ok_id else "-1"), {"RpcFrameworkError"}
    mid = msg[1]
    if not isinstance(mid, str) or not 0 < len(mid) <= 36:
        return "-1", {"RpcFrameworkError"}
    kind = msg[0]
    if type(kind) is not int or kind not in (2, 3, 4):
        return mid, {"MessageTypeNotSupported"}
    if kind in (3, 4):
        return None, None
    if len(msg) != 4 or not isinstance(msg[2], str):
        return mid, {"RpcFrameworkError"}
    if not isinstance(msg[3], dict):
        return mid, {"FormatViolation"}
    action, payload = msg[2], msg[3]
    errs = schema_errors(action, "Request", payload)
    if errs and errs[0].startswith("no schema"):
        return mid, {"NotImplemented"}
    if errs:
        return mid, {"FormatViolation", "OccurrenceConstraintViolation", "TypeConstraintViolation",
                     "PropertyConstraintViolation", "NotSupported", "SecurityError"}
    if action not in SAFE:
        return mid, None  # valid but possibly unsafe actions are not generated
    return mid, {"NotSupported", "SecurityError"} | {None}


async def _fuzz(csms, cp, rng):
    stats = {"frames": 0, "errors": 0, "results": 0, "silent": 0}
    for i in range(FRAMES):
        data, _ = make_frame(rng, i)
        rid, codes = expected_reply(data)
        if isinstance(data, str) and rid is not None and codes is None:
            continue  # a valid frame for an unsafe action: not part of this test
        stats["frames"] += 1
        if rid is None:
            await csms.raw(cp, data)
            stats["silent"] += 1
            continue
        try:
            reply = await csms.raw(cp, data, reply_id=rid, timeout=10)
        except (asyncio.TimeoutError, ConnectionError) as e:
            raise AssertionError("frame %d got no reply (%r): %r" % (i, e, data[:300]))
        assert isinstance(reply, list) and reply[1] in (rid if isinstance(rid, tuple) else (rid,)), (data[:200], reply)
        if reply[0] == 4:
            stats["errors"] += 1
            assert reply[2] in codes, (data[:300], reply)
        else:
            stats["results"] += 1
            assert None in codes, (data[:300], reply)
    ok = await csms.call(cp, "DataTransfer", {"vendorId": "after-fuzz"})
    assert ok["status"] == "UnknownVendorId"
    return stats


async def _oversize(csms, cp):
    """A frame over the station's message cap: close 1009, then a clean reconnect."""
    session = csms.sessions[cp]
    await csms.raw(cp, '[2, "big", "DataTransfer", {"vendorId": "v", "data": "%s"}]' % ("x" * 30000))
    await session.ws.wait_closed()
    return session.ws.close_code


def test_fuzz_receive_path_10000_frames(csms, station):
    st = station(args=["--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
                       "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=0"])
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    csms.csms.quiet = True
    rng = random.Random(SEED)
    stats = csms.run(_fuzz(csms.csms, st.identity, rng), timeout=600)
    print("fuzz", st.target, stats)
    assert stats["frames"] >= 9000 and stats["errors"] > 3000 and stats["results"] > 500
    assert st.status()["connected"] is True
    assert csms.csms.connections == 1  # no crash, no reconnect needed for any of these
    assert csms.run(_oversize(csms.csms, st.identity)) == 1009
    csms.wait_for(lambda: csms.csms.connections == 2 and st.identity in csms.csms.sessions, 15, "reconnect")
    assert csms.call(st.identity, "DataTransfer", {"vendorId": "after-oversize"})["status"] == "UnknownVendorId"
