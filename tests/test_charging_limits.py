"""External charging limits (K11-K13) over a station process (CPython and micropython)
against the mobilityhouse-based CSMS, every frame schema-validated by the fixture: the
console `limit` and the simulated limit input (`extlimit`) set the offered current, below
6 A the EVSE suspends, and NotifyChargingLimit / ClearedChargingLimit are sent only while
SmartChargingCtrlr.ExternalControlSignalsEnabled is true."""
from tests.helpers import boot, get_var, set_var, tx_events, wait_event


def _charging(csms, st):
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging",
               "Charging")


def _offered(st, evse=0):
    return st.status()["evses"][evse]["offered"]


def _calls(csms, st, action):
    return csms.csms.calls(action, st.identity)


def test_K11_FR_02_console_limit_sets_offer_reports_and_suspends_below_6A(csms, station):
    st = boot(csms, station)
    assert get_var(csms, st.identity, "SmartChargingCtrlr", "ExternalControlSignalsEnabled") \
        == "true"
    _charging(csms, st)
    assert _offered(st) == 32
    r = st.cmd("limit 1 16")
    assert r == {"ok": True, "evse": 1, "limit": 16.0}
    s = st.wait_status(lambda s: s["evses"][0]["offered"] == 16, 5, "offer 16 A")
    assert s["evses"][0]["limit"] == 16 and s["evses"][0]["limits"] == {"local": 16}
    n = csms.wait_for(lambda: _calls(csms, st, "NotifyChargingLimit"), 10, "NotifyChargingLimit")
    assert n[-1] == {"chargingLimit": {"chargingLimitSource": "Other", "isGridCritical": False},
                     "evseId": 1}                         # K11.FR.05: never CSO
    wait_event(csms, st, lambda e: e["triggerReason"] == "ChargingRateChanged",
               "ChargingRateChanged")                     # K11.FR.04: 32 -> 16 A
    st.cmd("limit 1 5")
    u = wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "SuspendedEVSE",
                   "SuspendedEVSE")
    assert u["eventType"] == "Updated" and u["triggerReason"] == "ChargingStateChanged"
    s = st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open (the EV reacted)")
    assert s["evses"][0]["offered"] == 0 and s["evses"][0]["transaction"]
    st.cmd("limit 1 off")
    st.wait_status(lambda s: s["evses"][0]["offered"] == 32 and s["evses"][0]["relay"], 5,
                   "back to the maximum")
    c = csms.wait_for(lambda: _calls(csms, st, "ClearedChargingLimit"), 10, "Cleared")
    assert c[-1] == {"chargingLimitSource": "Other", "evseId": 1}   # K13.FR.02
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging"
               and e["triggerReason"] == "ChargingStateChanged", "Charging again")
    assert st.cmd("limit 3 10")["ok"] is False and st.cmd("limit 1 lots")["ok"] is False


def test_K12_FR_03_external_station_wide_limit_with_schedule_caps_every_EVSE(csms, station):
    st = boot(csms, station, "SmartChargingCtrlr.NotifyChargingLimitWithSchedules=true",
              evses=2)
    for i in (1, 2):
        st.cmd("plug %d" % i)
        st.cmd("tap AABBCC%02d" % i)
    st.wait_status(lambda s: all(e["relay"] for e in s["evses"]), 10, "both charging")
    assert st.cmd("extlimit 0 10")["ok"]
    s = st.wait_status(lambda s: [e["offered"] for e in s["evses"]] == [10, 10], 5, "10 A each")
    assert s["station_limits"] == {"external": 10}
    n = csms.wait_for(lambda: _calls(csms, st, "NotifyChargingLimit"), 10, "NotifyChargingLimit")
    assert "evseId" not in n[-1]                           # the whole station
    assert n[-1]["chargingLimit"] == {"chargingLimitSource": "EMS", "isGridCritical": False}
    sch = n[-1]["chargingSchedule"]
    assert len(sch) == 1 and sch[0]["id"] < 0 and sch[0]["chargingRateUnit"] == "A"
    assert sch[0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 10.0}]
    st.cmd("limit 2 8")                                    # the lower of the two wins
    st.wait_status(lambda s: [e["offered"] for e in s["evses"]] == [10, 8], 5, "8 A on EVSE 2")
    csms.wait_for(lambda: _calls(csms, st, "NotifyChargingLimit")[1:], 10, "EVSE 2's")
    st.cmd("extlimit 0 10.5")                              # 5 %: under LimitChangeSignificance
    st.cmd("limit 1 7")      # a marker: the sender keeps order, a report of 10.5 would precede it
    csms.wait_for(lambda: _calls(csms, st, "NotifyChargingLimit")[2:], 10, "EVSE 1's")
    assert [(n.get("evseId"), n["chargingLimit"]["chargingLimitSource"])
            for n in _calls(csms, st, "NotifyChargingLimit")] == [(None, "EMS"), (2, "Other"),
                                                                  (1, "Other")]
    st.cmd("extlimit 0 off")
    st.wait_status(lambda s: [e["offered"] for e in s["evses"]] == [7, 8], 5, "lifted")
    c = csms.wait_for(lambda: _calls(csms, st, "ClearedChargingLimit"), 10, "Cleared")
    assert c[-1] == {"chargingLimitSource": "EMS"}


def test_K12_ExternalControlSignalsEnabled_false_sends_nothing_limit_still_applies(csms, station):
    st = boot(csms, station)
    r = set_var(csms, st.identity, "SmartChargingCtrlr", "ExternalControlSignalsEnabled", "false")
    assert r["attributeStatus"] == "Accepted"
    _charging(csms, st)
    st.cmd("limit 1 12")
    st.cmd("extlimit 1 10")
    st.wait_status(lambda s: s["evses"][0]["offered"] == 10, 5, "offer 10 A")
    st.cmd("extlimit 1 off")
    st.wait_status(lambda s: s["evses"][0]["offered"] == 12, 5, "offer 12 A")
    # a marker instead of a sleep: once enabled, the next limit is reported; the sender keeps
    # its queue in order, so anything queued while disabled would have reached the CSMS first
    r = set_var(csms, st.identity, "SmartChargingCtrlr", "ExternalControlSignalsEnabled", "true")
    assert r["attributeStatus"] == "Accepted"
    st.cmd("limit 1 8")
    csms.wait_for(lambda: _calls(csms, st, "NotifyChargingLimit"), 10, "NotifyChargingLimit")
    assert _calls(csms, st, "NotifyChargingLimit") == [
        {"chargingLimit": {"chargingLimitSource": "Other", "isGridCritical": False}, "evseId": 1}]
    assert _calls(csms, st, "ClearedChargingLimit") == []
    assert any(e["triggerReason"] == "ChargingRateChanged" for e in tx_events(csms, st.identity))


def test_limit_input_reading_survives_a_station_restart_console_limit_does_not(csms, station):
    from tests.helpers import booted
    st = boot(csms, station)
    st.cmd("extlimit 1 10")
    st.cmd("limit 1 12")
    s = st.wait_status(lambda s: s["evses"][0]["limits"] == {"external": 10, "local": 12}, 5,
                       "both limits")
    assert s["evses"][0]["limit"] == 10
    assert st.cmd("reboot")["ok"]
    booted(csms, st.identity, 2)
    # the board's input still reads 10 A; a console limit is the operator's, for this run
    s = st.wait_status(lambda s: s["evses"][0].get("limits") == {"external": 10}, 10,
                       "the input's reading after the restart")
    assert s["evses"][0]["limit"] == 10
