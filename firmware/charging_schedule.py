# Charging-profile computation (OCPP 2.0.1 part 2 K01, K08, section 3 "Charging profiles"):
# checks a ChargingProfile and packs it, then answers "what limit applies at time t and when
# does it change next" and builds the composite schedule; announce() hands the limits to the
# station. Functions on plain data, no I/O: the smart_charging block imports this module
# only while profiles are installed or a composite schedule is asked for, so none of this
# takes heap on a station without profiles.
#
# A profile is kept as a tuple (indexes below) with its periods packed in one int array
# (startPeriod, limit in tenths, numberPhases: 12 bytes a period), so 10 profiles of 24
# periods take a few KB of heap instead of hundreds of dicts, and reading a period
# allocates nothing (a GetCompositeSchedule reads thousands). Times are whole unix seconds.
#
# The context of a computation, `ctx`: {"v": nominal volts per phase,
#   "evses": {evse_id: (phases, local limit in A, active transactionId or None,
#                       start of that transaction (unix s) or None,
#                       True while it has a transaction or is given energy)}}
from array import array

from firmware.compat import parse_iso8601

ID = 0
STACK = 1
PURPOSE = 2
KIND = 3
RECUR = 4     # recurrence length in seconds, 0 when not Recurring
FROM = 5
TO = 6
START = 7     # startSchedule, None for Relative
DUR = 8
UNIT_W = 9    # True for W, False for A
PERIODS = 10
EVSE = 11
TX = 12
MINRATE = 13

MAX, TXDEF, TXP, EXT = 0, 1, 2, 3
PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile",
            "ChargingStationExternalConstraints")
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCE = {"Daily": 86400, "Weekly": 604800}

# A composite schedule longer than this many periods is cut (its duration says where).
MAX_COMPOSITE_PERIODS = 128
MAX_COMPOSITE_STEPS = 1000   # boundaries looked at per composite schedule (then cut)
# Before this (2020-01-01) the clock is not set (an ESP32 without its time from the CSMS
# reads 2000): no schedule can be placed, so the lowest limit any profile could give holds.
CLOCK_VALID = 1577836800


class Invalid(ValueError):
    """A profile the station refuses: args are (reasonCode, additionalInfo)."""


def _time(s, what):
    try:
        return int(parse_iso8601(s))
    except (ValueError, TypeError):
        raise Invalid("InvalidSchedule", "%s is not a date-time" % what)


def compile_profile(evse_id, cp, limits):
    """The packed tuple of a ChargingProfile sent for `evse_id`, or Invalid. `limits`:
    {"stack": ProfileStackLevel, "periods": PeriodsPerSchedule, "units": ("A", "W"),
     "phases": (phases of every EVSE the profile applies to)}. Transaction checks are the
    block's (they need the transactions)."""
    try:
        purpose = PURPOSES.index(cp["chargingProfilePurpose"])
        kind = KINDS.index(cp["chargingProfileKind"])
    except (KeyError, ValueError):
        raise Invalid("InvalidProfile", "purpose or kind")
    if purpose == EXT:
        raise Invalid("InvalidProfile", "ChargingStationExternalConstraints is set locally")  # K01.FR.22
    if purpose == MAX and evse_id != 0:
        raise Invalid("InvalidProfile", "ChargingStationMaxProfile only on evseId 0")  # K04.FR.03
    if purpose == MAX and kind == 2:
        raise Invalid("InvalidProfile", "ChargingStationMaxProfile cannot be Relative")  # K01.FR.38
    if purpose == TXP and evse_id == 0:
        raise Invalid("InvalidProfile", "TxProfile needs an EVSE")  # K01.FR.16
    stack = cp.get("stackLevel", 0)
    if not isinstance(stack, int) or stack < 0 or stack > limits["stack"]:
        raise Invalid("InvalidStackLevel", "stackLevel 0..%d" % limits["stack"])
    recur = 0
    if kind == 1:
        recur = RECURRENCE.get(cp.get("recurrencyKind"))
        if recur is None:
            raise Invalid("InvalidProfile", "Recurring needs recurrencyKind")
    vf = cp.get("validFrom")
    vt = cp.get("validTo")
    vf = None if vf is None else _time(vf, "validFrom")
    vt = None if vt is None else _time(vt, "validTo")
    if vf is not None and vt is not None and vt <= vf:
        raise Invalid("InvalidProfile", "validTo before validFrom")
    scheds = cp.get("chargingSchedule") or ()
    if len(scheds) != 1:
        raise Invalid("InvalidSchedule", "one chargingSchedule without ISO 15118")  # K01.FR.34
    sc = scheds[0]
    unit = sc.get("chargingRateUnit")
    if unit not in limits["units"]:
        raise Invalid("UnsupportedRateUnit", str(unit))  # K01.FR.26
    ss = sc.get("startSchedule")
    if kind == 2:
        if ss is not None:
            raise Invalid("InvalidSchedule", "Relative has no startSchedule")  # K01.FR.41
        start = None
    else:
        if ss is None:
            raise Invalid("InvalidSchedule", "startSchedule missing")  # K01.FR.40
        start = _time(ss, "startSchedule")
    dur = sc.get("duration")
    if dur is not None and (not isinstance(dur, int) or dur <= 0):
        raise Invalid("InvalidSchedule", "duration")
    periods = sc.get("chargingSchedulePeriod") or ()
    if not periods:
        raise Invalid("InvalidSchedule", "no period")
    if len(periods) > limits["periods"]:
        raise Invalid("TooManyElements", "at most %d periods" % limits["periods"])
    buf = array("i", bytes(12 * len(periods)))
    last = -1
    phases = limits["phases"]
    for i in range(len(periods)):
        p = periods[i]
        sp = p.get("startPeriod")
        if not isinstance(sp, int) or sp <= last or (i == 0 and sp != 0):
            raise Invalid("InvalidSchedule", "startPeriod 0 first, then increasing")  # K01.FR.31/35
        last = sp
        lim = p.get("limit")
        if not isinstance(lim, (int, float)) or lim < 0 or lim > 1e8:
            raise Invalid("InvalidSchedule", "limit")
        n = p.get("numberPhases")
        if n is not None:
            if n not in (1, 2, 3):
                raise Invalid("InvalidSchedule", "numberPhases")
            for ph in phases:
                if n < ph:  # K01.FR.43: nothing here can switch phases off
                    raise Invalid("InvalidSchedule", "the EVSE charges on %d phases" % ph)
        use = p.get("phaseToUse")
        # K01.FR.19/48: no phase switching (ACPhaseSwitchingSupported false); a 1-phase EVSE
        # is on L1 anyway
        if use is not None and not (n == 1 and use == 1 and max(phases or (3,)) == 1):
            raise Invalid("UnsupportedParam", "phaseToUse")
        buf[3 * i] = sp
        buf[3 * i + 1] = int(round(lim * 10))
        buf[3 * i + 2] = n or 0
    mr = sc.get("minChargingRate")
    return (cp["id"], stack, purpose, kind, recur, vf, vt, start, dur, unit == "W",
            buf, evse_id, cp.get("transactionId"), mr)


def period_count(p):
    return len(p[PERIODS]) // 3


# ---------------------------------------------------------------- one profile
def _start(p, t, rel):
    """Start of the schedule instance in force at t (None before the first one)."""
    k = p[KIND]
    if k == 2:
        return rel
    s = p[START]
    if k == 1 and t >= s:
        return s + (t - s) // p[RECUR] * p[RECUR]
    return s


def value(p, t, rel):
    """(limit in tenths, numberPhases or 0) of profile p at t, or None when it has no period
    in force then (not valid, not started, past its duration). rel: start of a Relative one."""
    if (p[FROM] is not None and t < p[FROM]) or (p[TO] is not None and t >= p[TO]):
        return None  # K01.FR.36/37
    s = _start(p, t, rel)
    if s is None or t < s:
        return None  # K01.FR.30
    off = t - s
    if p[DUR] is not None and off >= p[DUR]:
        return None  # K01.FR.11/13
    b = p[PERIODS]
    i = len(b) - 3
    while i > 0 and b[i] > off:
        i -= 3
    return b[i + 1], b[i + 2]


def next_change(p, t, rel):
    """The first time after t at which value(p, ., rel) may change, or None."""
    best = None
    for c in (p[FROM], p[TO]):
        if c is not None and c > t and (best is None or c < best):
            best = c
    s = _start(p, t, rel)
    if s is None:
        return best
    if t < s:
        return s if best is None or s < best else best
    # this instance ends at its duration or when the next recurrence starts (K01.FR.13)
    end = None if p[DUR] is None else s + p[DUR]
    if p[RECUR]:
        nxt = s + p[RECUR]
        if best is None or nxt < best:
            best = nxt
        if end is not None and end > nxt:
            end = nxt
    if end is not None and end > t and (best is None or end < best):
        best = end
    b = p[PERIODS]
    for i in range(3, len(b), 3):
        c = s + b[i]
        if (end is not None and c >= end) or (best is not None and c >= best):
            break
        if c > t:
            best = c
            break
    return best


# ---------------------------------------------------------------- composite per EVSE
def amps(v, p, volts, phases=3):
    """A period value in A per phase (K01.FR.50/51; numberPhases 3 when absent, K01.FR.49,
    but never more phases than the EVSE has: a 1-phase EVSE takes a W limit on its one
    phase, K01.FR.45)."""
    lim = v[0] / 10
    if p[UNIT_W]:
        n = v[1] or 3
        return lim / (volts * (phases if phases < n else n))
    return lim


def _phases(ctx, evse_id):
    evses = ctx["evses"]
    if evse_id:
        return evses[evse_id][0]
    return max([evses[e][0] for e in evses] or [3])


def _relevant(p, evse_id, tx):
    """Does profile p apply to EVSE evse_id (0: the station-wide limit) with transaction tx?"""
    e = p[EVSE]
    if evse_id == 0:
        return e == 0 and (p[PURPOSE] == MAX or p[PURPOSE] == EXT)
    if p[PURPOSE] == MAX:
        return True
    if p[PURPOSE] == TXP:
        return e == evse_id and tx is not None and p[TX] == tx
    return e == 0 or e == evse_id  # K01.FR.14/15: a TxDefaultProfile on 0 applies to all


def _leading(profiles, t, purpose, evse_id, tx, rel, volts, phases=3):
    """K01.FR.17: of the profiles of one purpose for this EVSE, the one with the highest
    stackLevel that has a period in force at t; its limit in A, or None."""
    best = None
    best_v = None
    for p in profiles:
        if p[PURPOSE] != purpose or (best is not None and p[STACK] <= best[STACK]) \
                or not _relevant(p, evse_id, tx):
            continue
        v = value(p, t, rel)
        if v is not None:
            best, best_v = p, v
    return None if best is None else amps(best_v, best, volts, phases)


def _context(ctx, evse_id, t, t0):
    """(transactionId, start of Relative schedules) of an EVSE at t."""
    if evse_id == 0:
        return None, t if t0 is None else t0
    e = ctx["evses"][evse_id]
    tx, tx_start = e[2], e[3]
    if tx is not None and tx_start is not None:
        return tx, tx_start
    return tx, t if t0 is None else t0


def limit_at(profiles, evse_id, t, ctx, t0=None):
    """The profile limit in A per phase of one EVSE (evse_id 0: the station-wide
    ChargingStationMaxProfile / external limit) at t, or None when no profile limits it.
    t0: start of a Relative schedule when the EVSE has no transaction (the request time)."""
    volts = ctx["v"]
    tx, rel = _context(ctx, evse_id, t, t0)
    lo = None
    for purpose in (MAX, EXT, TXP, TXDEF):
        if purpose == TXDEF and evse_id == 0:
            break
        a = _leading(profiles, t, purpose, evse_id, tx, rel, volts, _phases(ctx, evse_id))
        if a is None:
            continue
        if evse_id and purpose == MAX:
            a = a / _sharers(ctx, evse_id)
        if lo is None or a < lo:
            lo = a
        if purpose == TXP:
            # K02.FR.04: a TxProfile in force overrules the TxDefaultProfiles; once its
            # schedule has ended (duration, validTo) they apply again (K02.FR.08)
            break
    return lo


def _sharers(ctx, evse_id):
    """Section 3.5: a ChargingStationMaxProfile limits all EVSEs combined. It is shared
    equally among the EVSEs with a transaction or given energy (authorized before the
    transaction starts, as with TxStartPoint EnergyTransfer); an EVSE with neither is shown
    (composite) and offered the share it would have if it started now."""
    evses = ctx["evses"]
    n = 0
    for e in evses.values():
        if e[4]:
            n += 1
    return n if evses[evse_id][4] and n else n + 1


def next_boundary(profiles, evse_id, t, ctx, t0=None):
    """The first time after t at which limit_at may change, or None."""
    tx, rel = _context(ctx, evse_id, t, t0)
    best = None
    for p in profiles:
        if not _relevant(p, evse_id, tx):
            continue
        c = next_change(p, t, rel)
        if c is not None and (best is None or c < best):
            best = c
    return best


# ---------------------------------------------------------------- K08 composite schedule
def _evse_amps(profiles, evse_id, t, ctx, t0):
    """What one EVSE may draw at t: its profile limit capped by its local limit (A)."""
    local = ctx["evses"][evse_id][1]
    lim = limit_at(profiles, evse_id, t, ctx, t0)
    return local if lim is None or lim > local else lim


def _station_amps(profiles, t, ctx, t0):
    """K08.FR.03: what the whole station expects to draw at t (the sum over its EVSEs,
    capped by the station-wide limit)."""
    total = 0.0
    for e in ctx["evses"]:
        total += _evse_amps(profiles, e, t, ctx, t0)
    cap = limit_at(profiles, 0, t, ctx, t0)
    return total if cap is None or cap > total else cap


def composite(profiles, evse_id, t0, duration, unit_w, ctx):
    """The composite schedule of an EVSE (0: the station) from t0 for `duration` seconds:
    (duration covered, [(startPeriod, limit), ...]) with limits in A per phase, or in W
    (A x volts x phases) when unit_w. Neighbours with the same limit are merged; at most
    MAX_COMPOSITE_PERIODS periods (the duration is then cut where the last one ends)."""
    evses = ctx["evses"]
    phases = _phases(ctx, evse_id)
    # allocated whole before the computation's garbage fragments the heap: grown by
    # appends, the list needed a 1 KB block at the end that a 100 KB heap no longer had
    out = [None] * MAX_COMPOSITE_PERIODS
    n = 0
    t = t0
    end = t0 + duration
    steps = 0
    while t < end:
        steps += 1
        if steps > MAX_COMPOSITE_STEPS:
            # boundaries that change nothing do not fill the period list: a long duration
            # over fine schedules must not hold the event loop for seconds on an ESP32
            del out[n:]
            return t - t0, out
        if evse_id:
            a = _evse_amps(profiles, evse_id, t, ctx, t0)
        else:
            a = _station_amps(profiles, t, ctx, t0)
        lim = round(a * ctx["v"] * phases, 1) if unit_w else round(a, 1)
        if not n or out[n - 1][1] != lim:
            if n >= MAX_COMPOSITE_PERIODS:
                return t - t0, out
            out[n] = (t - t0, lim)
            n += 1
        nt = None
        for e in (evses if evse_id == 0 else ()):
            c = next_boundary(profiles, e, t, ctx, t0)
            if c is not None and (nt is None or c < nt):
                nt = c
        c = next_boundary(profiles, evse_id, t, ctx, t0)
        if c is not None and (nt is None or c < nt):
            nt = c
        if nt is None:
            break
        t = nt
    del out[n:]
    return duration, out


# ---------------------------------------------------------------- the station's side


def context(block):
    """The ctx of the smart_charging block's station (see the top of this module)."""
    from firmware.device_model import NOMINAL_VOLTAGE
    evses = {}
    volts = None
    ev = block.st.blocks.get("evse")
    for e in block.st.board.evses:
        tx = block._tx.get(e.id)
        local = getattr(e, "rated_current", None) or e.max_current
        given = tx is not None or (ev is not None and ev.get(e.id).authorized)
        evses[e.id] = (e.phases, float(local), tx[0] if tx else None, tx[1] if tx else None,
                       given)
        # no device-model variable holds the supply's nominal voltage; a board may say it
        volts = volts or getattr(e, "nominal_voltage", None)
    return {"v": float(volts or NOMINAL_VOLTAGE), "evses": evses}


def bounds(block, evse_id):
    """compile_profile's limits for a profile sent for evse_id, from the device model."""
    from firmware.smart_charging import SC  # resident already
    dm = block.dm
    phases = [e.phases for e in block.st.board.evses if evse_id == 0 or e.id == evse_id]
    return {"stack": dm.get(SC, "ProfileStackLevel"), "periods": dm.get(SC, "PeriodsPerSchedule"),
            "units": dm.get_list(SC, "RateUnit"), "phases": phases}


def lowest(profiles, evse_id, ctx):
    """The lowest limit (A) any profile for this EVSE could give at some time, or None."""
    lo = None
    tx = ctx["evses"][evse_id][2] if evse_id else None
    phases = _phases(ctx, evse_id)
    share = _sharers(ctx, evse_id) if evse_id else 1
    for p in profiles:
        if not _relevant(p, evse_id, tx):
            continue
        b = p[PERIODS]
        for i in range(1, len(b), 3):
            a = amps((b[i], b[i + 1]), p, ctx["v"], phases)
            if evse_id and p[PURPOSE] == MAX:
                a = a / share
            if lo is None or a < lo:
                lo = a
    return lo


def announce(block, now=None, max_sleep_ms=300000, profiles=None):
    """Emit the profile limit of the station and of every EVSE ("charging_limit" events,
    only where it is set or was set before) from `profiles` (default: all installed); the
    ms until the next boundary, at most max_sleep_ms."""
    if now is None:
        from firmware import compat
        now = compat.now()
    t = int(now)
    profiles = block.profiles if profiles is None else profiles
    ctx = context(block)
    sent = block._sent
    nxt = None
    for e in (0,) + tuple(block.st.board.ids):
        if t < CLOCK_VALID:
            lim, c = lowest(profiles, e, ctx), None
        else:
            lim = limit_at(profiles, e, t, ctx)
            c = next_boundary(profiles, e, t, ctx)
        if c is not None and (nxt is None or c < nxt):
            nxt = c
        if lim is not None:
            lim = round(lim, 1)
        if lim is not None or sent.get(e) is not None:
            sent[e] = lim
            block.st.emit("charging_limit", e, "profile", lim)
    if nxt is None:
        return max_sleep_ms
    return max(0, min(max_sleep_ms, int((nxt - now) * 1000)))
