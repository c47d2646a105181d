"""Provisioning basics over real loopback sockets, station on CPython and under micropython:
boot (B01-B03), heartbeat, reconnect back-off (part 4 §5.3), DataTransfer (P01)."""
import time

from tests.proxy import LinkProxy


def boot_reply(status, interval):
    def responder(cp, payload):
        return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": interval, "status": status}
    return responder


def boot_sequence(*steps):
    """Reply to successive BootNotifications with (status, interval) steps; the last repeats."""
    steps = list(steps)

    def responder(cp, payload):
        status, interval = steps.pop(0) if len(steps) > 1 else steps[0]
        return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": interval, "status": status}
    return responder


def station_calls(csms, cp):
    """(time, action, payload) of every CALL the station sent."""
    return [(m["t"], m["frame"][2], m["frame"][3]) for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and m["frame"][0] == 2]


def test_TC_B_01_CS_cold_boot_accepted(csms, station):
    csms.csms.responders["BootNotification"] = boot_reply("Accepted", 1)
    st = station(args=["--evses", "2"])
    calls = csms.wait_for(lambda: [c for c in station_calls(csms, st.identity) if c[1] == "Heartbeat"][3:] and
                          station_calls(csms, st.identity), 15, "four heartbeats")
    # B01.FR.01: the first message after connecting is BootNotification, reason PowerUp.
    first = calls[0]
    assert first[1] == "BootNotification"
    assert first[2]["reason"] == "PowerUp"
    assert first[2]["chargingStation"]["vendorName"] and first[2]["chargingStation"]["model"]
    # B01.FR.05: after Accepted, a StatusNotification for every connector.
    statuses = [c[2] for c in calls if c[1] == "StatusNotification"]
    assert sorted((s["evseId"], s["connectorId"]) for s in statuses) == [(1, 1), (2, 1)]
    assert all(s["connectorStatus"] == "Available" for s in statuses)
    # Heartbeats follow the interval given in the BootNotificationResponse (1 s). Measured
    # over three intervals: a stall of the loaded test machine delays one arrival, not the
    # span, by more than the slack; an interval of 2 s or more (or the default) still fails.
    beats = [c[0] for c in calls if c[1] == "Heartbeat"]
    assert 3 * 0.8 <= beats[3] - beats[0] <= 3 * 1.0 + 2.0, beats
    s = st.status()
    assert s["boot"] == "Accepted" and s["connected"] is True
    assert len(s["evses"]) == 2


def test_TC_B_02_CS_cold_boot_pending(csms, station):
    csms.csms.responders["BootNotification"] = boot_sequence(("Pending", 1), ("Pending", 1), ("Accepted", 60))
    st = station()
    calls = csms.wait_for(lambda: [c for c in station_calls(csms, st.identity) if c[1] == "StatusNotification"]
                          and station_calls(csms, st.identity), 15, "boot accepted")
    boots = [c for c in calls if c[1] == "BootNotification"]
    assert len(boots) == 3
    # B02.FR.02: the station waits the given interval between BootNotifications.
    assert boots[1][0] - boots[0][0] >= 0.9 and boots[2][0] - boots[1][0] >= 0.9
    # B02.FR.01: while Pending nothing but BootNotification is sent.
    first_other = next(i for i, c in enumerate(calls) if c[1] != "BootNotification")
    assert first_other == 3


def test_TC_B_02_CS_pending_csms_may_configure(csms, station):
    """B02.FR.05: while Pending the CSMS can still get and set configuration."""
    csms.csms.responders["BootNotification"] = boot_reply("Pending", 30)
    st = station()
    csms.wait_for(lambda: st.identity in csms.csms.sessions and csms.csms.calls("BootNotification", st.identity),
                  15, "pending boot")
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
    assert r["getVariableResult"][0]["attributeStatus"] == "Accepted"
    assert st.status()["boot"] == "Pending"


def test_TC_B_03_CS_cold_boot_rejected(csms, station):
    csms.csms.responders["BootNotification"] = boot_sequence(("Rejected", 2), ("Accepted", 60))
    st = station()
    calls = csms.wait_for(lambda: [c for c in station_calls(csms, st.identity) if c[1] == "StatusNotification"]
                          and station_calls(csms, st.identity), 15, "boot accepted after rejection")
    boots = [c for c in calls if c[1] == "BootNotification"]
    # B03.FR.02: nothing is sent until the retry interval has passed, then BootNotification again.
    assert calls[0][1] == "BootNotification" and calls[1][1] == "BootNotification"
    assert boots[1][0] - boots[0][0] >= 1.9


def test_TC_B_30_CS_security_error_while_rejected(csms, station):
    """B03.FR.08: while Rejected, every CSMS request is answered with CALLERROR SecurityError."""
    csms.csms.responders["BootNotification"] = boot_reply("Rejected", 60)
    st = station()
    csms.wait_for(lambda: csms.csms.calls("BootNotification", st.identity), 15, "boot")
    st.wait_status(lambda s: s["boot"] == "Rejected", 5, "Rejected")
    for frame_id, text in (
            ("r1", '[2,"r1","DataTransfer",{"vendorId":"x"}]'),
            ("r2", '[2,"r2","GetVariables",{"getVariableData":[{"component":{"name":"OCPPCommCtrlr"},'
                   '"variable":{"name":"HeartbeatInterval"}}]}]')):
        reply = csms.raw(st.identity, text, reply_id=frame_id)
        assert reply[0] == 4 and reply[2] == "SecurityError", reply
    time.sleep(0.3)
    assert [c[1] for c in station_calls(csms, st.identity)] == ["BootNotification"]


def test_TC_B_57_CS_reconnect_with_backoff(csms, station):
    """Part 4 §5.3: after a connection loss, wait RetryBackOffWaitMinimum + random(RandomRange),
    doubling up to RetryBackOffRepeatTimes; reset after success; no new BootNotification."""
    csms.csms.responders["BootNotification"] = boot_reply("Accepted", 300)
    proxy = LinkProxy(csms.csms.port)
    try:
        st = station(url=proxy.url(), args=[
            "--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
            "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=0",
            "--set", "OCPPCommCtrlr.RetryBackOffRepeatTimes=2"])
        csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
        proxy.refuse = True
        n0 = len(proxy.attempts)
        t_cut = time.monotonic()
        proxy.cut()
        csms.wait_for(lambda: len(proxy.attempts) >= n0 + 4, 20, "4 refused reconnect attempts")
        gaps = [b - a for a, b in zip([t_cut] + proxy.attempts[n0:], proxy.attempts[n0:n0 + 4])]
        # expected waits 1, 2, 4, 4 s (doubling stops after RepeatTimes=2); the upper slack
        # absorbs a stall of the test machine and still tells a capped 4 s from a doubled 8 s
        for got, want in zip(gaps, (1, 2, 4, 4)):
            assert want - 0.2 <= got <= want + 2.0, gaps
        proxy.refuse = False
        st.wait_status(lambda s: s["connected"], 10, "reconnected")
        # Back-off is reset after a successful connection: the next loss waits 1 s again.
        n1 = len(proxy.attempts)
        t_cut = time.monotonic()
        proxy.cut()
        csms.wait_for(lambda: len(proxy.attempts) > n1, 10, "reconnect after second cut")
        assert 0.8 <= proxy.attempts[n1] - t_cut <= 3.0  # 1 s again, not the 4 s reached before
        st.wait_status(lambda s: s["connected"], 10, "reconnected again")
        assert len(csms.csms.calls("BootNotification", st.identity)) == 1
    finally:
        proxy.stop()


def test_TC_P_01_CS_data_transfer_unknown_vendor(csms, station):
    """P01.FR.05/06: a station without vendor extensions answers UnknownVendorId and keeps running,
    whatever the data carries."""
    st = station()
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    for data in (None, "text", {"k": [1, 2, {"x": None}]}, [1, "a"], 12.5, True, "x" * 5000):
        payload = {"vendorId": "com.example.unknown", "messageId": "Foo"}
        if data is not None:
            payload["data"] = data
        r = csms.call(st.identity, "DataTransfer", payload)
        assert r["status"] == "UnknownVendorId", data
    assert st.status()["connected"] is True


def test_B01_boot_response_time_without_utc_offset_read_as_utc(csms, station):
    """Some CSMS libraries answer currentTime without UTC offset. Tolerated in what the
    station receives: read as UTC (the station's clock follows it), one warning in the log;
    what it sends keeps its Z."""
    naive = "2026-12-02T16:31:09.123"

    def reply(cp, payload):
        return {"currentTime": naive, "interval": 300, "status": "Accepted"}
    csms.csms.responders["BootNotification"] = reply
    csms.csms.responders["Heartbeat"] = lambda cp, payload: {"currentTime": naive}
    st = station()
    cp = st.identity
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", cp), 15, "boot accepted")
    assert st.status()["boot"] == "Accepted"
    r = csms.call(cp, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: csms.csms.calls("Heartbeat", cp), 10, "triggered Heartbeat")
    stamp = csms.csms.calls("StatusNotification", cp)[0]["timestamp"]
    # the clock was set to that time, read as UTC (the station's stamps end in Z)
    assert stamp.startswith("2026-12-02T16:3") and stamp.endswith("Z"), stamp
    clock = csms.call(cp, "GetVariables", {"getVariableData": [
        {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}]})
    assert clock["getVariableResult"][0]["attributeValue"].startswith("2026-12-02T16:3")
    time.sleep(0.3)  # let the log reach the file
    with open(st.log_path) as f:
        warnings = [ln for ln in f if "without UTC offset" in ln]
    assert len(warnings) == 1, warnings
