"""Availability (block G: G01, G03, G04, G05) against the test CSMS, station on CPython and
under micropython; every frame is schema-validated by the csms fixture."""
import time

from tests.helpers import (FAST_RECONNECT, boot, change, ended, energy_transfer, evse_ref, set_args,
                           statuses, tx_events, wait_event, wait_status)


def dm_state(csms, st, component, evse_id=None, connector_id=None):
    comp = {"name": component}
    evse = evse_ref(evse_id, connector_id)
    if evse is not None:
        comp["evse"] = evse
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": comp, "variable": {"name": "AvailabilityState"}}]})
    res = r["getVariableResult"][0]
    assert res["attributeStatus"] == "Accepted", res
    return res["attributeValue"]


def booted_all_connectors(csms, cp, n):
    """Wait until a 2-EVSE station has booted n times and sent at least 2n StatusNotifications
    in all (one per connector per boot)."""
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", cp)) >= n
                  and len(csms.csms.calls("StatusNotification", cp)) >= 2 * n, 20, "boot %d" % n)


def statuses_after_last_boot(csms, cp):
    """(evseId, connectorId, connectorStatus) of the StatusNotifications `cp` sent after its
    latest BootNotification, in the order the CSMS received them."""
    out = []
    for m in list(csms.csms.messages):
        f = m["frame"]
        if m["cp"] != cp or m["dir"] != "in" or not isinstance(f, list) or f[0] != 2:
            continue
        if f[2] == "BootNotification":
            out = []
        elif f[2] == "StatusNotification":
            out.append((f[3]["evseId"], f[3]["connectorId"], f[3]["connectorStatus"]))
    return out


# ------------------------------------------------------------------ G03 EVSE / connector
def test_TC_G_03_04_09_10_CS_evse_inoperative_and_operative(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    assert change(csms, st, "Operative", 1) == {"status": "Accepted"}  # TC_G_09, G03.FR.03
    time.sleep(0.3)
    assert statuses(csms, cp) == [(1, 1, "Available"), (2, 1, "Available")]
    assert change(csms, st, "Inoperative", 1) == {"status": "Accepted"}  # TC_G_03
    wait_status(csms, cp, 1, "Unavailable")  # G03.FR.04, G03.FR.06
    assert dm_state(csms, st, "EVSE", 1) == "Unavailable"
    assert dm_state(csms, st, "Connector", 1, 1) == "Unavailable"
    assert dm_state(csms, st, "EVSE", 2) == "Available"
    assert dm_state(csms, st, "ChargingStation") == "Available"
    n = len(statuses(csms, cp))
    assert change(csms, st, "Inoperative", 1) == {"status": "Accepted"}  # TC_G_10
    # An Unavailable EVSE does not charge: the card goes to the free EVSE 2 and a plug on
    # EVSE 1 starts nothing; the CSMS cannot start a transaction there either (F01.FR.24).
    r = csms.call(cp, "RequestStartTransaction", {"idToken": {"idToken": "AABBCCDD", "type": "ISO14443"},
                                                  "remoteStartId": 7, "evseId": 1})
    assert r["status"] == "Rejected"
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    time.sleep(0.8)
    s = st.status()["evses"][0]
    assert s["status"] == "Unavailable" and not s["relay"] and not s["authorized"]
    assert not [e for e in tx_events(csms, cp) if e.get("evse", {}).get("id") == 1]
    assert statuses(csms, cp)[n:] == []  # plugging in an Unavailable connector changes nothing
    st.cmd("unplug 1")
    assert change(csms, st, "Operative", 1) == {"status": "Accepted"}  # TC_G_04
    wait_status(csms, cp, 1, "Available", n)  # G03.FR.07
    assert dm_state(csms, st, "EVSE", 1) == "Available"
    assert [x for x in statuses(csms, cp) if x[0] == 2] == [(2, 1, "Available")]


def test_TC_G_07_08_15_16_CS_connector_inoperative_and_operative(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    assert change(csms, st, "Operative", 2, 1) == {"status": "Accepted"}  # TC_G_15
    assert change(csms, st, "Inoperative", 2, 1) == {"status": "Accepted"}  # TC_G_07
    wait_status(csms, cp, 2, "Unavailable")
    assert dm_state(csms, st, "Connector", 2, 1) == "Unavailable"
    assert change(csms, st, "Inoperative", 2, 1) == {"status": "Accepted"}  # TC_G_16
    # G03 note 1: the levels are separate; the EVSE going Operative again leaves the
    # connector Inoperative.
    assert change(csms, st, "Inoperative", 2) == {"status": "Accepted"}
    assert change(csms, st, "Operative", 2) == {"status": "Accepted"}
    time.sleep(0.5)
    assert st.status()["evses"][1]["status"] == "Unavailable"
    n = len(statuses(csms, cp))
    assert change(csms, st, "Operative", 2, 1) == {"status": "Accepted"}  # TC_G_08
    wait_status(csms, cp, 2, "Available", n)
    assert [x for x in statuses(csms, cp) if x[0] == 1] == [(1, 1, "Available")]
    # unknown EVSE / connector: Rejected with the reason codes of the appendix
    r = change(csms, st, "Inoperative", 9)
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "UnknownEvse"
    r = change(csms, st, "Inoperative", 1, 2)
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "UnknownConnectorId"
    time.sleep(0.3)
    assert st.status()["evses"][0]["status"] == "Available"


# ------------------------------------------------------------------ G04 station
def test_TC_G_05_06_12_13_CS_station_inoperative_and_operative(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    assert change(csms, st, "Operative") == {"status": "Accepted"}  # TC_G_12, G04.FR.04
    assert change(csms, st, "Inoperative") == {"status": "Accepted"}  # TC_G_05
    wait_status(csms, cp, 1, "Unavailable")  # G04.FR.05, G04.FR.07
    wait_status(csms, cp, 2, "Unavailable")
    assert dm_state(csms, st, "ChargingStation") == "Unavailable"
    assert change(csms, st, "Inoperative") == {"status": "Accepted"}  # TC_G_13
    # evse.id 0 designates the station as a whole
    assert change(csms, st, "Inoperative", 0) == {"status": "Accepted"}
    n = len(statuses(csms, cp))
    assert change(csms, st, "Operative") == {"status": "Accepted"}  # TC_G_06
    wait_status(csms, cp, 1, "Available", n)  # G04.FR.08
    wait_status(csms, cp, 2, "Available", n)
    assert dm_state(csms, st, "ChargingStation") == "Available"


# ------------------------------------------------------------------ with a transaction
def test_TC_G_11_CS_evse_inoperative_with_ongoing_transaction(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    energy_transfer(csms, st, 1)
    n = len(statuses(csms, cp))
    assert change(csms, st, "Inoperative", 1) == {"status": "Scheduled"}  # G03.FR.05
    assert change(csms, st, "Inoperative", 1) == {"status": "Scheduled"}  # still scheduled
    time.sleep(0.6)
    s = st.status()["evses"][0]
    assert s["status"] == "Occupied" and s["relay"]  # the session goes on
    assert statuses(csms, cp)[n:] == []
    st.cmd("tap AABBCCDD")  # StopAuthorized ends it (TxStopPoint Authorized)
    wait_event(csms, st, ended, "Ended")
    wait_status(csms, cp, 1, "Unavailable", n)  # EV still plugged in
    st.cmd("unplug 1")
    time.sleep(0.5)
    assert [x for x in statuses(csms, cp)[n:]] == [(1, 1, "Unavailable")]
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    time.sleep(0.6)
    assert len([e for e in tx_events(csms, cp) if e["eventType"] == "Started"]) == 1
    assert not st.status()["evses"][0]["relay"]


def test_TC_G_14_CS_station_inoperative_with_ongoing_transaction(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    energy_transfer(csms, st, 1)
    n = len(statuses(csms, cp))
    assert change(csms, st, "Inoperative") == {"status": "Scheduled"}  # G04.FR.06
    wait_status(csms, cp, 2, "Unavailable", n)  # the EVSE without a transaction at once
    time.sleep(0.3)
    assert statuses(csms, cp)[n:] == [(2, 1, "Unavailable")]
    assert dm_state(csms, st, "ChargingStation") == "Available"  # still charging on 1
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, ended, "Ended")
    wait_status(csms, cp, 1, "Unavailable", n)
    assert dm_state(csms, st, "ChargingStation") == "Unavailable"
    assert change(csms, st, "Operative") == {"status": "Accepted"}
    st.cmd("unplug 1")
    wait_status(csms, cp, 1, "Available", n)
    wait_status(csms, cp, 2, "Available", n)


def test_TC_G_17_CS_connector_inoperative_with_ongoing_transaction_G01_FR_05(csms, station):
    """TxStopPoint EVConnected: the transaction outlives the StopAuthorized and ends at the
    unplug, where the connector goes from Occupied straight to Unavailable (G01.FR.05)."""
    st = boot(csms, station, "TxCtrlr.TxStopPoint=EVConnected")
    cp = st.identity
    energy_transfer(csms, st, 1)
    n = len(statuses(csms, cp))
    assert change(csms, st, "Inoperative", 1, 1) == {"status": "Scheduled"}
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["triggerReason"] == "StopAuthorized", "StopAuthorized")
    time.sleep(0.5)
    assert statuses(csms, cp)[n:] == []
    assert not [e for e in tx_events(csms, cp) if ended(e)]
    st.cmd("unplug 1")
    wait_event(csms, st, ended, "Ended")
    wait_status(csms, cp, 1, "Unavailable", n)
    time.sleep(0.3)
    assert statuses(csms, cp)[n:] == [(1, 1, "Unavailable")]


def test_G03_unavailable_evse_starts_no_transaction_at_EVConnected(csms, station):
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EVConnected")
    cp = st.identity
    assert change(csms, st, "Inoperative", 1) == {"status": "Accepted"}
    wait_status(csms, cp, 1, "Unavailable")
    st.cmd("plug 1")
    time.sleep(0.6)
    assert tx_events(csms, cp) == []
    assert change(csms, st, "Operative", 1) == {"status": "Accepted"}
    st.cmd("unplug 1")
    st.wait_status(lambda s: s["evses"][0]["pilot"] == "A", 5, "unplugged")
    st.cmd("plug 1")
    wait_event(csms, st, lambda e: e["eventType"] == "Started", "Started once Operative")


# ------------------------------------------------------------------ persistence
def test_TC_G_18_CS_evse_unavailable_persists_across_reboot(csms, station):
    st = boot(csms, station, *FAST_RECONNECT, evses=2)
    cp = st.identity
    assert change(csms, st, "Inoperative", 1) == {"status": "Accepted"}
    wait_status(csms, cp, 1, "Unavailable")
    assert csms.call(cp, "Reset", {"type": "Immediate"})["status"] == "Accepted"
    # the reboot's own StatusNotifications, found by their place after its BootNotification:
    # a window counted back from the total could still hold the Unavailable sent before it
    want = [(1, 1, "Unavailable"), (2, 1, "Available")]
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", cp)) >= 2
                  and len(statuses_after_last_boot(csms, cp)) >= 2, 20, "statuses after the reboot")
    assert sorted(statuses_after_last_boot(csms, cp)) == want
    assert change(csms, st, "Inoperative", 1) == {"status": "Accepted"}


def test_TC_G_19_21_CS_unavailable_persists_power_loss(csms, station, tmp_path):
    """Connector (TC_G_19) and station (TC_G_21) levels survive SIGKILL; a change answered
    Scheduled survives it too and applies once the recovered transaction is ended."""
    data = str(tmp_path / "cs-g19")
    args = ["--evses", "2"] + set_args(*FAST_RECONNECT)
    st = station(args=args, data_dir=data)
    cp = st.identity
    booted_all_connectors(csms, cp, 1)
    assert change(csms, st, "Inoperative", 2, 1) == {"status": "Accepted"}
    wait_status(csms, cp, 2, "Unavailable")
    energy_transfer(csms, st, 1)
    assert change(csms, st, "Inoperative", 1) == {"status": "Scheduled"}
    st.kill()  # power cut right after the response
    st = station(args=args, data_dir=data, identity=cp)
    booted_all_connectors(csms, cp, 2)
    e = wait_event(csms, st, ended, "recovered transaction ended")
    assert e["transactionInfo"]["stoppedReason"] == "PowerLoss"
    csms.wait_for(lambda: [x for x in statuses(csms, cp)[3:] if x == (1, 1, "Unavailable")]
                  and (2, 1, "Unavailable") in statuses(csms, cp)[3:], 8, "both Unavailable")
    assert (2, 1, "Available") not in statuses(csms, cp)[3:]
    # TC_G_21: the station level
    assert change(csms, st, "Operative", 1) == {"status": "Accepted"}
    assert change(csms, st, "Operative", 2, 1) == {"status": "Accepted"}
    assert change(csms, st, "Inoperative") == {"status": "Accepted"}
    st.cmd("unplug 1")
    time.sleep(0.3)
    st.kill()
    n = len(statuses(csms, cp))
    st = station(args=args, data_dir=data, identity=cp)
    booted_all_connectors(csms, cp, 3)
    csms.wait_for(lambda: sorted(statuses(csms, cp)[n:]) == [(1, 1, "Unavailable"), (2, 1, "Unavailable")],
                  8, "station Unavailable after the power cut")
    assert dm_state(csms, st, "ChargingStation") == "Unavailable"
    assert change(csms, st, "Operative") == {"status": "Accepted"}
    wait_status(csms, cp, 1, "Available", n + 2)
    wait_status(csms, cp, 2, "Available", n + 2)


# ------------------------------------------------------------------ G05
def test_TC_G_20_CS_lock_failure(csms, station):
    """The plug cannot be locked: the connector is Faulted, charging does not start and the
    CSMS gets a NotifyEvent for ConnectorPlugRetentionLock.Problem = true (G05.FR.01/02)."""
    st = boot(csms, station)
    cp = st.identity
    st.cmd("plug 1")
    wait_status(csms, cp, 1, "Occupied")
    st.cmd("fault 1 lock")
    st.cmd("tap AABBCCDD")
    csms.wait_for(lambda: [d for p in csms.csms.calls("NotifyEvent", cp) for d in p["eventData"]
                           if d["component"]["name"] == "ConnectorPlugRetentionLock"
                           and d["variable"]["name"] == "Problem" and d["actualValue"] == "true"
                           and d["trigger"] == "Delta"],
                  8, "NotifyEvent ConnectorPlugRetentionLock.Problem")
    wait_status(csms, cp, 1, "Faulted")
    time.sleep(0.8)
    s = st.status()["evses"][0]
    assert not s["relay"] and s["offered"] == 0
    assert tx_events(csms, cp) == []  # TxStartPoint PowerPathClosed is never reached


# ------------------------------------------------------------------ TxCtrlr valuesList
def test_E01_TxStartPoint_TxStopPoint_refuse_points_this_station_cannot_detect(csms, station):
    """No parking-bay sensor and no signing meter: those points are not in the valuesList, so
    SetVariables says Rejected instead of silently accepting a point that never occurs."""
    st = boot(csms, station)
    r = csms.call(st.identity, "SetVariables", {"setVariableData": [
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"},
         "attributeValue": "ParkingBayOccupancy,PowerPathClosed"},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"},
         "attributeValue": "DataSigned,EVConnected"},
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"},
         "attributeValue": "EVConnected,Authorized"}]})
    assert [x["attributeStatus"] for x in r["setVariableResult"]] == ["Rejected", "Rejected", "Accepted"]
    energy_transfer(csms, st, 1)
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["transactionInfo"]["stoppedReason"] == "Local"
