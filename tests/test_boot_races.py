"""A CSMS that sends its next CALL right behind its BootNotificationResponse, on the same
connection (the test CSMS's after_reply hook), 20 boots per test, station on CPython and under
micropython. The station must have applied the response (boot status, interval) before it
handles that CALL: on CPython both frames often arrive in one read, and the receive loop used
to dispatch the second before the task waiting for the first had run."""
from tests.helpers import TOKEN, get_var

RUNS = 20
COMM = "OCPPCommCtrlr"


def _boot(status, interval):
    def responder(cp, payload):
        return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": interval, "status": status}
    return responder


def _frame(mid, action, payload):
    import json
    return json.dumps([2, mid, action, payload])


def _reply(csms, cp, mid):
    return csms.wait_for(lambda: csms.csms.reply_to(mid, cp), 15, "reply to %s" % mid)


def test_B01_csms_calls_right_after_boot_accepted_find_it_applied(csms, station):
    """B01: once Accepted the CSMS may act at once. SetVariables HeartbeatInterval=2 right
    after a response with interval 300 is kept (B05: Accepted means in effect), and
    RequestStartTransaction right after it is not refused as CSNotAccepted (F01)."""
    csms.csms.responders["BootNotification"] = _boot("Accepted", 300)
    runs = []

    def chase(cp, req, resp):
        n = len(runs)
        runs.append(req["reason"])
        return [_frame("sv%d" % n, "SetVariables", {"setVariableData": [{
                    "component": {"name": COMM}, "variable": {"name": "HeartbeatInterval"},
                    "attributeValue": "2"}]}),
                _frame("rs%d" % n, "RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": n + 1})]
    csms.csms.after_reply["BootNotification"] = chase
    st = station()
    cp = st.identity
    bad = []
    for n in range(RUNS):
        sv = _reply(csms, cp, "sv%d" % n)
        rs = _reply(csms, cp, "rs%d" % n)
        hb = get_var(csms, cp, COMM, "HeartbeatInterval")
        if sv[0] != 3 or sv[2]["setVariableResult"][0]["attributeStatus"] != "Accepted" \
                or rs[0] != 3 or rs[2]["status"] != "Accepted" or hb != "2":
            bad.append((n, sv, rs, hb))
        if n == RUNS - 1:
            break
        assert csms.call(cp, "Reset", {"type": "Immediate"})["status"] == "Accepted"
        csms.wait_for(lambda: len(runs) > n + 1, 20, "boot %d" % (n + 2))
    assert not bad, "%d of %d runs: %s" % (len(bad), RUNS, bad[:3])
    assert runs[0] == "PowerUp" and runs[1:] == ["RemoteReset"] * (RUNS - 1)
    # and the 2 s interval is what the heartbeat follows (300 s would send none here)
    csms.wait_for(lambda: csms.csms.calls("Heartbeat", cp), 20, "a Heartbeat")


def test_TC_B_30_CS_security_error_right_after_rejected_boot(csms, station):
    """B03.FR.08: a CALL sent right behind the Rejected BootNotificationResponse already gets
    SecurityError. Between runs the CSMS triggers a boot it answers Pending (so the status
    before each Rejected is not Rejected already) and then the next one (TC_B_31:
    TriggerMessage BootNotification is accepted while Rejected, and while Pending)."""
    answers = []
    runs = []

    def boot(cp, payload):
        answers.append("Rejected" if len(answers) % 2 == 0 else "Pending")
        return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": 60, "status": answers[-1]}

    def chase(cp, req, resp):
        if resp["status"] != "Rejected":
            return None
        n = len(runs)
        runs.append(req["reason"])
        return [_frame("gv%d" % n, "GetVariables", {"getVariableData": [{
            "component": {"name": COMM}, "variable": {"name": "HeartbeatInterval"}}]})]
    csms.csms.responders["BootNotification"] = boot
    csms.csms.after_reply["BootNotification"] = chase
    st = station()
    cp = st.identity
    bad = []
    for n in range(RUNS):
        gv = _reply(csms, cp, "gv%d" % n)
        if gv[0] != 4 or gv[2] != "SecurityError":
            bad.append((n, gv))
        if n == RUNS - 1:
            break
        for k in (1, 2):  # to Pending, then to the next Rejected
            r = csms.call(cp, "TriggerMessage", {"requestedMessage": "BootNotification"})
            assert r["status"] == "Accepted", r
            csms.wait_for(lambda: len(answers) >= 2 * n + 1 + k, 10, "boot %d.%d" % (n, k))
    assert not bad, "%d of %d runs: %s" % (len(bad), RUNS, bad[:3])
    assert runs[0] == "PowerUp" and runs[1:] == ["Triggered"] * (RUNS - 1)
    assert st.status()["boot"] == "Rejected"
