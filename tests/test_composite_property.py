"""Property-based test of GetCompositeSchedule (K08): for randomized stacks of charging profiles
installed over OCPP, the composite schedule the station reports equals an independent reference
computed in the test from the specification text (tests/composite_reference.py), on CPython
and under micropython. The station is a black box here: it is only talked to over OCPP.

Two phases per target, each stack generated from random.Random(seed) with a fixed seed:
- no transaction: ChargingStationMaxProfile and TxDefaultProfile (on EVSE #0 or #1) stacks;
  K08.FR.06: the composite is calculated as if a transaction were ongoing;
- a running transaction: TxProfiles for it join the stacks.
Every stack: ClearChargingProfile (all), SetChargingProfile each profile, GetCompositeSchedule
in A for EVSE 1; a stack the station rejects (a legitimate outcome) is skipped and not counted.
The reference is computed from the returned scheduleStart (the station's clock). A stack is
a function of its seed and of the minute the test generates it in (times are offsets from it);
a mismatch prints the seed, the stack as sent, the station's answer and the reference's.
"""
import json
import random
import time

from tests import composite_reference as ref
from tests.helpers import boot, tx_events

LOCAL_LIMIT = 32.0      # the EVSE's maximum current, per phase
VOLTAGE = 230.0         # nominal voltage per phase
STACKS_PER_PHASE = 150  # accepted stacks per phase; two phases per target
MAX_LEVEL = 9           # SmartChargingCtrlr.ProfileStackLevel is 10
MINUTE = 60
HOUR = 3600
DAY_HALF = 12 * HOUR

PURPOSES_IDLE = ("ChargingStationMaxProfile", "TxDefaultProfile")
PURPOSES_TX = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile", "TxProfile")


# ------------------------------------------------------------------ generator
def _limit(rng, unit):
    if unit == "A":
        return rng.randint(0, 400) / 10.0          # 0 .. 40 A: also above the local limit
    if rng.random() < 0.6:
        return float(69 * rng.randint(0, 400))      # exactly k/10 A on 3 phases
    while True:
        # any one-decimal power whose current is not on a rounding edge (x.x5 A)
        w = rng.randint(0, 300000) / 10.0
        tenths = w / (VOLTAGE * 3) * 10
        if abs(tenths - int(tenths) - 0.5) > 0.05:
            return w


def _schedule(rng, sid, kind, recurrence, base):
    unit = rng.choice("AW")
    span = ref.RECURRENCE.get(recurrence) if kind == "Recurring" else None
    steps = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR)
    if recurrence == "Weekly":
        steps += (DAY_HALF, ref.DAY, 2 * ref.DAY)
    periods = []
    sp = 0
    for _ in range(rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6))):
        if span is not None and sp >= span:
            break
        p = {"startPeriod": sp, "limit": _limit(rng, unit)}
        if rng.random() < 0.3:
            p["numberPhases"] = 3
        periods.append(p)
        sp += rng.choice(steps)
    s = {"id": sid, "chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    if rng.random() < 0.6:
        last = periods[-1]["startPeriod"]
        if rng.random() < 0.2 and last > 0:
            # some periods never execute (K01.FR.11)
            d = rng.randint(1, last // MINUTE) * MINUTE
        else:
            d = last + rng.choice(steps)
        if span is not None:
            d = min(d, span)
        s["duration"] = d
    if kind == "Absolute":
        s["startSchedule"] = ref.format_time(base + rng.randint(-8 * 60, 16 * 60) * MINUTE)
    elif kind == "Recurring":
        back = 3 * ref.DAY if recurrence == "Daily" else 10 * ref.DAY
        s["startSchedule"] = ref.format_time(base + rng.randint(-back // MINUTE, 12 * 60) * MINUTE)
    return s


def gen_stack(rng, now, transaction_id):
    """[(evseId, chargingProfile)] of 1..5 profiles: distinct ids, distinct stack levels per
    purpose (so no DuplicateProfile), and the GetCompositeSchedule duration."""
    base = int(now // MINUTE) * MINUTE
    purposes = PURPOSES_TX if transaction_id else PURPOSES_IDLE
    used = {}
    out = []
    for i in range(rng.randint(1, 5)):
        purpose = rng.choice(purposes)
        free = [lv for lv in range(MAX_LEVEL + 1) if lv not in used.setdefault(purpose, set())]
        level = rng.choice(free)
        used[purpose].add(level)
        if purpose == "ChargingStationMaxProfile":
            evse = 0
            kind = rng.choice(("Absolute", "Recurring"))
        else:
            evse = 1 if purpose == "TxProfile" else rng.choice((0, 1))
            kind = rng.choice(("Absolute", "Recurring", "Relative"))
        recurrence = rng.choice(("Daily", "Weekly")) if kind == "Recurring" else None
        cp = {"id": i + 1, "stackLevel": level, "chargingProfilePurpose": purpose,
              "chargingProfileKind": kind}
        if recurrence:
            cp["recurrencyKind"] = recurrence
        if purpose == "TxProfile":
            cp["transactionId"] = transaction_id
        if rng.random() < 0.25:
            cp["validFrom"] = ref.format_time(base + rng.randint(-10 * 60, 12 * 60) * MINUTE)
        if rng.random() < 0.25:
            lo = max(base, ref.parse_time(cp["validFrom"])) if "validFrom" in cp else base
            cp["validTo"] = ref.format_time(lo + rng.randint(2, 24 * 60) * MINUTE)
        cp["chargingSchedule"] = [_schedule(rng, i + 1, kind, recurrence, base)]
        out.append((evse, cp))
    duration = rng.choice((15 * MINUTE, HOUR, 4 * HOUR, ref.DAY, 2 * ref.DAY))
    return out, duration


# ------------------------------------------------------------------ comparison
def _normalize(periods, min_len):
    """Drop periods shorter than min_len (they are at the edge of an uncertain instant) and
    merge equal neighbours again; the first period starts at 0."""
    out = []
    for i, (s, lim) in enumerate(periods):
        nxt = periods[i + 1][0] if i + 1 < len(periods) else None
        if min_len and nxt is not None and nxt - s < min_len:
            continue
        if out and abs(out[-1][1] - lim) < 1e-9:
            continue
        out.append((s, lim))
    if out:
        out[0] = (0, out[0][1])
    return out


def same(station, reference, fuzzy):
    """Lists of (startPeriod, limit) agree: limits within 0.1; startPeriods exactly, or within
    1.5 s when a Relative schedule is anchored at the transaction start (a sub-second instant
    the station reports in whole seconds)."""
    tol = 1.5 if fuzzy else 1e-6
    a = _normalize(station, tol if fuzzy else 0)
    b = _normalize(reference, tol if fuzzy else 0)
    if len(a) != len(b):
        return False
    return all(abs(x[0] - y[0]) <= tol and abs(x[1] - y[1]) <= 0.1 + 1e-9 for x, y in zip(a, b))


# ------------------------------------------------------------------ station side
def _clear(csms, st):
    r = csms.call(st.identity, "ClearChargingProfile", {})
    assert r["status"] in ("Accepted", "Unknown"), r


def _composite(csms, st, duration):
    r = csms.call(st.identity, "GetCompositeSchedule",
                  {"evseId": 1, "duration": duration, "chargingRateUnit": "A"})
    assert r["status"] == "Accepted", r
    s = r["schedule"]
    assert s["evseId"] == 1 and s["chargingRateUnit"] == "A" and s["duration"] == duration, s
    return ref.parse_time(s["scheduleStart"]), [(p["startPeriod"], p["limit"])
                                                for p in s["chargingSchedulePeriod"]]


def _run_phase(csms, st, seeds, transaction_id, tx_start, mismatches):
    accepted = rejected = 0
    for seed in seeds:
        if accepted >= STACKS_PER_PHASE:
            break
        rng = random.Random(seed)
        stack, duration = gen_stack(rng, time.time(), transaction_id)
        _clear(csms, st)
        ok = True
        for evse, cp in stack:
            r = csms.call(st.identity, "SetChargingProfile",
                          {"evseId": evse, "chargingProfile": cp})
            if r["status"] != "Accepted":
                ok = False
                rejected += 1
                print("seed %d: profile %d rejected (%s), stack skipped" % (seed, cp["id"], r))
                break
        if not ok:
            continue
        accepted += 1
        t0, got = _composite(csms, st, duration)
        # Relative schedules start with the transaction, else (K08.FR.06) at the request
        anchor = tx_start if transaction_id else t0
        profiles = [ref.Profile(evse, cp, anchor) for evse, cp in stack]
        want = ref.composite(profiles, t0, duration, 1, transaction_id, LOCAL_LIMIT, VOLTAGE)
        fuzzy = transaction_id is not None and any(
            cp["chargingProfileKind"] == "Relative" for _, cp in stack)
        if not same(got, want, fuzzy):
            mismatches.append({"seed": seed, "transaction": transaction_id is not None,
                               "scheduleStart": ref.format_time(t0), "duration": duration,
                               "stack": [{"evseId": e, "chargingProfile": cp} for e, cp in stack],
                               "station": got, "reference": want})
    return accepted, rejected


def test_K08_composite_schedule_matches_the_reference_for_random_stacks(csms, station):
    t_begin = time.monotonic()
    st = boot(csms, station)
    # the local limit alone: no profile installed
    _clear(csms, st)
    _, empty = _composite(csms, st, ref.DAY)
    assert empty == [(0, LOCAL_LIMIT)], empty

    mismatches = []
    n_idle, rej_idle = _run_phase(csms, st, range(1000, 1400), None, None, mismatches)

    _clear(csms, st)
    st.cmd("plug 1")
    st.cmd("tap AABBCCDD")
    first = csms.wait_for(lambda: [e for e in tx_events(csms, st.identity)
                                   if e["eventType"] == "Started"], 10, "transaction Started")[0]
    s = st.wait_status(lambda s: s["evses"][0]["transaction"], 10, "transaction")
    tid = s["evses"][0]["transaction"]
    assert tid == first["transactionInfo"]["transactionId"]
    tx_start = ref.parse_time(first["timestamp"])
    # nothing installed: the EVSE offers its maximum, the local limit the composite caps at
    st.wait_status(lambda s: s["evses"][0]["offered"] == LOCAL_LIMIT, 5, "offer 32 A")
    n_tx, rej_tx = _run_phase(csms, st, range(2000, 2400), tid, tx_start, mismatches)
    _clear(csms, st)

    print("accepted stacks: %d without, %d with a transaction; rejected %d + %d; %.1f s" % (
        n_idle, n_tx, rej_idle, rej_tx, time.monotonic() - t_begin))
    for m in mismatches[:5]:
        print("MISMATCH seed %d (transaction %s) scheduleStart %s duration %d\n stack %s\n"
              " station   %s\n reference %s" % (m["seed"], m["transaction"], m["scheduleStart"],
                                                m["duration"], json.dumps(m["stack"]),
                                                m["station"], m["reference"]))
    assert n_idle + n_tx >= 200, (n_idle, n_tx)
    assert not mismatches, "%d of %d stacks differ from the reference, seeds %s" % (
        len(mismatches), n_idle + n_tx, [m["seed"] for m in mismatches])
