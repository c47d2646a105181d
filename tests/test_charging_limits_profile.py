"""Smart charging to the pilot, end to end (issue #14 item 2): a SetChargingProfile from the
mobilityhouse-based CSMS changes the current the station offers (console status `offered`,
what the pilot driver was given), a station-wide ChargingStationMaxProfile caps it, a
profile below 6 A suspends, and ClearChargingProfile restores the maximum. Station process
on CPython and under micropython; every frame schema-validated by the fixture."""
from tests.helpers import boot, go_offline, wait_event
from tests.proxy import LinkProxy

START = "2020-01-01T00:00:00Z"   # absolute schedules already running


def _charging(csms, st):
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging",
               "Charging")


def _max_profile(pid, amps, evse_id=0):
    return {"evseId": evse_id, "chargingProfile": {
        "id": pid, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": pid, "chargingRateUnit": "A", "startSchedule": START,
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}]}]}}


def _offered(s):
    return s["evses"][0]["offered"]


def test_K01_SetChargingProfile_sets_the_offer_and_ClearChargingProfile_restores_it(csms, station):
    # (waits of 15 s: failed once in a full local run on a loaded machine, not reproduced
    # in 14 runs; they are "eventually" waits, nothing is timed)
    st = boot(csms, station)
    _charging(csms, st)
    assert _offered(st.status()) == 32
    r = csms.call(st.identity, "SetChargingProfile", _max_profile(11, 10.0))
    assert r["status"] == "Accepted"
    s = st.wait_status(lambda s: _offered(s) == 10, 15, "offer 10 A")
    assert s["evses"][0]["relay"]
    r = csms.call(st.identity, "SetChargingProfile", _max_profile(11, 4.0))   # replaces id 11
    assert r["status"] == "Accepted"
    u = wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "SuspendedEVSE",
                   "SuspendedEVSE", 15)
    assert u["triggerReason"] == "ChargingStateChanged"
    st.wait_status(lambda s: _offered(s) == 0, 15, "no PWM")
    r = csms.call(st.identity, "ClearChargingProfile", {"chargingProfileId": 11})
    assert r["status"] == "Accepted"
    st.wait_status(lambda s: _offered(s) == 32 and s["evses"][0]["relay"], 15, "maximum again")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging"
               and e["triggerReason"] == "ChargingStateChanged", "Charging again", 15)


def test_profile_and_console_limit_the_lower_wins(csms, station):
    st = boot(csms, station)
    _charging(csms, st)
    assert csms.call(st.identity, "SetChargingProfile", _max_profile(12, 20.0))["status"] \
        == "Accepted"
    st.wait_status(lambda s: _offered(s) == 20, 5, "profile 20 A")
    st.cmd("limit 1 13")
    st.wait_status(lambda s: _offered(s) == 13, 5, "console 13 A")
    st.cmd("limit 1 off")
    st.wait_status(lambda s: _offered(s) == 20, 5, "profile 20 A again")
    csms.call(st.identity, "ClearChargingProfile", {"chargingProfileId": 12})
    st.wait_status(lambda s: _offered(s) == 32, 5, "maximum")


def _clock(csms, st, iso):
    """Set the station's clock: the CSMS answers a triggered Heartbeat with currentTime iso."""
    csms.csms.responders["Heartbeat"] = lambda cp, p: {"currentTime": iso}
    n = len(csms.csms.calls("Heartbeat", st.identity))
    assert csms.call(st.identity, "TriggerMessage", {"requestedMessage": "Heartbeat"})["status"] \
        == "Accepted"
    csms.wait_for(lambda: len(csms.csms.calls("Heartbeat", st.identity)) > n, 5, "Heartbeat")


def test_K01_offer_follows_a_daily_profile_across_period_boundaries_and_utc_midnight(csms, station):
    """The station's clock is moved by the CSMS (Heartbeat currentTime) to just before a
    boundary; the offer then changes by itself when the boundary passes in real time: at a
    period start, into a period below 6 A (suspended: SuspendedEVSE, no PWM) and at UTC
    midnight, where the daily schedule starts over. ClearChargingProfile gives the maximum."""
    st = boot(csms, station)
    _charging(csms, st)
    daily = {"evseId": 1, "chargingProfile": {
        "id": 30, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
        "chargingSchedule": [{"id": 30, "chargingRateUnit": "A",
                              "startSchedule": "2027-03-01T00:00:00Z",
                              "chargingSchedulePeriod": [
                                  {"startPeriod": 0, "limit": 16.0},
                                  {"startPeriod": 23 * 3600, "limit": 10.0},
                                  {"startPeriod": 86400 - 10, "limit": 5.0}]}]}}
    assert csms.call(st.identity, "SetChargingProfile", daily)["status"] == "Accepted"
    _clock(csms, st, "2027-03-09T12:00:00Z")
    st.wait_status(lambda s: _offered(s) == 16, 5, "16 A at noon")
    _clock(csms, st, "2027-03-09T22:59:57Z")
    st.wait_status(lambda s: _offered(s) == 10, 10, "10 A from 23:00")
    n = len(csms.csms.calls("TransactionEvent", st.identity))
    _clock(csms, st, "2027-03-09T23:59:47Z")
    st.wait_status(lambda s: _offered(s) == 0, 10, "suspended from 23:59:50 (5 A)")
    u = wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "SuspendedEVSE",
                   "SuspendedEVSE")
    assert u["triggerReason"] == "ChargingStateChanged"
    assert csms.csms.calls("TransactionEvent", st.identity)[n:], "no event for the suspension"
    st.wait_status(lambda s: _offered(s) == 16, 20, "16 A after midnight")
    st.wait_status(lambda s: s["evses"][0]["relay"] and
                   s["evses"][0]["charging_state"] == "Charging", 10, "charging again")
    assert csms.call(st.identity, "ClearChargingProfile", {"chargingProfileId": 30})["status"] \
        == "Accepted"
    st.wait_status(lambda s: _offered(s) == 32, 5, "maximum")


def test_station_max_profile_is_shared_by_the_evses_that_charge(csms, station):
    """Section 3.5: with more than one EVSE the ChargingStationMaxProfile limits all of them
    combined: two charging EVSEs get half each, the one left alone gets all of it."""
    st = boot(csms, station, evses=2)
    assert csms.call(st.identity, "SetChargingProfile", _max_profile(13, 20.0))["status"] \
        == "Accepted"
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    st.wait_status(lambda s: s["evses"][0]["offered"] == 20, 10, "EVSE 1 alone: 20 A")
    st.cmd("plug 2")
    st.cmd("tap 11223344")
    s = st.wait_status(lambda s: s["evses"][1]["offered"] == 10 and s["evses"][0]["offered"] == 10,
                       10, "10 A each")
    st.cmd("unplug 1")
    st.wait_status(lambda s: s["evses"][1]["offered"] == 20 and s["evses"][0]["transaction"] is None,
                   10, "EVSE 2 alone: 20 A")


def test_K_offline_tx_default_profile_applies_to_a_transaction_started_offline(csms, station):
    """Issue item 4: profiles keep applying while the CSMS is unreachable, and a
    TxDefaultProfile shapes a transaction that starts offline (the card is known from the
    authorization cache), period by period."""
    proxy = LinkProxy(csms.csms.port)
    try:
        st = boot(csms, station, url=proxy.url())
        cp = {"evseId": 1, "chargingProfile": {
            "id": 31, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 31, "chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 12.0}, {"startPeriod": 4, "limit": 8.0}]}]}}
        assert csms.call(st.identity, "SetChargingProfile", cp)["status"] == "Accepted"
        _charging(csms, st)          # online once: the card goes into the cache
        st.cmd("unplug 1")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is None, 10, "ended")
        go_offline(proxy, st)
        st.cmd("plug 1")
        st.cmd("tap AABBCCDD")
        st.wait_status(lambda s: s["evses"][0]["transaction"] is not None and _offered(s) == 12,
                       10, "offline transaction at 12 A")
        st.wait_status(lambda s: _offered(s) == 8, 10, "8 A from 4 s into the transaction")
        assert not st.status()["connected"]
    finally:
        proxy.stop()


def test_K01_Enabled_false_lifts_the_csms_schedules_at_once_but_keeps_the_station_maximum(
        csms, station):
    """SmartChargingCtrlr.Enabled=false: the TxDefaultProfile stops limiting at once, the
    ChargingStationMaxProfile (the installation's connection limit) stays; new profiles are
    refused (NotEnabled); true again restores the schedules."""
    st = boot(csms, station)
    _charging(csms, st)
    assert csms.call(st.identity, "SetChargingProfile", _max_profile(14, 20.0))["status"] \
        == "Accepted"
    tx_default = {"evseId": 1, "chargingProfile": {
        "id": 16, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 16, "chargingRateUnit": "A",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}]}}
    assert csms.call(st.identity, "SetChargingProfile", tx_default)["status"] == "Accepted"
    st.wait_status(lambda s: _offered(s) == 10, 5, "10 A")

    def enabled(value):
        r = csms.call(st.identity, "SetVariables", {"setVariableData": [{
            "component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "Enabled"},
            "attributeValue": value}]})
        assert r["setVariableResult"][0]["attributeStatus"] == "Accepted", r
    enabled("false")
    st.wait_status(lambda s: _offered(s) == 20, 5, "only the station maximum")
    r = csms.call(st.identity, "SetChargingProfile", _max_profile(15, 8.0))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "NotEnabled", r
    enabled("true")
    st.wait_status(lambda s: _offered(s) == 10, 5, "10 A again")

def _relative_tx_profile(pid, amps):
    return {"id": pid, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": pid, "chargingRateUnit": "A", "duration": 7200,
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}]}]}


def _remote_start(csms, st, rsid, cp):
    return csms.call(st.identity, "RequestStartTransaction", {
        "idToken": {"idToken": "AABBCCDD", "type": "ISO14443"}, "remoteStartId": rsid,
        "evseId": 1, "chargingProfile": cp})


def test_K01_a_relative_profile_keeps_limiting_when_the_csms_sets_the_clock_back(csms, station):
    """Relative schedules count from the transaction's start; the CSMS correcting a clock
    that ran 5 minutes fast must not put the whole schedule before that start."""
    st = boot(csms, station)
    st.cmd("plug 1")
    assert _remote_start(csms, st, 21, _relative_tx_profile(40, 6.0))["status"] == "Accepted"
    st.wait_status(lambda s: s["evses"][0]["transaction"] and _offered(s) == 6, 10, "6 A")
    import datetime
    back = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=300))
    csms.csms.responders["Heartbeat"] = lambda cp, p: {
        "currentTime": back.strftime("%Y-%m-%dT%H:%M:%SZ")}
    n = len(csms.csms.calls("Heartbeat", st.identity))
    csms.call(st.identity, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    csms.wait_for(lambda: len(csms.csms.calls("Heartbeat", st.identity)) > n, 5, "Heartbeat")
    # a marker round trip: the clock is adopted and the limits recomputed before it answers
    st.status()
    assert _offered(st.status()) == 6, st.status()


def test_F01_FR_10_an_unused_remote_start_profile_is_not_given_to_the_next_session(csms, station):
    """The remote start's card never comes to the charger (no cable: EVConnectionTimeOut);
    the next session, started with a card at the charger, must not inherit its TxProfile."""
    st = boot(csms, station, "TxCtrlr.EVConnectionTimeOut=1", "TxCtrlr.TxStartPoint=PowerPathClosed")
    assert _remote_start(csms, st, 22, _relative_tx_profile(41, 6.0))["status"] == "Accepted"
    st.wait_status(lambda s: s["evses"][0]["authorized"], 10, "remote start authorized")
    st.wait_status(lambda s: not s["evses"][0]["authorized"], 10, "remote start timed out")
    st.cmd("plug 1")
    st.cmd("tap 11223344")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging",
               "Charging")
    s = st.status()
    assert _offered(s) == 32, s
    r = csms.call(st.identity, "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
    assert r["status"] == "NoProfiles", r
