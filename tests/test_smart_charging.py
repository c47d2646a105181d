"""Smart Charging test cases of Part 6 (TC_K_xx_CS) against the mobilityhouse-based CSMS,
station on CPython and under micropython; every frame schema-validated by the fixture.

Times: the station's clock is the CSMS's (BootNotification currentTime, same host), so the
profiles are built from the test's clock; composite schedules are read from the
scheduleStart the station reports, and "x" (part 6: the time between the SetChargingProfile
and that scheduleStart) is measured, not assumed. The station has one EVSE of 32 A on 3
phases at 230 V (the simulator's defaults) unless a test asks for more."""
import datetime
import time

from host.csms import wait_until
from tests.helpers import boot, energy_transfer

LOCAL = 32.0     # the simulator's EVSE maximum: the composite limit where no profile applies


def _iso(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix(s):
    return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def profile(pid, purpose, periods, stack=0, kind="Absolute", start=None, duration=None,
            valid_from=None, valid_to=None, unit="A", tx=None, recurrency=None, phases=None):
    """A ChargingProfile; periods: [(startPeriod, limit)]; start/valid_*: unix seconds."""
    sched = {"id": pid, "chargingRateUnit": unit,
             "chargingSchedulePeriod": [dict({"startPeriod": s, "limit": float(lim)},
                                             **({"numberPhases": phases} if phases else {}))
                                        for s, lim in periods]}
    if start is not None:
        sched["startSchedule"] = _iso(start)
    if duration is not None:
        sched["duration"] = duration
    cp = {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
          "chargingProfileKind": kind, "chargingSchedule": [sched]}
    if recurrency:
        cp["recurrencyKind"] = recurrency
    if valid_from is not None:
        cp["validFrom"] = _iso(valid_from)
    if valid_to is not None:
        cp["validTo"] = _iso(valid_to)
    if tx is not None:
        cp["transactionId"] = tx
    return cp


def set_profile(csms, st, evse_id, cp):
    return csms.call(st.identity, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": cp})


def accepted(csms, st, evse_id, cp):
    r = set_profile(csms, st, evse_id, cp)
    assert r["status"] == "Accepted", r
    return r


def composite(csms, st, evse_id, duration, unit="A"):
    r = csms.call(st.identity, "GetCompositeSchedule",
                  {"evseId": evse_id, "duration": duration, "chargingRateUnit": unit})
    assert r["status"] == "Accepted", r
    s = r["schedule"]
    assert s["evseId"] == evse_id and s["chargingRateUnit"] == unit, s
    return s, [(p["startPeriod"], p["limit"]) for p in s["chargingSchedulePeriod"]]


def near(got, want, slack=3):
    """got: [(startPeriod, limit)]; want the same with startPeriods known to within `slack`
    seconds (the part 6 "x"); limits exact to 0.1."""
    assert len(got) == len(want), (got, want)
    for (gs, gl), (ws, wl) in zip(got, want):
        assert abs(gl - wl) < 0.05 and abs(gs - ws) <= slack, (got, want)


def reports(csms, st, request_id, timeout=10):
    """The ReportChargingProfiles of one request, once the last (tbc false) has come."""
    def done():
        r = [p for p in csms.csms.calls("ReportChargingProfiles", st.identity)
             if p["requestId"] == request_id]
        return r if r and not r[-1].get("tbc") else None
    return csms.wait_for(done, timeout, "ReportChargingProfiles %d" % request_id)


_rid = [100]


def get_profiles(csms, st, evse_id=None, **crit):
    _rid[0] += 1
    p = {"requestId": _rid[0], "chargingProfile": crit}
    if evse_id is not None:
        p["evseId"] = evse_id
    r = csms.call(st.identity, "GetChargingProfiles", p)
    if r["status"] != "Accepted":
        return r["status"], []
    return "Accepted", reports(csms, st, _rid[0])


def reported(reps):
    """[(evseId, profile id)] of a set of reports."""
    return sorted((r["evseId"], cp["id"]) for r in reps for cp in r["chargingProfile"])


def same_profile(sent, got):
    """The station reports a profile as it was sent (dates may be re-formatted)."""
    def norm(cp):
        cp = dict(cp)
        for k in ("validFrom", "validTo"):
            if k in cp:
                cp[k] = _unix(cp[k])
        sc = [dict(s) for s in cp["chargingSchedule"]]
        for s in sc:
            if "startSchedule" in s:
                s["startSchedule"] = _unix(s["startSchedule"])
        cp["chargingSchedule"] = sc
        return cp
    assert norm(sent) == norm(got), (sent, got)


# ------------------------------------------------------------------ K01 SetChargingProfile
def test_TC_K_01_CS_tx_default_profile_specific_evse(csms, station):
    st = boot(csms, station)
    cp = profile(1, "TxDefaultProfile", [(0, 6)], kind="Relative", duration=3600, phases=3)
    accepted(csms, st, 1, cp)
    status, reps = get_profiles(csms, st, chargingProfileId=[1])
    assert status == "Accepted" and reported(reps) == [(1, 1)]
    same_profile(cp, reps[0]["chargingProfile"][0])
    assert reps[0]["chargingLimitSource"] == "CSO"


def test_TC_K_10_CS_tx_default_profile_all_evses(csms, station):
    st = boot(csms, station)
    cp = profile(2, "TxDefaultProfile", [(0, 6)], kind="Relative", duration=3600)
    accepted(csms, st, 0, cp)
    status, reps = get_profiles(csms, st, chargingProfileId=[2])
    assert reported(reps) == [(0, 2)] and not reps[-1].get("tbc")
    same_profile(cp, reps[0]["chargingProfile"][0])


def test_TC_K_60_CS_tx_profile_for_the_ongoing_transaction(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    cp = profile(3, "TxProfile", [(0, 6)], kind="Relative", tx=tid, phases=3)
    accepted(csms, st, 1, cp)
    status, reps = get_profiles(csms, st, chargingProfileId=[3])
    assert reported(reps) == [(1, 3)]
    same_profile(cp, reps[0]["chargingProfile"][0])
    # K01.FR.07: the limit reaches the pilot at once
    st.wait_status(lambda s: s["evses"][0]["offered"] == 6, 5, "6 A offered")


def test_TC_K_02_CS_tx_profile_without_ongoing_transaction_is_rejected(csms, station):
    """K01.FR.09: no transaction on the EVSE."""
    st = boot(csms, station)
    r = set_profile(csms, st, 1, profile(4, "TxProfile", [(0, 6)], kind="Relative",
                                         tx="UNKNOWN-TRANSACTION-ID"))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "TxNotFound", r
    assert get_profiles(csms, st)[0] == "NoProfiles"


def test_TC_K_16_CS_tx_profile_with_unknown_transaction_id_is_rejected(csms, station):
    """K01.FR.33: a transaction runs, but not this one."""
    st = boot(csms, station)
    energy_transfer(csms, st)
    r = set_profile(csms, st, 1, profile(5, "TxProfile", [(0, 6)], kind="Relative",
                                         tx="UNKNOWN-TRANSACTION-ID"))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "TxNotFound", r
    assert st.status()["evses"][0]["offered"] == LOCAL


def test_TC_K_11_CS_tx_profile_on_evse_0_is_rejected(csms, station):
    """K01.FR.16."""
    st = boot(csms, station)
    energy_transfer(csms, st)
    r = set_profile(csms, st, 0, profile(6, "TxProfile", [(0, 6)], kind="Relative"))
    assert r["status"] == "Rejected", r


def test_TC_K_03_CS_charging_station_max_profile(csms, station):
    st = boot(csms, station)
    now = time.time()
    cp = profile(7, "ChargingStationMaxProfile", [(0, 6)], start=now - 5, duration=3600, phases=3)
    accepted(csms, st, 0, cp)
    status, reps = get_profiles(csms, st, chargingProfileId=[7])
    assert reported(reps) == [(0, 7)]
    same_profile(cp, reps[0]["chargingProfile"][0])
    # K04.FR.03: only on evseId 0
    r = set_profile(csms, st, 1, profile(8, "ChargingStationMaxProfile", [(0, 6)], start=now))
    assert r["status"] == "Rejected", r


def test_TC_K_19_CS_recurring_daily_and_weekly_are_accepted_and_recur(csms, station):
    st = boot(csms, station)
    now = int(time.time())
    # daily: 10 A for the first 60 s of each day-long instance that began 2 days + 30 s ago,
    # so the instance in force began 30 s ago: 10 A now, the local limit from 30 s on
    accepted(csms, st, 1, profile(9, "TxDefaultProfile", [(0, 10), (60, 20)], stack=1,
                                  kind="Recurring", recurrency="Daily",
                                  start=now - 2 * 86400 - 30))
    accepted(csms, st, 1, profile(10, "TxDefaultProfile", [(0, 16)], stack=2,
                                  kind="Recurring", recurrency="Weekly",
                                  start=now - 7 * 86400 + 120, duration=60))
    s, got = composite(csms, st, 1, 300)
    x = _unix(s["scheduleStart"]) - now
    # the weekly one (stack 2) starts its next instance in 120 s, for 60 s
    near(got, [(0, 10), (30 - x, 20), (120 - x, 16), (180 - x, 20)])


def test_K01_FR_26_recurring_without_recurrency_kind_is_rejected(csms, station):
    st = boot(csms, station)
    r = set_profile(csms, st, 1, profile(11, "TxDefaultProfile", [(0, 10)], kind="Recurring",
                                         start=time.time()))
    assert r["status"] == "Rejected", r


def test_TC_K_13_CS_profile_persists_over_reboot(csms, station):
    st = boot(csms, station)
    cp = profile(12, "TxDefaultProfile", [(0, 6)], kind="Relative", duration=3600)
    accepted(csms, st, 1, cp)
    st.kill()   # a power cut right after the response
    st2 = station(identity=st.identity, data_dir=st.data_dir)
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", st.identity)) >= 2, 20, "reboot")
    wait_until(lambda: st2.status()["ok"], 10, "console")
    status, reps = get_profiles(csms, st2, chargingProfileId=[12])
    assert reported(reps) == [(1, 12)]
    same_profile(cp, reps[0]["chargingProfile"][0])


def test_TC_K_14_CS_unknown_evse_is_rejected(csms, station):
    st = boot(csms, station)
    r = set_profile(csms, st, 2, profile(13, "TxDefaultProfile", [(0, 6)], kind="Relative"))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "UnknownEvse", r


def test_TC_K_28_CS_tx_default_profile_during_a_transaction(csms, station):
    st = boot(csms, station)
    energy_transfer(csms, st)
    now = time.time()
    accepted(csms, st, 1, profile(14, "TxDefaultProfile", [(0, 6)], start=now - 2, duration=300,
                                  valid_from=now - 2, valid_to=now + 302, phases=3))
    s, got = composite(csms, st, 1, 300)
    assert s["duration"] == 300 and got[0] == (0, 6.0), got
    st.wait_status(lambda s: s["evses"][0]["offered"] == 6, 5, "6 A offered")


def test_TC_K_21_CS_valid_from(csms, station):
    st = boot(csms, station)
    now = time.time()
    accepted(csms, st, 1, profile(15, "TxDefaultProfile", [(0, 6)], kind="Relative",
                                  valid_from=now + 300))
    s, got = composite(csms, st, 1, 400)
    x = _unix(s["scheduleStart"]) - int(now)
    assert s["duration"] == 400
    near(got, [(0, LOCAL), (300 - x, 6)])


def test_TC_K_22_CS_valid_to_on_every_evse(csms, station):
    """EVSE 0's composite is what the station as a whole may draw: the sum over its EVSEs."""
    st = boot(csms, station, evses=2)
    now = int(time.time())
    accepted(csms, st, 0, profile(16, "TxDefaultProfile", [(0, 6)], valid_from=now - 5,
                                  valid_to=now + 300, start=now))
    for evse_id, first in ((0, 12), (1, 6), (2, 6)):
        s, got = composite(csms, st, evse_id, 400)
        x = _unix(s["scheduleStart"]) - now
        near(got, [(0, first), (300 - x, LOCAL * (2 if evse_id == 0 else 1))])


def test_TC_K_23_CS_start_schedule(csms, station):
    st = boot(csms, station)
    now = int(time.time())
    accepted(csms, st, 1, profile(17, "TxDefaultProfile", [(0, 6)], valid_from=now + 50,
                                  valid_to=now + 400, start=now + 60))
    s, got = composite(csms, st, 1, 300)
    x = _unix(s["scheduleStart"]) - now
    near(got, [(0, LOCAL), (60 - x, 6)])


def test_TC_K_04_CS_replace_by_id(csms, station):
    """K01.FR.05: the same id replaces the installed profile."""
    st = boot(csms, station)
    accepted(csms, st, 1, profile(18, "TxDefaultProfile", [(0, 6)], kind="Relative"))
    cp = profile(18, "TxDefaultProfile", [(0, 10)], kind="Relative", stack=3)
    accepted(csms, st, 1, cp)
    status, reps = get_profiles(csms, st, chargingProfileId=[18])
    assert reported(reps) == [(1, 18)]
    same_profile(cp, reps[0]["chargingProfile"][0])
    s, got = composite(csms, st, 1, 60)
    assert got == [(0, 10.0)], got


def test_K01_FR_06_same_stack_level_and_purpose_overlapping_is_rejected(csms, station):
    st = boot(csms, station)
    accepted(csms, st, 1, profile(19, "TxDefaultProfile", [(0, 6)], kind="Relative", stack=2))
    r = set_profile(csms, st, 1, profile(20, "TxDefaultProfile", [(0, 8)], kind="Relative", stack=2))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "DuplicateProfile", r


def test_K01_bad_schedules_are_rejected_with_a_reason(csms, station):
    st = boot(csms, station)
    now = time.time()
    bad = [
        profile(21, "TxDefaultProfile", [(10, 6)], kind="Relative"),          # K01.FR.31
        profile(22, "TxDefaultProfile", [(0, 6), (0, 8)], kind="Relative"),   # K01.FR.35
        profile(23, "TxDefaultProfile", [(0, 6)]),                           # K01.FR.40
        profile(24, "TxDefaultProfile", [(0, 6)], kind="Relative", start=now),  # K01.FR.41
        profile(25, "TxDefaultProfile", [(0, 6)], kind="Relative", stack=11),
        profile(26, "TxDefaultProfile", [(i * 10, 6) for i in range(25)], kind="Relative"),
        profile(27, "ChargingStationExternalConstraints", [(0, 6)], kind="Relative"),
    ]
    for cp in bad:
        r = set_profile(csms, st, 1 if cp["id"] != 27 else 0, cp)
        assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"], (cp, r)
    assert get_profiles(csms, st)[0] == "NoProfiles"


# ------------------------------------------------------------------ K05 / F01
def test_TC_K_37_CS_remote_start_with_charging_profile(csms, station):
    st = boot(csms, station)
    st.cmd("plug 1")
    cp = profile(30, "TxProfile", [(0, 6)], kind="Relative", phases=3)
    r = csms.call(st.identity, "RequestStartTransaction",
                  {"idToken": {"idToken": "AABBCCDD", "type": "ISO14443"}, "remoteStartId": 7,
                   "evseId": 1, "chargingProfile": cp})
    assert r["status"] == "Accepted", r
    st.wait_status(lambda s: s["evses"][0]["transaction"] is not None, 10, "transaction")
    tid = st.status()["evses"][0]["transaction"]
    st.wait_status(lambda s: s["evses"][0]["offered"] == 6, 10, "6 A offered")
    status, reps = get_profiles(csms, st, chargingProfileId=[30])
    got = reps[0]["chargingProfile"][0]
    assert reported(reps) == [(1, 30)] and got["transactionId"] == tid, got
    # K02.FR.05: the TxProfile ends with its transaction
    st.cmd("unplug 1")
    csms.wait_for(lambda: get_profiles(csms, st)[0] == "NoProfiles", 10, "TxProfile removed")
    assert st.status()["evses"][0]["transaction"] is None


def test_F01_FR_09_remote_start_with_a_non_tx_profile_is_rejected(csms, station):
    st = boot(csms, station)
    r = csms.call(st.identity, "RequestStartTransaction",
                  {"idToken": {"idToken": "AABBCCDD", "type": "ISO14443"}, "remoteStartId": 8,
                   "evseId": 1,
                   "chargingProfile": profile(31, "TxDefaultProfile", [(0, 6)], kind="Relative")})
    assert r["status"] == "Rejected", r
    assert st.status()["evses"][0]["transaction"] is None


# ------------------------------------------------------------------ K08 GetCompositeSchedule
def test_TC_K_39_CS_composite_without_profiles(csms, station):
    st = boot(csms, station)
    s, got = composite(csms, st, 0, 300)
    assert s["duration"] == 300 and got == [(0, LOCAL)], got
    s, got = composite(csms, st, 1, 300, unit="W")
    assert got == [(0, LOCAL * 230 * 3)], got


def test_TC_K_40_CS_stacking(csms, station):
    st = boot(csms, station)
    now = int(time.time())
    accepted(csms, st, 1, profile(40, "TxDefaultProfile", [(0, 6), (100, 8), (200, 10)],
                                  stack=0, start=now, duration=400, valid_from=now,
                                  valid_to=now + 401))
    accepted(csms, st, 1, profile(41, "TxDefaultProfile", [(0, 7), (100, 9)], stack=1,
                                  start=now, duration=150, valid_from=now, valid_to=now + 401))
    s, got = composite(csms, st, 1, 350)
    x = _unix(s["scheduleStart"]) - now
    assert s["duration"] == 350
    near(got, [(0, 7), (100 - x, 9), (150 - x, 8), (200 - x, 10)])


def test_TC_K_41_CS_combining_purposes(csms, station):
    st = boot(csms, station)
    tid = energy_transfer(csms, st)
    now = int(time.time())
    accepted(csms, st, 0, profile(42, "ChargingStationMaxProfile", [(0, 10)], start=now,
                                  duration=86400))
    accepted(csms, st, 1, profile(43, "TxDefaultProfile",
                                  list(zip((0, 60, 120, 180, 260), (6, 10, 8, 15, 8))),
                                  start=now, duration=300, valid_from=now, valid_to=now + 401))
    accepted(csms, st, 1, profile(44, "TxProfile",
                                  list(zip((0, 50, 140, 200, 240), (8, 11, 16, 6, 12))),
                                  start=now, duration=260, valid_from=now, valid_to=now + 401,
                                  tx=tid))
    s, got = composite(csms, st, 1, 400)
    x = _unix(s["scheduleStart"]) - now
    # part 6 lists the first four periods. After 260 s the TxProfile's schedule has ended:
    # K02.FR.08, the TxDefaultProfile (8 A from 260 s, until its duration ends at 300 s)
    # under the station maximum applies again
    near(got, [(0, 8), (50 - x, 10), (200 - x, 6), (240 - x, 10), (260 - x, 8), (300 - x, 10)])
    st.wait_status(lambda s: s["evses"][0]["offered"] == 8, 5, "8 A offered")


def test_K08_composite_in_watts_uses_the_phases(csms, station):
    st = boot(csms, station)
    accepted(csms, st, 1, profile(45, "TxDefaultProfile", [(0, 6900), (60, 2300)], unit="W",
                                  kind="Relative"))
    s, got = composite(csms, st, 1, 120)
    near(got, [(0, 10), (60, 3.3)], slack=0)   # 6900 W / (230 V x 3); 2300 / 690, one decimal
    s, got = composite(csms, st, 1, 120, unit="W")
    near(got, [(0, 6900), (60, 2300)], slack=0)  # back in W without rounding through A


def test_TC_K_47_CS_composite_of_unknown_evse_is_rejected(csms, station):
    st = boot(csms, station)
    r = csms.call(st.identity, "GetCompositeSchedule",
                  {"evseId": 2, "duration": 300, "chargingRateUnit": "A"})
    assert r["status"] == "Rejected" and "schedule" not in r, r


# ------------------------------------------------------------------ K09 GetChargingProfiles
def _three(csms, st, tid=None):
    """A station max (id 50, EVSE 0), a TxDefault on EVSE 1 (51, stack 2) and one on all
    EVSEs (52, stack 1)."""
    now = time.time()
    accepted(csms, st, 0, profile(50, "ChargingStationMaxProfile", [(0, 20)], start=now - 5))
    accepted(csms, st, 1, profile(51, "TxDefaultProfile", [(0, 16)], stack=2, kind="Relative"))
    accepted(csms, st, 0, profile(52, "TxDefaultProfile", [(0, 12)], stack=1, kind="Relative"))


def test_TC_K_29_CS_get_profiles_evse_0(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    status, reps = get_profiles(csms, st, evse_id=0)
    assert status == "Accepted" and reported(reps) == [(0, 50), (0, 52)]
    assert [r.get("tbc", False) for r in reps] == [True, False]


def test_TC_K_30_CS_get_profiles_evse_1(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, evse_id=1)[1]) == [(1, 51)]


def test_TC_K_31_CS_get_profiles_no_evse(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st)[1]) == [(0, 50), (0, 52), (1, 51)]


def test_TC_K_32_CS_get_profiles_by_id(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, chargingProfileId=[52, 51])[1]) == [(0, 52), (1, 51)]
    assert get_profiles(csms, st, chargingProfileId=[99])[0] == "NoProfiles"


def test_TC_K_33_CS_get_profiles_evse_and_stack_level(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, evse_id=1, stackLevel=2)[1]) == [(1, 51)]
    assert get_profiles(csms, st, evse_id=1, stackLevel=1)[0] == "NoProfiles"


def test_TC_K_34_CS_get_profiles_evse_and_limit_source(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, evse_id=1, chargingLimitSource=["CSO"])[1]) == [(1, 51)]
    assert get_profiles(csms, st, evse_id=1, chargingLimitSource=["EMS"])[0] == "NoProfiles"


def test_TC_K_35_CS_get_profiles_evse_and_purpose(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, evse_id=0, chargingProfilePurpose="TxDefaultProfile")[1]) \
        == [(0, 52)]


def test_TC_K_36_CS_get_profiles_evse_purpose_and_stack_level(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert reported(get_profiles(csms, st, evse_id=1, chargingProfilePurpose="TxDefaultProfile",
                                 stackLevel=2)[1]) == [(1, 51)]
    assert get_profiles(csms, st, evse_id=1, chargingProfilePurpose="TxDefaultProfile",
                        stackLevel=1)[0] == "NoProfiles"


# ------------------------------------------------------------------ K10 ClearChargingProfile
def test_TC_K_05_CS_clear_by_id(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert csms.call(st.identity, "ClearChargingProfile", {"chargingProfileId": 51})["status"] \
        == "Accepted"
    assert get_profiles(csms, st, chargingProfileId=[51])[0] == "NoProfiles"
    assert reported(get_profiles(csms, st)[1]) == [(0, 50), (0, 52)]


def test_TC_K_06_CS_clear_by_purpose_and_stack_level(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    crit = {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}
    assert csms.call(st.identity, "ClearChargingProfile",
                     {"chargingProfileCriteria": crit})["status"] == "Accepted"
    assert get_profiles(csms, st, **crit)[0] == "NoProfiles"
    assert reported(get_profiles(csms, st)[1]) == [(0, 50), (1, 51)]


def test_TC_K_07_CS_clear_unknown_purpose_and_stack_level(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    r = csms.call(st.identity, "ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "ChargingStationMaxProfile", "stackLevel": 1}})
    assert r["status"] == "Unknown", r
    assert len(reported(get_profiles(csms, st)[1])) == 3


def test_TC_K_08_CS_clear_without_profiles(csms, station):
    st = boot(csms, station)
    r = csms.call(st.identity, "ClearChargingProfile", {"chargingProfileId": 77})
    assert r["status"] == "Unknown", r


def test_TC_K_09_CS_clear_tx_default_during_a_transaction(csms, station):
    st = boot(csms, station)
    energy_transfer(csms, st)
    now = int(time.time())
    accepted(csms, st, 1, profile(60, "TxDefaultProfile", [(0, 6)], start=now, duration=400,
                                  valid_from=now, valid_to=now + 401))
    s, got = composite(csms, st, 1, 300)
    assert got == [(0, 6.0)], got
    st.wait_status(lambda s: s["evses"][0]["offered"] == 6, 5, "6 A offered")
    assert csms.call(st.identity, "ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxDefaultProfile"}})["status"] == "Accepted"
    s, got = composite(csms, st, 1, 300)
    assert got == [(0, LOCAL)], got
    st.wait_status(lambda s: s["evses"][0]["offered"] == LOCAL, 5, "maximum again")


def test_TC_K_24_CS_clear_purpose_and_stack_level_on_several_evses(csms, station):
    st = boot(csms, station, evses=2)
    for pid, evse_id in ((70, 1), (71, 2)):
        accepted(csms, st, evse_id, profile(pid, "TxDefaultProfile", [(0, 6)], stack=4,
                                            kind="Relative"))
    assert csms.call(st.identity, "ClearChargingProfile", {"chargingProfileCriteria": {
        "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 4}})["status"] == "Accepted"
    assert get_profiles(csms, st)[0] == "NoProfiles"


def test_K10_clear_by_evse_leaves_the_others(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    assert csms.call(st.identity, "ClearChargingProfile",
                     {"chargingProfileCriteria": {"evseId": 0}})["status"] == "Accepted"
    assert reported(get_profiles(csms, st)[1]) == [(1, 51)]


def test_K01_Entries_counts_the_installed_profiles(csms, station):
    st = boot(csms, station)
    _three(csms, st)
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [{
        "component": {"name": "SmartChargingCtrlr"},
        "variable": {"name": "Entries", "instance": "ChargingProfiles"}}]})
    assert r["getVariableResult"][0]["attributeValue"] == "3", r
