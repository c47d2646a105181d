"""Part 6 Core transaction test cases (blocks E and J) against the mobilityhouse-based CSMS,
station on CPython and under micropython; every frame is schema-validated by the fixture."""
import time

from tests.helpers import TOKEN, boot, ended, energies, statuses, tx_events, wait_event
from tests.proxy import LinkProxy


def test_TC_E_01_CS_start_PowerPathClosed_and_TC_E_14_stop_EVDisconnected(csms, station):
    st = boot(csms, station)
    st.cmd("plug 1")
    time.sleep(0.3)
    assert tx_events(csms, st.identity) == []  # E01.FR.05: not before authorization
    st.cmd("tap aabbccdd")
    s = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    assert s["triggerReason"] == "Authorized" and s["seqNo"] == 0
    assert s["idToken"] == TOKEN  # upper-case hex UID (C01), E01.FR.10
    assert s["evse"] == {"id": 1, "connectorId": 1}  # E01.FR.16
    assert "chargingState" in s["transactionInfo"]
    assert s["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"  # E01.FR.09
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging", "Charging")
    st.cmd("unplug 1")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "EVCommunicationLost"  # E06.FR.02
    assert e["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert energies(e, "Transaction.End")  # E06.FR.11
    evs = tx_events(csms, st.identity)
    assert [x["seqNo"] for x in evs] == list(range(len(evs)))
    assert len(set(x["transactionInfo"]["transactionId"] for x in evs)) == 1
    assert all("offline" not in x for x in evs)


def test_TC_E_09_CS_start_EVConnected(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EVConnected")
    st.cmd("plug 1")
    s = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    assert s["triggerReason"] == "CablePluggedIn" and "idToken" not in s
    assert s["transactionInfo"]["chargingState"] == "EVConnected"
    st.cmd("tap AABBCCDD")
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "Authorized", "Authorized")
    assert u["eventType"] == "Updated" and u["idToken"] == TOKEN  # E02.FR.01
    assert "evse" not in u
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "StopAuthorized"


def test_TC_E_10_CS_start_Authorized_local(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=Authorized")
    st.cmd("tap AABBCCDD")
    s = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    assert s["triggerReason"] == "Authorized" and s["idToken"] == TOKEN
    assert s["transactionInfo"]["chargingState"] == "Idle"
    st.cmd("plug 1")
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "CablePluggedIn", "plugged in")
    assert u["evse"] == {"id": 1, "connectorId": 1}  # E01.FR.16 after the EV connects
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging", "Charging")


def test_TC_E_02_CS_start_EnergyTransfer_and_TC_E_22_stop_SuspendedEV(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EnergyTransfer", "TxCtrlr.TxStopPoint=EnergyTransfer")
    st.cmd("ev 1 B")  # connected, not asking for energy
    st.cmd("tap AABBCCDD")
    time.sleep(0.5)
    assert tx_events(csms, st.identity) == []
    st.cmd("ev 1 C")
    s = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")  # E01.FR.06
    assert s["transactionInfo"]["chargingState"] == "Charging" and s["idToken"] == TOKEN
    st.cmd("ev 1 B")  # the EV suspends: energy transfer stops (E06.FR.07)
    e = wait_event(csms, st, ended, "Ended")
    assert e["transactionInfo"]["stoppedReason"] == "StoppedByEV"


def test_TC_E_05_CS_authorization_first_cable_plugin_timeout(csms, station):
    st = boot(csms, station, "TxCtrlr.EVConnectionTimeOut=1")
    st.cmd("tap AABBCCDD")
    st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "authorized")
    time.sleep(1.6)
    st.wait_status(lambda s: not s["evses"][0]["authorized"], 5, "authorization expired")
    st.cmd("plug 1")
    csms.wait_for(lambda: (1, 1, "Occupied") in statuses(csms, st.identity), 5, "Occupied")
    time.sleep(0.5)
    assert tx_events(csms, st.identity) == []  # PowerPathClosed never reached
    assert not st.status()["evses"][0]["relay"]  # no charging on the expired authorization


def test_E03_FR_05_started_transaction_ends_on_EVConnectionTimeOut(csms, station):
    st = boot(csms, station, "TxCtrlr.EVConnectionTimeOut=1", "TxCtrlr.TxStartPoint=Authorized")
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended", 6)
    assert e["triggerReason"] == "EVConnectTimeout" and e["transactionInfo"]["stoppedReason"] == "Timeout"


def test_TC_E_15_CS_stop_authorized_local(csms, station):
    st = boot(csms, station)
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging", "Charging")
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "StopAuthorized" and e["idToken"] == TOKEN  # E07.FR.02
    assert e["transactionInfo"]["stoppedReason"] == "Local"
    st.wait_status(lambda s: not s["evses"][0]["relay"], 8, "relay open")


def test_TC_E_16_CS_deauthorized_invalid_idtoken(csms, station):
    csms.csms.responders["TransactionEvent"] = lambda cp, p: (
        {"idTokenInfo": {"status": "Invalid"}} if p.get("idToken") else {})
    st = boot(csms, station)
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "Deauthorized"  # E05.FR.10
    assert e["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    st.wait_status(lambda s: not s["evses"][0]["relay"], 8, "relay open")


def test_E05_FR_03_MaxEnergyOnInvalidId(csms, station):
    csms.csms.responders["TransactionEvent"] = lambda cp, p: (
        {"idTokenInfo": {"status": "Blocked"}} if p.get("idToken") else {})
    st = boot(csms, station, "TxCtrlr.StopTxOnInvalidId=false", "TxCtrlr.MaxEnergyOnInvalidId=3")
    st.cmd("power 1 36000")  # 10 Wh per second
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    u = wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "SuspendedEVSE",
                   "suspended after MaxEnergyOnInvalidId")
    assert u["eventType"] == "Updated" and u["triggerReason"] == "ChargingStateChanged"
    s = st.wait_status(lambda s: not s["evses"][0]["relay"], 8, "relay open")
    assert s["evses"][0]["transaction"]  # E05: the transaction stays open


def test_TC_E_26_CS_ev_side_disconnect_suspends(csms, station):
    st = boot(csms, station, "TxCtrlr.StopTxOnEVSideDisconnect=false", "TxCtrlr.TxStopPoint=Authorized")
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging", "Charging")
    st.cmd("unplug 1")
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "EVCommunicationLost", "suspended")
    assert u["eventType"] == "Updated" and u["transactionInfo"]["chargingState"] == "Idle"
    st.cmd("plug 1")
    wait_event(csms, st, lambda e: e["triggerReason"] == "CablePluggedIn", "replugged")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging"
               and e["seqNo"] > u["seqNo"], "charging again")
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["triggerReason"] == "StopAuthorized"


def test_TC_E_28_to_34_CS_get_transaction_status(csms, station):
    st = boot(csms, station)
    cp = st.identity
    r = csms.call(cp, "GetTransactionStatus", {"transactionId": "no-such-transaction"})
    assert r == {"messagesInQueue": False, "ongoingIndicator": False}  # E14.FR.01
    r = csms.call(cp, "GetTransactionStatus", {})
    assert r == {"messagesInQueue": False}  # E14.FR.06/.08
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    tid = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")["transactionInfo"]["transactionId"]
    time.sleep(0.3)
    r = csms.call(cp, "GetTransactionStatus", {"transactionId": tid})
    assert r == {"messagesInQueue": False, "ongoingIndicator": True}  # E14.FR.02/.05
    csms.csms.hold.add("TransactionEvent")  # further events stay unanswered, i.e. queued
    st.cmd("tap AABBCCDD")
    csms.wait_for(lambda: [e for e in tx_events(csms, cp) if ended(e)], 10, "Ended sent")
    r = csms.call(cp, "GetTransactionStatus", {"transactionId": tid})
    assert r == {"messagesInQueue": True, "ongoingIndicator": False}  # E14.FR.03/.04
    r = csms.call(cp, "GetTransactionStatus", {})
    assert r == {"messagesInQueue": True}  # E14.FR.07


def test_TC_E_40_CS_connection_loss_during_transaction(csms, station):
    proxy = LinkProxy(csms.csms.port)
    try:
        st = boot(csms, station, "SampledDataCtrlr.TxUpdatedInterval=1",
                  "OCPPCommCtrlr.RetryBackOffWaitMinimum=1", "OCPPCommCtrlr.RetryBackOffRandomRange=0",
                  url=proxy.url())
        st.cmd("plug 1")
        st.cmd("tap AABBCCDD")
        wait_event(csms, st, lambda e: e["triggerReason"] == "MeterValuePeriodic", "periodic")
        proxy.refuse = True
        proxy.cut()
        st.wait_status(lambda s: not s["connected"], 5, "offline")
        time.sleep(2.2)
        st.cmd("tap AABBCCDD")  # stopped offline (E08): same token, decided locally
        s = st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 5, "ended offline")
        assert s["queue"] >= 2
        proxy.refuse = False
        e = wait_event(csms, st, ended, "Ended after reconnect", 15)
        assert e["offline"] is True  # E08.FR.07
        evs = tx_events(csms, st.identity)
        # nothing lost: every seqNo arrives; one in flight at the cut may arrive twice, and
        # then it must be the identical event (the CSMS de-duplicates on transactionId+seqNo)
        by_seq = {}
        for x in evs:
            assert by_seq.setdefault(x["seqNo"], x) == x, ("different events under one seqNo", x)
        assert sorted(by_seq) == list(range(len(by_seq)))
        assert sum(1 for x in by_seq.values() if x.get("offline")) >= 2  # E11.FR.02
        st.wait_status(lambda s: s["queue"] == 0, 10, "queue drained")
    finally:
        proxy.stop()


def test_TC_J_07_09_10_CS_sampled_meter_values(csms, station):
    st = boot(csms, station, "SampledDataCtrlr.TxUpdatedInterval=1",
              "SampledDataCtrlr.TxStartedMeasurands=Energy.Active.Import.Register,Voltage",
              "SampledDataCtrlr.TxUpdatedMeasurands=Energy.Active.Import.Register,Power.Active.Import,Current.Import",
              "SampledDataCtrlr.TxEndedMeasurands=Energy.Active.Import.Register",
              "SampledDataCtrlr.TxEndedInterval=1")
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    s = wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    sv = s["meterValue"][0]["sampledValue"]
    assert {x["measurand"] for x in sv} == {"Energy.Active.Import.Register", "Voltage"}  # J_07
    assert {x.get("phase") for x in sv if x["measurand"] == "Voltage"} == {"L1-N", "L2-N", "L3-N"}
    csms.wait_for(lambda: len([e for e in tx_events(csms, st.identity)
                               if e["triggerReason"] == "MeterValuePeriodic"]) >= 2, 10, "2 periodic")
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    periodic = [x for x in tx_events(csms, st.identity) if x["triggerReason"] == "MeterValuePeriodic"]
    for p in periodic:  # J02.FR.11
        ms = {x["measurand"] for x in p["meterValue"][0]["sampledValue"]}
        assert ms == {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import"}
        assert all(x["context"] == "Sample.Periodic" for x in p["meterValue"][0]["sampledValue"])
    # J_10: TxEndedInterval samples plus the Transaction.End reading, energy monotonic
    assert energies(e, "Sample.Periodic") and energies(e, "Transaction.End")
    assert energies(e) == sorted(energies(e))
    assert energies(e, "Transaction.End")[-1] >= energies(periodic[-1])[0]


def test_TC_J_01_CS_clock_aligned_no_transaction(csms, station):
    st = boot(csms, station, "AlignedDataCtrlr.Interval=1", evses=2)
    mv = csms.wait_for(lambda: len(csms.csms.calls("MeterValues", st.identity)) >= 4 and
                       csms.csms.calls("MeterValues", st.identity), 10, "aligned MeterValues")
    assert {m["evseId"] for m in mv} == {1, 2}  # J01.FR.02/.14
    for m in mv:
        v = m["meterValue"][0]
        assert v["timestamp"][17:23] == "00.000"[:6] or v["timestamp"][19:23] == ".000"  # on the second
        assert v["sampledValue"][0]["context"] == "Sample.Clock"


def test_TC_J_02_CS_clock_aligned_transaction_ongoing(csms, station):
    st = boot(csms, station, "AlignedDataCtrlr.Interval=1")
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    n = len(csms.csms.calls("MeterValues", st.identity))
    u = wait_event(csms, st, lambda e: e["triggerReason"] == "MeterValueClock", "clock sample", 5)
    assert u["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"  # J01.FR.22
    time.sleep(1.2)
    assert len(csms.csms.calls("MeterValues", st.identity)) <= n + 1  # in TransactionEvent only


def test_TC_J_06_CS_clock_aligned_send_during_idle(csms, station):
    st = boot(csms, station, "AlignedDataCtrlr.Interval=1", "AlignedDataCtrlr.SendDuringIdle=true", evses=2)
    csms.wait_for(lambda: csms.csms.calls("MeterValues", st.identity), 5, "idle MeterValues")
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started")
    time.sleep(0.2)
    n = len(csms.csms.calls("MeterValues", st.identity))
    time.sleep(2.2)
    assert len(csms.csms.calls("MeterValues", st.identity)) == n  # J01.FR.20
    assert not [e for e in tx_events(csms, st.identity) if e["triggerReason"] == "MeterValueClock"]
