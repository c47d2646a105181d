"""The charging-profile computation (firmware/charging_schedule.py) on hand-made contexts that
the one-EVSE, 3-phase simulator cannot give: a 1-phase EVSE, EVSEs sharing a station maximum
before their transactions start, a clock that is not set."""
from firmware import charging_schedule as cs

LIM = {"stack": 10, "periods": 24, "units": ("A", "W"), "phases": (1,)}


def _profile(pid, purpose, limit, unit="A", evse_id=1, start="2026-01-01T00:00:00Z"):
    return cs.compile_profile(evse_id, {
        "id": pid, "stackLevel": 0, "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": pid, "chargingRateUnit": unit, "startSchedule": start,
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}]},
        dict(LIM, phases=(1, 1)))


T = 1767268800  # 2026-01-01T12:00:00Z


def test_K01_FR_45_a_watt_limit_on_a_1_phase_evse_is_taken_on_its_one_phase():
    ctx = {"v": 230.0, "evses": {1: (1, 32.0, None, None, False)}}
    p = _profile(1, "TxDefaultProfile", 7360.0, unit="W")
    assert abs(cs.limit_at([p], 1, T, ctx) - 32.0) < 0.01   # 7360 W / 230 V, not / 690
    dur, periods = cs.composite([p], 1, T, 60, True, ctx)
    assert periods == [(0, 7360.0)], periods


def test_section_3_5_station_maximum_shared_by_evses_given_energy_before_their_transactions():
    mx = _profile(2, "ChargingStationMaxProfile", 32.0, evse_id=0)
    ctx = {"v": 230.0, "evses": {1: (3, 32.0, None, None, True), 2: (3, 32.0, None, None, True)}}
    assert cs.limit_at([mx], 1, T, ctx) == 16.0 and cs.limit_at([mx], 2, T, ctx) == 16.0
    ctx["evses"][2] = (3, 32.0, None, None, False)
    assert cs.limit_at([mx], 1, T, ctx) == 32.0   # alone: all of it
    assert cs.limit_at([mx], 2, T, ctx) == 16.0   # what it would get if it started now


def test_an_unset_clock_gives_the_lowest_limit_any_profile_could_give():
    p = cs.compile_profile(1, {
        "id": 3, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
        "chargingSchedule": [{"id": 3, "chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                                         {"startPeriod": 3600, "limit": 8.0}]}]},
        dict(LIM, phases=(3,)))
    ctx = {"v": 230.0, "evses": {1: (3, 32.0, None, None, False)}}
    assert cs.limit_at([p], 1, 946684800 + 60, ctx) is None   # 2000-01-01: no period there
    assert cs.lowest([p], 1, ctx) == 8.0
