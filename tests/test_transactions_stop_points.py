"""Part 6 Core block E cases for the local start/stop options, every TxStopPoint value we
support (TxStopPoint is ReadWrite with the full value list), EV-side disconnects (E09/E10),
transactions across an offline period (E08/E12) and GetTransactionStatus (E14). Station on
CPython and under micropython; every frame is schema-validated by the fixture."""
import time

import pytest

from tests.helpers import (FAST_RECONNECT, TOKEN, boot, charging, ended, energies, energy_transfer,
                           go_offline, go_offline_since, started, tx_events, wait_event)
from tests.proxy import LinkProxy

OFFLINE = FAST_RECONNECT + ("OCPPCommCtrlr.OfflineThreshold=61",)


def evse_statuses(csms, cp):
    """(evseId, connectorStatus) of every StatusNotification from `cp`."""
    return [(s["evseId"], s["connectorStatus"]) for s in csms.csms.calls("StatusNotification", cp)]


def suspended_ev(csms, st):
    """Reusable state EnergyTransferSuspended: charging, then the EV pauses (pilot B)."""
    energy_transfer(csms, st)
    st.cmd("ev 1 B")
    return wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "SuspendedEV",
                      "SuspendedEV")


def no_later_events(csms, st, n, secs=0.5):
    time.sleep(secs)
    return tx_events(csms, st.identity)[n:]


# ---------------------------------------------------------------- E02/E03/E07 local start/stop
def test_TC_E_03_CS_local_start_cable_plugin_first(csms, station):
    st = boot(csms, station)
    st.cmd("plug 1")
    csms.wait_for(lambda: (1, "Occupied") in evse_statuses(csms, st.identity), 5, "Occupied")
    assert tx_events(csms, st.identity) == []  # PowerPathClosed: nothing before authorization
    st.cmd("tap AABBCCDD")
    csms.wait_for(lambda: csms.csms.calls("Authorize", st.identity), 5, "Authorize")
    assert [a["idToken"] for a in csms.csms.calls("Authorize", st.identity)] == [TOKEN]  # C01.FR.02
    s = wait_event(csms, st, started, "Started")
    assert s["idToken"] == TOKEN and s["evse"] == {"id": 1, "connectorId": 1}  # E01.FR.16
    wait_event(csms, st, charging, "Charging")
    st.wait_status(lambda s: s["evses"][0]["relay"], 5, "relay closed")


def test_TC_E_04_CS_local_start_authorization_first(csms, station):
    st = boot(csms, station)
    st.cmd("tap AABBCCDD")
    st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "authorized")
    assert tx_events(csms, st.identity) == []
    st.cmd("plug 1")  # within EVConnectionTimeOut (E03.FR.01)
    s = wait_event(csms, st, started, "Started")
    assert s["triggerReason"] == "Authorized" and s["idToken"] == TOKEN
    assert s["evse"] == {"id": 1, "connectorId": 1}
    wait_event(csms, st, charging, "Charging")


def test_TC_E_06_CS_local_stop_accepted(csms, station):
    st = boot(csms, station)  # TxStopPoint EVConnected,Authorized
    tid = energy_transfer(csms, st)
    st.cmd("tap AABBCCDD")  # StopAuthorized (local), same token (C01.FR.03)
    e = wait_event(csms, st, ended, "Ended")
    assert e["transactionInfo"]["transactionId"] == tid
    assert e["triggerReason"] == "StopAuthorized" and e["transactionInfo"]["stoppedReason"] == "Local"
    assert e["transactionInfo"]["chargingState"] == "EVConnected"  # EVConnectedPostSession
    st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")
    st.cmd("unplug 1")  # EVDisconnect: nothing more about the ended transaction
    csms.wait_for(lambda: evse_statuses(csms, st.identity)[-1] == (1, "Available"), 5, "Available")
    assert [x for x in tx_events(csms, st.identity) if x["seqNo"] > e["seqNo"]] == []


# ---------------------------------------------------------------- E06 stop options
def test_TC_E_07_CS_stop_PowerPathClosed_local(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=PowerPathClosed")
    energy_transfer(csms, st)
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "StopAuthorized" and e["transactionInfo"]["stoppedReason"] == "Local"
    assert e["idToken"] == TOKEN
    st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")


def _remote_stop(csms, st):
    """Charge, stop through RequestStopTransaction: (transactionId, the Ended event)."""
    tid = energy_transfer(csms, st)
    r = csms.call(st.identity, "RequestStopTransaction", {"transactionId": tid})
    assert r == {"status": "Accepted"}
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "RemoteStop" and e["transactionInfo"]["stoppedReason"] == "Remote"
    return tid, e


def _ev_side_disconnect(csms, st):
    """The EV suspends, then the cable is pulled at the EV: the Ended event."""
    suspended_ev(csms, st)
    st.cmd("unplug 1")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "EVCommunicationLost"
    assert e["transactionInfo"]["chargingState"] == "Idle"
    return e


def test_TC_E_35_CS_stop_PowerPathClosed_remote(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=PowerPathClosed")
    _remote_stop(csms, st)
    st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")


def test_TC_E_37_CS_stop_PowerPathClosed_ev_side_disconnect(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=PowerPathClosed", "TxCtrlr.StopTxOnEVSideDisconnect=false")
    e = _ev_side_disconnect(csms, st)
    assert e["transactionInfo"]["stoppedReason"] in ("EVDisconnected", "StoppedByEV")


def test_TC_E_08_CS_stop_EnergyTransfer_StopAuthorized(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=EnergyTransfer")
    energy_transfer(csms, st)
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "StopAuthorized" and e["transactionInfo"]["stoppedReason"] == "Local"
    evs = tx_events(csms, st.identity)
    assert [x["seqNo"] for x in evs] == list(range(len(evs))) and ended(evs[-1])


def test_TC_E_22_CS_stop_EnergyTransfer_SuspendedEV(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=EnergyTransfer")
    energy_transfer(csms, st)
    st.cmd("ev 1 B")  # the EV suspends the energy transfer
    e = csms.wait_for(lambda: [x for x in tx_events(csms, st.identity)
                               if x["triggerReason"] == "ChargingStateChanged"
                               and x["transactionInfo"].get("chargingState") != "Charging"], 8,
                      "event after the EV suspended")[0]
    assert e["eventType"] == "Ended", e
    assert e["transactionInfo"]["chargingState"] == "EVConnected"
    assert e["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    assert energies(e, "Transaction.End")


def test_TC_E_20_CS_stop_EVDisconnected_ev_side(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=EVConnected", "TxCtrlr.StopTxOnEVSideDisconnect=false")
    e = _ev_side_disconnect(csms, st)
    assert e["transactionInfo"]["stoppedReason"] == "EVDisconnected"


def test_TC_E_21_CS_stop_StopAuthorized_remote(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=Authorized")
    tid, e = _remote_stop(csms, st)
    assert e["transactionInfo"]["transactionId"] == tid


def test_TC_E_17_CS_deauthorized_ev_side_disconnect(csms, station):
    # TxStopPoint Authorized alone: the transaction ends only because of the flag
    st = boot(csms, station, "TxCtrlr.TxStopPoint=Authorized", "TxCtrlr.StopTxOnEVSideDisconnect=true",
              "OCPPCommCtrlr.UnlockOnEVSideDisconnect=false")
    energy_transfer(csms, st)
    n = len(evse_statuses(csms, st.identity))
    st.cmd("unplug 1")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "EVCommunicationLost"
    assert e["transactionInfo"]["chargingState"] == "Idle"
    assert e["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    csms.wait_for(lambda: (1, "Available") in evse_statuses(csms, st.identity)[n:], 5, "Available")


def test_TC_E_39_CS_deauthorized_timeout_started_at_Authorized(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=Authorized", "TxCtrlr.TxStopPoint=Authorized",
              "TxCtrlr.EVConnectionTimeOut=1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, started, "Started")
    e = wait_event(csms, st, ended, "Ended", 6)
    assert e["triggerReason"] == "EVConnectTimeout" and e["transactionInfo"]["stoppedReason"] == "Timeout"
    n = len(tx_events(csms, st.identity))
    st.cmd("plug 1")
    csms.wait_for(lambda: (1, "Occupied") in evse_statuses(csms, st.identity), 5, "Occupied")
    later = no_later_events(csms, st, n)
    assert not [x for x in later if charging(x)]
    assert not st.status()["evses"][0]["relay"]


# ---------------------------------------------------------------- E09 EV-side disconnect
def test_TC_E_24_CS_ev_side_disconnect_unlock_true(csms, station):
    st = boot(csms, station, "TxCtrlr.StopTxOnEVSideDisconnect=true", "TxCtrlr.TxStopPoint=Authorized",
              "OCPPCommCtrlr.UnlockOnEVSideDisconnect=true")
    suspended_ev(csms, st)
    assert st.status()["evses"][0]["locked"]
    n = len(evse_statuses(csms, st.identity))
    st.cmd("unplug 1")
    e = wait_event(csms, st, lambda x: x["triggerReason"] == "EVCommunicationLost", "EV-side disconnect")
    assert e["transactionInfo"]["chargingState"] == "Idle" and e["eventType"] == "Ended"  # E09.FR.01
    st.wait_status(lambda s: not s["evses"][0]["locked"], 5, "cable unlocked")  # E09.FR.02
    csms.wait_for(lambda: (1, "Available") in evse_statuses(csms, st.identity)[n:], 5, "Available")


def test_TC_E_25_CS_ev_side_disconnect_unlock_false(csms, station):
    st = boot(csms, station, "TxCtrlr.StopTxOnEVSideDisconnect=true", "TxCtrlr.TxStopPoint=Authorized",
              "OCPPCommCtrlr.UnlockOnEVSideDisconnect=false")
    suspended_ev(csms, st)
    st.cmd("unplug 1")
    e = wait_event(csms, st, lambda x: x["triggerReason"] == "EVCommunicationLost", "EV-side disconnect")
    assert e["transactionInfo"]["chargingState"] == "Idle" and e["eventType"] == "Ended"
    time.sleep(0.5)
    assert st.status()["evses"][0]["locked"]  # E09.FR.03: the cable stays locked at the station
    st.cmd("tap 11223344")  # somebody else's card does not release it
    time.sleep(0.5)
    assert st.status()["evses"][0]["locked"]
    st.cmd("tap AABBCCDD")  # the token that started the transaction does
    st.wait_status(lambda s: not s["evses"][0]["locked"], 5, "cable unlocked")
    assert [x for x in tx_events(csms, st.identity) if x["seqNo"] > e["seqNo"]
            and x["transactionInfo"]["transactionId"] == e["transactionInfo"]["transactionId"]] == []


# ---------------------------------------------------------------- E08/E12 offline
def _offline_proxy(csms, station, *sets):
    proxy = LinkProxy(csms.csms.port)
    st = boot(csms, station, *(OFFLINE + sets), url=proxy.url())
    return proxy, st


def test_TC_E_43_CS_transaction_during_offline_period(csms, station):
    proxy, st = _offline_proxy(csms, station)
    try:
        st.cmd("tap AABBCCDD")  # the token is now in the authorization cache
        st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "authorized")
        st.cmd("tap AABBCCDD")  # withdraw the authorization again, nothing started
        st.wait_status(lambda s: not s["evses"][0]["authorized"], 5, "authorization withdrawn")
        go_offline(proxy, st)
        # reusable state TransactionEventsInQueueEnded: a whole session while offline
        st.cmd("plug 1")
        st.cmd("tap AABBCCDD")
        st.wait_status(lambda s: s["evses"][0]["relay"], 5, "charging offline")
        st.cmd("unplug 1")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None and s["queue"] >= 2, 5, "ended offline")
        assert tx_events(csms, st.identity) == []
        proxy.refuse = False
        e = wait_event(csms, st, ended, "Ended after reconnect", 15)
        evs = tx_events(csms, st.identity)
        assert all(x.get("offline") is True for x in evs)  # E12.FR.06
        assert started(evs[0]) and ended(evs[-1])
        assert len({x["transactionInfo"]["transactionId"] for x in evs}) == 1
        assert [x["seqNo"] for x in evs] == list(range(len(evs)))  # E12.FR.01/.02 in order
        assert energies(e, "Transaction.End")
    finally:
        proxy.stop()


def test_TC_E_44_CS_stop_transaction_during_offline_period(csms, station):
    proxy, st = _offline_proxy(csms, station)
    try:
        tid = energy_transfer(csms, st)
        n = len(tx_events(csms, st.identity))
        t_off = go_offline_since(proxy, st)
        st.cmd("tap AABBCCDD")  # same idToken as used to start (E08.FR.01)
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 5, "stopped offline")
        st.cmd("unplug 1")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 5, "ended offline")
        proxy.refuse = False
        e = wait_event(csms, st, ended, "Ended after reconnect", 15)
        later = [x for x in tx_events(csms, st.identity)[n:] if x["timestamp"] > t_off]
        assert later and all(x.get("offline") is True for x in later)  # E08.FR.07
        assert e["transactionInfo"]["transactionId"] == tid
        assert e["triggerReason"] == "StopAuthorized" and e["transactionInfo"]["stoppedReason"] == "Local"
    finally:
        proxy.stop()


def test_TC_E_45_CS_stop_offline_same_group_id(csms, station):
    group = {"idToken": "FLEET01", "type": "Central"}
    csms.csms.responders["Authorize"] = lambda cp, p: {
        "idTokenInfo": {"status": "Accepted", "groupIdToken": group}}
    csms.csms.responders["TransactionEvent"] = lambda cp, p: (
        {"idTokenInfo": {"status": "Accepted", "groupIdToken": group}} if p.get("idToken") else {})
    proxy, st = _offline_proxy(csms, station)
    try:
        st.cmd("tap 11223344")  # token 2 of the same group: authorized once, so it is cached
        st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "token 2 authorized")
        st.cmd("tap 11223344")
        st.wait_status(lambda s: not s["evses"][0]["authorized"], 5, "token 2 withdrawn")
        tid = energy_transfer(csms, st)  # started with AABBCCDD
        n = len(tx_events(csms, st.identity))
        t_off = go_offline_since(proxy, st)
        st.cmd("tap 11223344")  # E08.FR.02: same GroupId, checked against the cache offline
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None or not s["evses"][0]["relay"],
                       5, "stopped offline")
        st.cmd("unplug 1")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 5, "ended offline")
        proxy.refuse = False
        e = wait_event(csms, st, ended, "Ended after reconnect", 15)
        later = [x for x in tx_events(csms, st.identity)[n:] if x["timestamp"] > t_off]
        assert later and all(x.get("offline") is True for x in later)
        assert e["transactionInfo"]["transactionId"] == tid
        stop = [x for x in later if x["triggerReason"] == "StopAuthorized"]
        assert stop and stop[0]["idToken"] == {"idToken": "11223344", "type": "ISO14443"}
    finally:
        proxy.stop()


# ---------------------------------------------------------------- E14 GetTransactionStatus
TX_STATUS_SETS = ("SampledDataCtrlr.TxUpdatedInterval=1", "OCPPCommCtrlr.MessageTimeout[Default]=2",
                  "OCPPCommCtrlr.MessageAttempts[TransactionEvent]=10",
                  "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=1")


def _status_after_offline(csms, st, proxy, payload):
    """Reconnect with the CSMS leaving TransactionEvents unanswered, so the queue is known to
    be non-empty when GetTransactionStatus arrives; then let the queue drain."""
    csms.csms.hold.add("TransactionEvent")
    proxy.refuse = False
    st.wait_status(lambda s: s["connected"], 10, "reconnected")
    csms.wait_for(lambda: st.identity in csms.csms.sessions, 5, "session")
    r = csms.call(st.identity, "GetTransactionStatus", payload)
    csms.csms.hold.discard("TransactionEvent")
    st.wait_status(lambda s: s["queue"] == 0, 20, "queue drained")
    return r


def _periodic_offline(csms, st, proxy):
    tid = energy_transfer(csms, st)
    n = len(tx_events(csms, st.identity))
    go_offline(proxy, st)
    st.wait_status(lambda s: s["queue"] >= 1, 5, "periodic event queued offline")
    return tid, n


@pytest.mark.parametrize("case", ["TC_E_29", "TC_E_33"])
def test_TC_E_29_33_CS_status_with_message_in_queue_during_transaction(csms, station, case):
    """Periodic events queued offline, GetTransactionStatus while they are still queued:
    TC_E_29 asks for the ongoing transaction (E14.FR.02/.04), TC_E_33 asks without an id
    and gets no ongoingIndicator (E14.FR.06/.07)."""
    proxy, st = _offline_proxy(csms, station, *TX_STATUS_SETS)
    try:
        tid, n = _periodic_offline(csms, st, proxy)
        if case == "TC_E_29":
            payload, want = {"transactionId": tid}, {"ongoingIndicator": True, "messagesInQueue": True}
        else:
            payload, want = {}, {"messagesInQueue": True}
        assert _status_after_offline(csms, st, proxy, payload) == want
        later = [x for x in tx_events(csms, st.identity)[n:] if x.get("offline")]
        assert later and all(x["eventType"] == "Updated" and x.get("meterValue") for x in later)
    finally:
        proxy.stop()


def test_TC_E_30_CS_status_ongoing_without_message_in_queue(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    st.wait_status(lambda s: s["queue"] == 0, 5, "queue empty")
    r = csms.call(st.identity, "GetTransactionStatus", {"transactionId": tid})
    assert r == {"ongoingIndicator": True, "messagesInQueue": False}  # E14.FR.02/.05


def test_TC_E_31_CS_status_ended_with_message_in_queue(csms, station):
    proxy, st = _offline_proxy(csms, station, *TX_STATUS_SETS)
    try:
        tid, n = _periodic_offline(csms, st, proxy)
        st.cmd("tap AABBCCDD")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 5, "stopped offline")
        st.cmd("unplug 1")
        r = _status_after_offline(csms, st, proxy, {"transactionId": tid})
        assert r == {"ongoingIndicator": False, "messagesInQueue": True}  # E14.FR.03/.04
        later = tx_events(csms, st.identity)[n:]
        assert ended(later[-1]) and later[-1]["triggerReason"] == "StopAuthorized"
    finally:
        proxy.stop()


def test_TC_E_32_CS_status_ended_without_message_in_queue(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    st.cmd("tap AABBCCDD")
    st.cmd("unplug 1")
    wait_event(csms, st, ended, "Ended")
    st.wait_status(lambda s: s["queue"] == 0, 5, "queue empty")
    r = csms.call(st.identity, "GetTransactionStatus", {"transactionId": tid})
    assert r == {"ongoingIndicator": False, "messagesInQueue": False}  # E14.FR.03/.05


def test_TC_E_34_CS_status_without_id_without_message_in_queue(csms, station):
    st = boot(csms, station)
    r = csms.call(st.identity, "GetTransactionStatus", {})
    assert r == {"messagesInQueue": False}  # E14.FR.06/.08
    energy_transfer(csms, st)
    st.wait_status(lambda s: s["queue"] == 0, 5, "queue empty")
    assert csms.call(st.identity, "GetTransactionStatus", {}) == {"messagesInQueue": False}
