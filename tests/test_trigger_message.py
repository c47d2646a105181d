"""TriggerMessage (F06) against the test CSMS, station on CPython and under micropython."""
import time

from tests.helpers import after_reply, booted, trigger


def test_TC_F_20_CS_trigger_heartbeat(csms, station):
    st = station()
    cp = st.identity
    booted(csms, cp)
    n = len(csms.csms.calls("Heartbeat", cp))
    r, t = trigger(csms, cp, "Heartbeat")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: after_reply(csms, cp, t, "Heartbeat"), 5, "triggered Heartbeat")
    assert len(csms.csms.calls("Heartbeat", cp)) == n + 1


def test_TC_F_23_CS_trigger_status_notification_specific_and_all(csms, station):
    st = station(args=["--evses", "2"])
    cp = st.identity
    booted(csms, cp)
    # both boot StatusNotifications (B01.FR.05) are in before the trigger's are counted
    csms.wait_for(lambda: len(csms.csms.calls("StatusNotification", cp)) >= 2, 10, "boot statuses")
    r, t = trigger(csms, cp, "StatusNotification", {"id": 2, "connectorId": 1})
    assert r["status"] == "Accepted"
    got = csms.wait_for(lambda: after_reply(csms, cp, t, "StatusNotification"), 5, "status")
    time.sleep(0.2)
    got = after_reply(csms, cp, t, "StatusNotification")
    assert [(s["evseId"], s["connectorId"]) for s in got] == [(2, 1)]
    assert got[0]["connectorStatus"] == "Available"
    r, t = trigger(csms, cp, "StatusNotification")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: len(after_reply(csms, cp, t, "StatusNotification")) >= 2, 5, "all statuses")
    assert sorted((s["evseId"], s["connectorId"]) for s in after_reply(csms, cp, t, "StatusNotification")) \
        == [(1, 1), (2, 1)]
    # Unknown EVSE or connector: Rejected.
    assert trigger(csms, cp, "StatusNotification", {"id": 7})[0]["status"] == "Rejected"
    assert trigger(csms, cp, "StatusNotification", {"id": 1, "connectorId": 3})[0]["status"] == "Rejected"


def test_TC_F_26_CS_trigger_boot_notification_rejected_when_accepted(csms, station):
    st = station()
    cp = st.identity
    booted(csms, cp)
    r, _ = trigger(csms, cp, "BootNotification")
    assert r["status"] == "Rejected"  # F06.FR.17
    time.sleep(0.3)
    assert len(csms.csms.calls("BootNotification", cp)) == 1


def test_TC_F_27_CS_trigger_not_implemented(csms, station):
    st = station()
    cp = st.identity
    booted(csms, cp)
    for msg in ("SignCombinedCertificate", "SignV2GCertificate",
                "PublishFirmwareStatusNotification"):
        assert trigger(csms, cp, msg)[0]["status"] == "NotImplemented", msg


def _first_boot(csms, station, first):
    """A station whose first BootNotification is answered `first` (interval 60 s) and every
    later one Accepted; returns (station, identity) once it is in that state."""
    replies = [first, "Accepted"]

    def boot(cp, payload):
        status = replies.pop(0) if len(replies) > 1 else replies[0]
        return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": 60, "status": status}
    csms.csms.responders["BootNotification"] = boot
    st = station()
    cp = st.identity
    csms.wait_for(lambda: cp in csms.csms.sessions and csms.csms.calls("BootNotification", cp),
                  15, "first boot")
    st.wait_status(lambda s: s["boot"] == first, 5, first)
    return st, cp


def test_TC_B_02_CS_trigger_boot_notification_while_pending(csms, station):
    """B02.FR.04 / F06: while Pending the CSMS may ask for a BootNotification (and other
    messages) before the interval is over."""
    st, cp = _first_boot(csms, station, "Pending")
    r, t = trigger(csms, cp, "Heartbeat")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: after_reply(csms, cp, t, "Heartbeat"), 5, "triggered Heartbeat while Pending")
    r, t = trigger(csms, cp, "BootNotification")
    assert r["status"] == "Accepted"
    booted(csms, cp, 2, timeout=5)  # well before the 60 s interval
    assert st.status()["boot"] == "Accepted"


def test_TC_B_31_trigger_boot_notification_while_rejected(csms, station):
    """B03 / F06 (TC_B_31_CSMS is the CSMS side): while Rejected the CSMS may trigger a
    BootNotification before the interval is over. The TriggerMessage is accepted, the
    BootNotification follows with reason Triggered; every other request still gets
    SecurityError (B03.FR.08), TriggerMessage for another message included."""
    st, cp = _first_boot(csms, station, "Rejected")
    hb = csms.raw(cp, '[2,"t1","TriggerMessage",{"requestedMessage":"Heartbeat"}]', reply_id="t1")
    assert hb[0] == 4 and hb[2] == "SecurityError", hb
    r, t = trigger(csms, cp, "BootNotification")
    assert r["status"] == "Accepted"
    booted(csms, cp, 2, timeout=10)  # well before the 60 s interval
    boots = csms.csms.calls("BootNotification", cp)
    assert [b["reason"] for b in boots] == ["PowerUp", "Triggered"]
    assert st.status()["boot"] == "Accepted"
    assert not after_reply(csms, cp, 0, "Heartbeat")


def test_B03_trigger_while_the_boot_is_outstanding_sends_the_next_boot_at_once():
    """A TriggerMessage(BootNotification) accepted while a (Rejected) BootNotification is
    still waiting for its answer is not forgotten when that answer arrives: the next boot
    goes at once, not after the 60 s interval. In-process, the block's own boot loop."""
    import asyncio
    from firmware import provisioning

    sent = []

    class St:
        running = connected = True
        boot_status = None

        async def call(self, action, payload, wait_online=False):
            sent.append(payload["reason"])
            await asyncio.sleep(0.2)        # the CSMS answers after 200 ms
            return {"currentTime": "2026-11-24T10:00:00.000Z", "interval": 60,
                    "status": "Rejected"}

        def set_boot_status(self, s):
            self.boot_status = s

    b = provisioning.Block.__new__(provisioning.Block)
    b.st = St()
    b._boot_now = asyncio.Event()
    b._triggered = False
    b._booting = False
    b.reason = "PowerUp"
    b.boot_payload = lambda: {"reason": "Triggered" if b._triggered else b.reason}
    real_adopt = provisioning.adopt_time
    provisioning.adopt_time = lambda resp, st: None

    async def scenario():
        t = asyncio.create_task(b._boot_loop())
        while not sent:
            await asyncio.sleep(0.01)
        b.boot_now()                        # the trigger, during the outstanding boot
        for _ in range(1000):               # 10 s at most; the interval is 60 s
            if len(sent) >= 2:
                break
            await asyncio.sleep(0.01)
        t.cancel()

    try:
        asyncio.run(scenario())
    finally:
        provisioning.adopt_time = real_adopt
    assert sent[:2] == ["PowerUp", "Triggered"], sent
