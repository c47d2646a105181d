"""Part 6 Core remote-control cases (block F: F01-F06) against the mobilityhouse-based CSMS,
station on CPython and under micropython; every frame is schema-validated by the fixture."""
import time

from tests.helpers import (TOKEN, after_reply, boot, charging, ended, energy_transfer, started,
                           trigger, tx_events, wait_event)


def remote_start(csms, st, evse_id=1, token=TOKEN, rsid=42):
    p = {"idToken": token, "remoteStartId": rsid}
    if evse_id is not None:
        p["evseId"] = evse_id
    return csms.call(st.identity, "RequestStartTransaction", p)


# ---------------------------------------------------------------- F01 / F02
def test_TC_F_01_CS_remote_start_cable_plugin_first(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EVConnected")
    cp = st.identity
    st.cmd("plug 1")
    s = wait_event(csms, st, started, "Started on plug-in")
    tid = s["transactionInfo"]["transactionId"]
    assert "idToken" not in s
    r = remote_start(csms, st)
    assert r == {"status": "Accepted", "transactionId": tid}  # F01.FR.13
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "RemoteStart", "RemoteStart")
    assert u["eventType"] == "Updated"  # F01.FR.19
    assert u["transactionInfo"]["transactionId"] == tid
    assert u["transactionInfo"]["remoteStartId"] == 42  # F01.FR.25
    assert u["idToken"] == TOKEN  # F01.FR.04
    # AuthorizeRemoteStart is true by default: authorized first, like a local action (F01.FR.01)
    assert [a["idToken"] for a in csms.csms.calls("Authorize", cp)] == [TOKEN]
    wait_event(csms, st, charging, "Charging")
    evs = tx_events(csms, cp)
    assert [e["seqNo"] for e in evs] == list(range(len(evs)))


def test_TC_F_01_CS_remote_start_cable_plugin_first_PowerPathClosed(csms, station):
    st = boot(csms, station)  # TxStartPoint PowerPathClosed
    st.cmd("plug 1")
    time.sleep(0.3)
    r = remote_start(csms, st)
    assert r == {"status": "Accepted"}  # no transaction yet, so no transactionId
    s = wait_event(csms, st, started, "Started")
    assert s["triggerReason"] == "RemoteStart" and s["transactionInfo"]["remoteStartId"] == 42
    assert s["idToken"] == TOKEN and s["evse"] == {"id": 1, "connectorId": 1}
    wait_event(csms, st, charging, "Charging")


def test_TC_F_02_CS_remote_start_first_AuthorizeRemoteStart_true(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=Authorized")
    cp = st.identity
    r = remote_start(csms, st)
    assert r == {"status": "Accepted"}
    # the response leaves before the Authorize request (F02.FR.09)
    resp_t = [m["t"] for m in csms.csms.messages if m["cp"] == cp and m["dir"] == "in"
              and m["frame"][0] == 3][-1]
    csms.wait_for(lambda: after_reply(csms, cp, resp_t, "Authorize"), 5, "Authorize")
    s = wait_event(csms, st, started, "Started")
    assert s["triggerReason"] == "RemoteStart"
    assert s["transactionInfo"]["remoteStartId"] == 42  # F02.FR.01
    assert s["idToken"] == TOKEN
    st.cmd("plug 1")
    wait_event(csms, st, charging, "Charging")


def test_TC_F_02_CS_remote_start_first_PowerPathClosed_then_plug(csms, station):
    """Default TxStartPoint: the transaction starts at plug-in; it is still the first event
    after the RequestStartTransaction, so it carries triggerReason RemoteStart (F02.FR.21)."""
    st = boot(csms, station)
    assert remote_start(csms, st) == {"status": "Accepted"}
    csms.wait_for(lambda: csms.csms.calls("Authorize", st.identity), 5, "Authorize")
    time.sleep(0.3)
    assert tx_events(csms, st.identity) == []
    st.cmd("plug 1")
    s = wait_event(csms, st, started, "Started")
    assert s["transactionInfo"]["remoteStartId"] == 42  # F02.FR.01
    assert s["idToken"] == TOKEN
    assert s["triggerReason"] == "RemoteStart"  # F02.FR.21
    wait_event(csms, st, charging, "Charging")


def test_F02_FR_09_remote_start_not_authorized_starts_nothing(csms, station):
    csms.csms.responders["Authorize"] = lambda cp, p: {"idTokenInfo": {"status": "Invalid"}}
    st = boot(csms, station, "TxCtrlr.TxStartPoint=Authorized")
    assert remote_start(csms, st) == {"status": "Accepted"}
    csms.wait_for(lambda: csms.csms.calls("Authorize", st.identity), 5, "Authorize")
    st.cmd("plug 1")
    time.sleep(1.0)
    assert tx_events(csms, st.identity) == []
    assert not st.status()["evses"][0]["relay"]


def test_TC_F_03_CS_remote_start_first_AuthorizeRemoteStart_false(csms, station):
    st = boot(csms, station, "AuthCtrlr.AuthorizeRemoteStart=false",
              "TxCtrlr.TxStartPoint=Authorized")
    assert remote_start(csms, st) == {"status": "Accepted"}
    s = wait_event(csms, st, started, "Started")
    assert s["triggerReason"] == "RemoteStart" and s["transactionInfo"]["remoteStartId"] == 42
    assert s["idToken"] == TOKEN  # F01.FR.02: the CSMS checks it through the TransactionEvent
    st.cmd("plug 1")
    wait_event(csms, st, charging, "Charging")
    assert csms.csms.calls("Authorize", st.identity) == []


def test_TC_F_04_CS_remote_start_first_cable_plugin_timeout(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=Authorized", "TxCtrlr.EVConnectionTimeOut=1")
    assert remote_start(csms, st) == {"status": "Accepted"}
    s = wait_event(csms, st, started, "Started")
    assert s["transactionInfo"]["remoteStartId"] == 42
    e = wait_event(csms, st, ended, "Ended", 8)
    assert e["triggerReason"] == "EVConnectTimeout"  # E03.FR.05
    assert e["transactionInfo"]["stoppedReason"] == "Timeout"


def test_F01_FR_23_24_remote_start_rejected_when_faulted_busy_or_unknown(csms, station):
    st = boot(csms, station, evses=2)
    assert remote_start(csms, st, evse_id=7)["status"] == "Rejected"
    st.cmd("fault 1 rcd")
    st.wait_status(lambda s: s["evses"][0]["status"] == "Faulted", 5, "Faulted")
    r = remote_start(csms, st, evse_id=1)
    assert r["status"] == "Rejected"  # F01.FR.23
    # without evseId the station picks a free EVSE (F01.FR.20): only EVSE 2 is left
    assert remote_start(csms, st, evse_id=None) == {"status": "Accepted"}
    st.cmd("plug 2")
    s = wait_event(csms, st, started, "Started on EVSE 2")
    assert s["evse"]["id"] == 2
    r = remote_start(csms, st, evse_id=2, rsid=43)
    assert r["status"] == "Rejected"  # F01.FR.24: authorized transaction there
    assert r["statusInfo"]["reasonCode"] == "TxInProgress"
    assert remote_start(csms, st, evse_id=None, rsid=44)["status"] == "Rejected"  # none free


# ---------------------------------------------------------------- F03
def test_TC_F_08_CS_remote_stop_success(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    r = csms.call(st.identity, "RequestStopTransaction", {"transactionId": tid})
    assert r == {"status": "Accepted"}  # F03.FR.07
    # TxStopPoint EVConnected,Authorized: the end of the authorization ends it (F03.FR.03)
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "RemoteStop"
    assert e["transactionInfo"]["stoppedReason"] == "Remote"
    assert e["transactionInfo"]["transactionId"] == tid
    st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")


def test_TC_F_08_CS_remote_stop_TxStopPoint_EVConnected(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStopPoint=EVConnected")
    tid = energy_transfer(csms, st)
    assert csms.call(st.identity, "RequestStopTransaction", {"transactionId": tid})["status"] == "Accepted"
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "RemoteStop", "RemoteStop")
    assert u["eventType"] == "Updated"  # F03.FR.02: energy offer stops, transaction goes on
    st.wait_status(lambda s: not s["evses"][0]["relay"], 8, "relay open")
    st.cmd("unplug 1")
    e = wait_event(csms, st, ended, "Ended")
    assert e["transactionInfo"]["stoppedReason"] == "Remote"


def test_TC_F_09_CS_remote_stop_rejected(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    r = csms.call(st.identity, "RequestStopTransaction", {"transactionId": tid[:-4] + "0000"})
    assert r["status"] == "Rejected"  # F03.FR.08
    time.sleep(0.5)
    assert not [e for e in tx_events(csms, st.identity) if ended(e)]
    assert st.status()["evses"][0]["relay"]


# ---------------------------------------------------------------- F05
def unlock(csms, st, evse_id=1, connector_id=1):
    return csms.call(st.identity, "UnlockConnector", {"evseId": evse_id, "connectorId": connector_id})


def test_TC_F_05_CS_unlock_with_ongoing_transaction(csms, station):
    st = boot(csms, station)
    energy_transfer(csms, st)
    assert unlock(csms, st)["status"] == "OngoingAuthorizedTransaction"  # F05.FR.02
    time.sleep(0.3)
    assert not [e for e in tx_events(csms, st.identity) if ended(e)]
    assert st.status()["evses"][0]["relay"]


def test_TC_F_06_CS_unlock_without_transaction_accepted(csms, station):
    st = boot(csms, station)
    st.cmd("ev 1 B")  # a cable is in, no transaction
    time.sleep(0.2)
    assert unlock(csms, st)["status"] == "Unlocked"  # F05.FR.04


def test_TC_F_07_CS_unlock_without_transaction_no_cable(csms, station):
    st = boot(csms, station)
    assert unlock(csms, st)["status"] == "Unlocked"  # F05.FR.06: tried anyway


def test_TC_F_10_CS_unlock_unknown_connector(csms, station):
    st = boot(csms, station)
    assert unlock(csms, st, 1, 999)["status"] == "UnknownConnector"  # F05.FR.03
    assert unlock(csms, st, 9, 1)["status"] == "UnknownConnector"


def test_F05_FR_05_unlock_failed_when_the_lock_reports_a_fault(csms, station):
    st = boot(csms, station)
    st.cmd("fault 1 lock")
    assert unlock(csms, st)["status"] == "UnlockFailed"


# ---------------------------------------------------------------- F06
def test_TC_F_11_CS_trigger_meter_values_specific_evse(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    r, t = trigger(csms, cp, "MeterValues", {"id": 2})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: after_reply(csms, cp, t, "MeterValues"), 5, "MeterValues")
    time.sleep(0.3)
    got = after_reply(csms, cp, t, "MeterValues")
    assert [m["evseId"] for m in got] == [2]
    sv = got[0]["meterValue"][0]["sampledValue"]
    assert sv[0]["context"] == "Trigger"
    # F06.FR.06: the AlignedDataCtrlr measurands (default: the energy register)
    assert [s.get("measurand") for s in sv] == ["Energy.Active.Import.Register"]


def test_TC_F_12_CS_trigger_meter_values_all_evse(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    r, t = trigger(csms, cp, "MeterValues")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: len(after_reply(csms, cp, t, "MeterValues")) >= 2, 5, "MeterValues x2")
    got = after_reply(csms, cp, t, "MeterValues")
    assert sorted(m["evseId"] for m in got) == [1, 2]  # F06.FR.11
    assert all(m["meterValue"][0]["sampledValue"][0]["context"] == "Trigger" for m in got)


def triggered_tx(csms, cp, t):
    return [e for e in after_reply(csms, cp, t, "TransactionEvent") if e["triggerReason"] == "Trigger"]


def test_TC_F_13_CS_trigger_transaction_event_specific_evse(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    tid = energy_transfer(csms, st, 1)
    r, t = trigger(csms, cp, "TransactionEvent", {"id": 1})
    assert r["status"] == "Accepted"
    e = csms.wait_for(lambda: triggered_tx(csms, cp, t), 5, "triggered TransactionEvent")[0]
    assert e["eventType"] == "Updated" and e["transactionInfo"]["transactionId"] == tid
    assert e["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"  # F06.FR.07
    # TC_F_13 tool validation: chargingState is given (Charging) in the triggered event,
    # even though the state did not change
    assert e["transactionInfo"].get("chargingState") == "Charging"
    # nothing to report on an EVSE without a transaction
    assert trigger(csms, cp, "TransactionEvent", {"id": 2})[0]["status"] == "Rejected"


def test_TC_F_14_CS_trigger_transaction_event_all_evse(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    assert trigger(csms, cp, "TransactionEvent")[0]["status"] == "Rejected"  # none running
    t1 = energy_transfer(csms, st, 1, "AABBCCDD")
    t2 = energy_transfer(csms, st, 2, "11223344")
    r, t = trigger(csms, cp, "TransactionEvent")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: len(triggered_tx(csms, cp, t)) >= 2, 5, "two triggered events")
    got = triggered_tx(csms, cp, t)
    assert sorted(e["transactionInfo"]["transactionId"] for e in got) == sorted([t1, t2])
    assert all(e["meterValue"][0]["sampledValue"][0]["context"] == "Trigger" for e in got)


def test_TC_F_24_CS_trigger_status_notification_specific_evse_occupied(csms, station):
    st = boot(csms, station)
    cp = st.identity
    st.cmd("plug 1")
    st.wait_status(lambda s: s["evses"][0]["status"] == "Occupied", 5, "Occupied")
    time.sleep(0.3)
    r, t = trigger(csms, cp, "StatusNotification", {"id": 1, "connectorId": 1})
    assert r["status"] == "Accepted"
    got = csms.wait_for(lambda: after_reply(csms, cp, t, "StatusNotification"), 5, "status")
    assert (got[0]["evseId"], got[0]["connectorId"], got[0]["connectorStatus"]) == (1, 1, "Occupied")
