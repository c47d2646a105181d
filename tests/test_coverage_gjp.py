"""Part 6 Core cases TC_G_01/02 (connector status), TC_B_51/52 (status changes while offline),
TC_J_03 (clock-aligned values in the Ended event) and TC_P_03 (custom data received from the
CSMS). Station on CPython and under micropython; every frame is schema-validated by the fixture."""
import json
import time

from tests.helpers import (FAST_RECONNECT, after_reply, boot, ended, energy_transfer, go_offline,
                           statuses, trigger, tx_events, wait_event)
from tests.proxy import LinkProxy

CUSTOM = {"vendorId": "com.example.csms", "tariff": {"code": "T1"}, "note": "ignore me"}


def test_TC_G_01_CS_connector_status_available_to_occupied(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    assert statuses(csms, cp) == [(1, 1, "Available"), (2, 1, "Available")]
    st.cmd("plug 2")
    csms.wait_for(lambda: len(statuses(csms, cp)) > 2, 5, "status change")
    assert statuses(csms, cp)[2:] == [(2, 1, "Occupied")]  # G01.FR.01/.02, only the changed one
    sn = csms.csms.calls("StatusNotification", cp)[-1]
    assert sn["timestamp"]


def test_TC_G_02_CS_connector_status_occupied_to_available(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    st.cmd("plug 1")
    csms.wait_for(lambda: (1, 1, "Occupied") in statuses(csms, cp), 5, "Occupied")
    n = len(statuses(csms, cp))
    st.cmd("unplug 1")
    csms.wait_for(lambda: len(statuses(csms, cp)) > n, 5, "status change")
    assert statuses(csms, cp)[n:] == [(1, 1, "Available")]


def test_TC_J_03_CS_clock_aligned_meter_values_in_Ended(csms, station):
    st = boot(csms, station, "AlignedDataCtrlr.TxEndedInterval=1",
              "AlignedDataCtrlr.TxEndedMeasurands=Energy.Active.Import.Register,Current.Import",
              "SampledDataCtrlr.TxEndedInterval=0")
    energy_transfer(csms, st)
    time.sleep(3.5)  # charge across at least three aligned instants, kept for the Ended event
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    mv = e["meterValue"]
    clock = [m for m in mv if m["sampledValue"][0]["context"] == "Sample.Clock"]
    assert len(clock) >= 2, mv
    for m in clock:
        assert m["timestamp"][19:23] == ".000"  # on the second: clock aligned, J01.FR.04
        assert {s["measurand"] for s in m["sampledValue"]} == {"Energy.Active.Import.Register",
                                                               "Current.Import"}
        assert all(s["context"] == "Sample.Clock" for s in m["sampledValue"])
    assert any(s["context"] == "Transaction.End" for m in mv for s in m["sampledValue"])
    stamps = [m["timestamp"] for m in clock]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # nothing clock-aligned went out on its own while the transaction ran (only TxEnded data)
    assert not csms.csms.calls("MeterValues", st.identity)
    assert not [x for x in tx_events(csms, st.identity) if x["triggerReason"] == "MeterValueClock"]


def test_TC_P_03_CS_receive_custom_data(csms, station):
    csms.csms.responders["TransactionEvent"] = lambda cp, p: (
        {"idTokenInfo": {"status": "Accepted"}, "customData": CUSTOM} if p.get("idToken")
        else {"customData": CUSTOM})
    csms.csms.responders["Heartbeat"] = lambda cp, p: {"currentTime": "2030-01-01T00:00:00.000Z",
                                                      "customData": CUSTOM}
    st = boot(csms, station)
    cp = st.identity
    # customData at the top of a request and inside nested objects is accepted and ignored
    r = csms.call(cp, "GetVariables", {"customData": CUSTOM, "getVariableData": [
        {"customData": CUSTOM, "component": {"name": "OCPPCommCtrlr", "customData": CUSTOM},
         "variable": {"name": "OfflineThreshold", "customData": CUSTOM}}]})
    assert r["getVariableResult"][0]["attributeStatus"] == "Accepted"
    r = csms.call(cp, "GetTransactionStatus", {"customData": CUSTOM})
    assert r == {"messagesInQueue": False}
    uid = "p03-raw"
    reply = csms.raw(cp, json.dumps([2, uid, "TriggerMessage", {"requestedMessage": "Heartbeat",
                                                              "customData": CUSTOM}]), uid)
    assert reply[0] == 3 and reply[2]["status"] == "Accepted"
    csms.wait_for(lambda: csms.csms.calls("Heartbeat", cp), 5, "Heartbeat")
    # and in responses to the station's own messages
    tid = energy_transfer(csms, st)
    st.cmd("tap AABBCCDD")
    e = wait_event(csms, st, ended, "Ended")
    assert e["transactionInfo"]["transactionId"] == tid
    st.wait_status(lambda s: s["queue"] == 0 and s["connected"], 5, "everything delivered")


# ---------------------------------------------------------------- B04 offline status changes
def _offline_change(csms, station, threshold, fault_evse_2=False):
    """Two EVSEs; EV plugged in on 1 (and EVSE 2 Faulted if asked); the link cut; the EV
    unplugged while offline. Returns (proxy refusing reconnects, station, statuses so far)."""
    proxy = LinkProxy(csms.csms.port)
    try:
        st = boot(csms, station, "OCPPCommCtrlr.OfflineThreshold=%d" % threshold, *FAST_RECONNECT,
                  evses=2, url=proxy.url())
        cp = st.identity
        assert statuses(csms, cp) == [(1, 1, "Available"), (2, 1, "Available")]  # B01.FR.05
        st.cmd("plug 1")
        csms.wait_for(lambda: (1, 1, "Occupied") in statuses(csms, cp), 5, "Occupied")  # E02.FR.05
        if fault_evse_2:
            st.cmd("fault 2 rcd")
            csms.wait_for(lambda: (2, 1, "Faulted") in statuses(csms, cp), 5, "Faulted")
        # the station has one CALL outstanding at a time: a triggered Heartbeat arriving means
        # the answers to the statuses above reached it, so the cut below can not make it
        # resend one of them (at-least-once delivery, not a status change)
        _, t = trigger(csms, cp, "Heartbeat")
        csms.wait_for(lambda: after_reply(csms, cp, t, "Heartbeat"), 5, "triggered Heartbeat")
        n = len(statuses(csms, cp))
        go_offline(proxy, st)
        st.cmd("unplug 1")  # a status change while offline
        st.wait_status(lambda s: s["evses"][0]["status"] == "Available", 5, "Available offline")
    except BaseException:
        proxy.stop()
        raise
    return proxy, st, n


def test_TC_B_51_CS_status_change_offline_longer_than_threshold(csms, station):
    proxy, st, n = _offline_change(csms, station, 1)
    try:
        time.sleep(1.5)  # stay offline past OfflineThreshold
        proxy.refuse = False
        st.wait_status(lambda s: s["connected"], 10, "reconnected")
        cp = st.identity
        csms.wait_for(lambda: len(statuses(csms, cp)) >= n + 2, 5, "every connector reported")
        # B04.FR.01: the status of every connector, whether it changed or not
        assert sorted(statuses(csms, cp)[n:]) == [(1, 1, "Available"), (2, 1, "Available")]
    finally:
        proxy.stop()


def test_TC_B_52_CS_G01_B04_status_change_offline_shorter_than_threshold(csms, station):
    """Offline for less than OfflineThreshold: after the reconnect only the connector whose
    status changed while offline is reported (B04.FR.02): EVSE 1 Available, not the Faulted
    EVSE 2, whose status did not change. (Was also test_G01_B04 in test_transactions.py.)"""
    proxy, st, n = _offline_change(csms, station, 60, fault_evse_2=True)
    cp = st.identity
    try:
        proxy.refuse = False
        st.wait_status(lambda s: s["connected"], 10, "reconnected")
        csms.wait_for(lambda: len(statuses(csms, cp)) > n, 5, "status after reconnect")
        time.sleep(0.5)
        assert statuses(csms, cp)[n:] == [(1, 1, "Available")]  # B04.FR.02: only what changed
    finally:
        proxy.stop()
