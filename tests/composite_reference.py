"""An independent reference for the composite schedule (OCPP 2.0.1 part 2, section 3 "Charging
profiles" and use cases K01 / K08), written from the specification text only. The test in
tests/test_composite_property.py compares the station's GetCompositeSchedule answer with it.

The rules it implements, with the sentences they come from:

- Validity: a profile is valid at t when t >= validFrom (K01.FR.36) and t < validTo
  (K01.FR.37); without them it is valid indefinitely (K01.FR.10).
- Schedule start: Absolute and Recurring schedules start at startSchedule (K01.FR.40), and
  nothing is imposed before it (K01.FR.30). A Recurring schedule "restarts periodically at the
  first schedule period" (3.3), every 24 hours (Daily) or every 7 days (Weekly) "at the same
  time as in the startSchedule" (RecurrencyKindEnumType). A Relative schedule starts when the
  EVSE is ready to deliver energy (3.3, K01.FR.42), i.e. at the transaction's start; without a
  transaction the composite is calculated "as if there is a transaction ongoing" (K08.FR.06),
  taken here as one starting at the moment of the request (scheduleStart).
- Periods: a period "remains active until the next ChargingSchedulePeriod in the list starts or
  until ChargingSchedule.duration has elapsed" (K01.FR.12); periods with startPeriod >=
  duration are not executed (K01.FR.11); without a duration "the last period will continue
  indefinitely" (ChargingScheduleType.duration); after the duration of a recurring schedule
  the station falls back to default behaviour (K01.FR.13), i.e. the profile defines nothing.
- Per purpose, the leading schedule at t is "the charging schedule that has a schedule period
  defined for that time and that belongs to a charging profile with the highest stack level
  that is valid at that time" (3.5): a profile without a period at t is passed over and the next
  lower stack level leads.
- TxProfile overrules TxDefaultProfile (3.5, "the only exception"); "If the TxProfile expires
  before the transaction ends, it falls back to the lowest limit of the active TxDefaultProfile
  and ChargingStationMaxProfile. If there are no other active profiles, it falls back to the
  local limit" (K02 remarks). A TxDefaultProfile on EVSE #0 is active on all EVSEs (3.4).
- The composite is the lowest limit among the leading schedules of the purposes (3.5, K08.FR.04)
  and the local limits (K08 remarks: "all active schedules and possible local limits").
- Units: W to A per phase "Current per phase = Power / (Line Voltage * Number of Phases)"
  (K01.FR.50), numberPhases 3 when absent (K01.FR.49, ChargingSchedulePeriodType).
"""
import calendar
import time

DAY = 86400
WEEK = 7 * DAY
RECURRENCE = {"Daily": DAY, "Weekly": WEEK}


def parse_time(s):
    """RFC 3339 UTC ("...Z", optional fraction) to epoch seconds (float)."""
    s = s.rstrip("Z")
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + f)
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) + frac


def format_time(t):
    """Epoch seconds (whole) to the "YYYY-MM-DDTHH:MM:SSZ" form sent in profiles."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


class Profile:
    """One installed charging profile as the reference sees it (built from the very payload
    the test sent in SetChargingProfile)."""

    def __init__(self, evse_id, cp, anchor=None):
        self.evse_id = evse_id
        self.purpose = cp["chargingProfilePurpose"]
        self.level = cp["stackLevel"]
        self.kind = cp["chargingProfileKind"]
        self.period_len = None
        if self.kind == "Recurring":
            self.period_len = RECURRENCE[cp["recurrencyKind"]]
        self.valid_from = parse_time(cp["validFrom"]) if cp.get("validFrom") else None
        self.valid_to = parse_time(cp["validTo"]) if cp.get("validTo") else None
        self.transaction_id = cp.get("transactionId")
        sch = cp["chargingSchedule"][0]
        self.duration = sch.get("duration")
        self.unit = sch["chargingRateUnit"]
        self.periods = [(p["startPeriod"], p["limit"], p.get("numberPhases", 3))
                        for p in sch["chargingSchedulePeriod"]]
        self.start = parse_time(sch["startSchedule"]) if sch.get("startSchedule") else anchor

    def valid(self, t):
        if self.valid_from is not None and t < self.valid_from:
            return False
        if self.valid_to is not None and t >= self.valid_to:
            return False
        return True

    def run_start(self, t):
        """Start instant of the run of the schedule that covers t, or None before the start."""
        if self.start is None or t < self.start:
            return None
        if self.period_len is None:
            return self.start
        k = int((t - self.start) // self.period_len)
        return self.start + k * self.period_len

    def limit_amps(self, t, voltage):
        """The per-phase current limit this profile's schedule defines at t, or None if the
        profile is not valid or has no period in force at t."""
        if not self.valid(t):
            return None
        s = self.run_start(t)
        if s is None:
            return None
        off = t - s
        if self.duration is not None and off >= self.duration:
            return None
        if self.period_len is not None and off >= self.period_len:
            return None
        found = None
        for start_period, limit, phases in self.periods:
            if self.duration is not None and start_period >= self.duration:
                break
            if start_period <= off:
                found = (limit, phases)
            else:
                break
        if found is None:
            return None
        limit, phases = found
        if self.unit == "W":
            return limit / (voltage * phases)
        return float(limit)

    def breakpoints(self, t0, t1):
        """Instants in (t0, t1) where this profile's contribution may change."""
        out = []
        for v in (self.valid_from, self.valid_to):
            if v is not None:
                out.append(v)
        if self.start is None:
            return out
        if self.period_len is None:
            runs = [self.start]
        else:
            first = self.run_start(t0)
            if first is None:
                first = self.start
            runs = []
            s = first
            while s < t1:
                runs.append(s)
                s += self.period_len
        for s in runs:
            for start_period, _, _ in self.periods:
                out.append(s + start_period)
            if self.duration is not None:
                out.append(s + self.duration)
            if self.period_len is not None:
                out.append(s + self.period_len)
        return [b for b in out if t0 < b < t1]


def leading(profiles, t, voltage):
    """The limit of the leading schedule among profiles of one purpose at t (3.5), or None."""
    for p in sorted(profiles, key=lambda p: -p.level):
        lim = p.limit_amps(t, voltage)
        if lim is not None:
            return lim
    return None


def limit_at(profiles, t, evse_id, transaction_id, local_limit, voltage):
    """The composite current limit of EVSE evse_id at instant t."""
    cs_max = [p for p in profiles if p.purpose == "ChargingStationMaxProfile"]
    tx = [p for p in profiles if p.purpose == "TxProfile" and p.evse_id == evse_id
          and transaction_id is not None and p.transaction_id == transaction_id]
    tx_default = [p for p in profiles if p.purpose == "TxDefaultProfile"
                  and p.evse_id in (0, evse_id)]
    limits = [local_limit]
    m = leading(cs_max, t, voltage)
    if m is not None:
        limits.append(m)
    lead_tx = leading(tx, t, voltage)
    if lead_tx is None:
        lead_tx = leading(tx_default, t, voltage)
    if lead_tx is not None:
        limits.append(lead_tx)
    return min(limits)


def composite(profiles, t0, duration, evse_id=1, transaction_id=None, local_limit=32.0,
              voltage=230.0):
    """The composite schedule of [t0, t0 + duration) in A as [(startPeriod, limit)], limits
    rounded to one decimal, consecutive equal limits merged. startPeriods are seconds from t0
    (floats when a breakpoint is not a whole second from t0)."""
    t1 = t0 + duration
    points = {t0}
    for p in profiles:
        points.update(p.breakpoints(t0, t1))
    out = []
    for b in sorted(points):
        lim = round(limit_at(profiles, b, evse_id, transaction_id, local_limit, voltage), 1)
        if out and abs(out[-1][1] - lim) < 1e-9:
            continue
        out.append((b - t0, lim))
    return out
