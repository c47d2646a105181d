"""Reset (B11, B12) against the test CSMS, station on CPython and under micropython, plus the
Reset scheduling hook in-process."""
import asyncio
import os
import tempfile
import time

from tests.helpers import FAST_RECONNECT_ARGS, booted, sent_security_events


def test_TC_B_20_CS_reset_without_transaction_on_idle(csms, station):
    st = station(args=FAST_RECONNECT_ARGS)
    booted(csms, st.identity)
    r = csms.call(st.identity, "Reset", {"type": "OnIdle"})
    assert r["status"] == "Accepted"  # B11.FR.01: idle, so no Scheduled
    # B11.FR.03/04, B01.FR.03: the station reboots and boots again with reason RemoteReset.
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", st.identity)) >= 2, 20, "reboot")
    boots = csms.csms.calls("BootNotification", st.identity)
    assert boots[0]["reason"] == "PowerUp" and boots[1]["reason"] == "RemoteReset"
    # A04: ResetOrReboot is critical, queued before the reboot, delivered after it together
    # with the StartupOfTheDevice of the new boot.
    csms.wait_for(lambda: sent_security_events(csms, st.identity).count("StartupOfTheDevice") >= 2
                  and "ResetOrReboot" in sent_security_events(csms, st.identity), 15, "security events")
    ev = sent_security_events(csms, st.identity)
    assert ev.index("ResetOrReboot") < len(ev) - 1
    infos = [p.get("techInfo", "") for p in csms.csms.calls("SecurityEventNotification", st.identity)]
    assert any("RemoteReset" in i for i in infos)
    assert st.status()["boot"] == "Accepted"


def test_B11_reset_immediate_idle(csms, station):
    """B11, Immediate reset of an idle station: Accepted, then a reboot with reason
    RemoteReset. With an ongoing transaction that is TC_B_22, in
    test_reset_with_transaction.py; the "reset" event that ends transactions is tested
    in-process below."""
    st = station(args=FAST_RECONNECT_ARGS)
    booted(csms, st.identity)
    r = csms.call(st.identity, "Reset", {"type": "Immediate"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", st.identity)) >= 2, 20, "reboot")
    assert csms.csms.calls("BootNotification", st.identity)[1]["reason"] == "RemoteReset"
    booted(csms, st.identity, 2)


def test_TC_B_28_CS_reset_evse_not_supported(csms, station):
    """B11.FR.09 / B12.FR.09: resetting a single EVSE is not supported -> Rejected, no reboot."""
    st = station()
    booted(csms, st.identity)
    for kind in ("OnIdle", "Immediate"):
        r = csms.call(st.identity, "Reset", {"type": kind, "evseId": 1})
        assert r["status"] == "Rejected"
        assert r["statusInfo"]["reasonCode"] == "UnsupportedRequest"
    assert len(csms.csms.calls("BootNotification", st.identity)) == 1
    assert st.status()["connected"]


def test_TC_B_23_CS_reset_keeps_persisted_state(csms, station):
    """B11.FR.02: Unavailable set by the CSMS persists across the reset. Reset itself must not
    clear persisted state: a ReadWrite value set before the reset is still there after it."""
    st = station(args=FAST_RECONNECT_ARGS)
    booted(csms, st.identity)
    r = csms.call(st.identity, "SetVariables", {"setVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"},
         "attributeValue": "777"}]})
    assert r["setVariableResult"][0]["attributeStatus"] == "Accepted"
    r = csms.call(st.identity, "ChangeAvailability", {"operationalStatus": "Inoperative"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: [s for s in csms.csms.calls("StatusNotification", st.identity)[1:]
                           if s["connectorStatus"] == "Unavailable"], 10, "Unavailable")
    assert csms.call(st.identity, "Reset", {"type": "OnIdle"})["status"] == "Accepted"
    booted(csms, st.identity, 2)
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}}]})
    assert r["getVariableResult"][0]["attributeValue"] == "777"
    # B11.FR.02: the boot reports the connector Unavailable again, never Available
    csms.wait_for(lambda: [s for s in csms.csms.calls("StatusNotification", st.identity)[2:]
                           if s["connectorStatus"] == "Unavailable"], 10, "Unavailable after reset")
    time.sleep(0.3)
    assert [s["connectorStatus"] for s in csms.csms.calls("StatusNotification", st.identity)] == \
        ["Available", "Unavailable", "Unavailable"]


# ------------------------------------------------------------------ in-process (CPython)
class BusyBlock:
    """Stands in for the transactions block: votes not idle until told, and ends its
    'transaction' on the station's "reset" event."""

    def __init__(self, station):
        self.st = station
        self.busy = True
        self.reset_kinds = []
        self.ended = False
        station.on("reset", self.on_reset)

    def idle(self):
        return not self.busy

    async def on_reset(self, kind):
        self.reset_kinds.append(kind)
        await asyncio.sleep(0.05)
        self.ended = True

    def finish(self):
        self.busy = False
        self.st.emit("idle")


def _station(tmp):
    from firmware.station import Station
    from host.sim_board import SimBoard
    board = SimBoard(1, tmp)
    st = Station(board, "ws://127.0.0.1:9", "CSX", blocks=("security", "provisioning"))
    busy = BusyBlock(st)
    st.blocks["busy"] = busy
    return st, board, busy


def test_B12_FR_01_on_idle_reset_is_scheduled_until_idle_then_reboots():
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            st, board, busy = _station(tmp)
            prov = st.blocks["provisioning"]
            res, scheduled = prov.reset({"type": "OnIdle"})
            assert res == {"status": "Scheduled"}
            await scheduled()  # runs after the response: emits "reset_scheduled"
            await asyncio.sleep(0.05)
            assert not board.reboot_requested
            busy.finish()
            for _ in range(100):
                if board.reboot_requested:
                    break
                await asyncio.sleep(0.02)
            assert board.reboot_requested
            assert busy.reset_kinds == ["OnIdle"] and busy.ended
            assert st.store.load("boot.json") == {"reason": "ScheduledReset"}  # TC_B_21
            queued = [a for _, a, _ in st.queue.pending()]
            assert "ResetOrReboot" in [p["type"] for _, a, p in st.queue.pending()
                                       if a == "SecurityEventNotification"]
            assert queued
    asyncio.run(main())


def test_B12_FR_02_04_immediate_reset_runs_reset_listeners_before_reboot():
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            st, board, busy = _station(tmp)
            res, after = st.blocks["provisioning"].reset({"type": "Immediate"})
            assert res == {"status": "Accepted"}
            assert not board.reboot_requested  # only after the CALLRESULT went out
            await after()
            assert busy.reset_kinds == ["Immediate"] and busy.ended
            assert board.reboot_requested
            assert os.path.exists(os.path.join(tmp, "boot.json"))
    asyncio.run(main())
