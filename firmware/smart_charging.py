# Smart charging block (OCPP 2.0.1 part 2, K01-K10 for an AC station without ISO 15118):
# SetChargingProfile, ClearChargingProfile, GetChargingProfiles (+ ReportChargingProfiles),
# GetCompositeSchedule, the charging profile of a RequestStartTransaction, and the limit
# that follows from the installed profiles.
#
# The limit: for the station (EVSE 0: ChargingStationMaxProfile) and every EVSE (station
# max + TxDefaultProfile / TxProfile), in A per phase, announced as
#   station.emit("charging_limit", evse_id, "profile", amps or None)   (None: no limit)
# whenever a profile is set or cleared, a transaction starts or ends, the clock is set from
# the CSMS ("clock_set"), and at every period boundary: one task sleeps until the next
# boundary (at most MAX_SLEEP_MS, which also bounds the error of a clock that drifts).
# It runs whether or not the CSMS is reachable (K06, K07).
#
# Each profile is one document cp<id>.json ({"evseId", "chargingProfile"} as received),
# written atomically; RAM holds the packed form of charging_schedule. That module (the
# computation) is imported only while profiles are installed or a composite schedule is
# being built. TxProfiles end with their transaction (K02.FR.05); transactions open at
# start-up are ended by the transactions block, so their TxProfiles go at start-up too.
from firmware import compat, log

SC = "SmartChargingCtrlr"
DOC = "cp"
MAX_SLEEP_MS = 300000
CSO = "CSO"
_MOD = "firmware.charging_schedule"


def _rejected(reason, info=None):
    si = {"reasonCode": reason}
    if info:
        si["additionalInfo"] = info[:512]
    return {"status": "Rejected", "statusInfo": si}


def _doc(pid):
    return "%s%d.json" % (DOC, pid)


def _overlap(a, b, cs):
    lo = a[cs.FROM] if b[cs.FROM] is None or (a[cs.FROM] is not None and a[cs.FROM] > b[cs.FROM]) \
        else b[cs.FROM]
    hi_a, hi_b = a[cs.TO], b[cs.TO]
    hi = hi_a if hi_b is None or (hi_a is not None and hi_a < hi_b) else hi_b
    return lo is None or hi is None or lo < hi


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self.profiles = []     # packed profiles (charging_schedule tuples)
        self._tx = {}          # evse id -> (transactionId, start in unix s)
        self._pending = {}     # evse id -> TxProfile of a RequestStartTransaction (F01.FR.10)
        self._sent = {}        # evse id -> last limit announced
        self._wake = compat.asyncio.Event()
        self._task = None
        r = station.rpc
        r.register("SetChargingProfile", self.set_profile)
        r.register("ClearChargingProfile", self.clear_profile)
        r.register("GetChargingProfiles", self.get_profiles)
        r.register("GetCompositeSchedule", self.get_composite)
        station.on("start", self._on_start)
        station.on("tx_started", self._on_tx_started)
        station.on("tx_ended", self._on_tx_ended)
        station.on("clock_set", lambda jump: self.changed())
        self._load()

    # ---------------------------------------------------------------- helpers
    def _cs(self):
        from firmware import charging_schedule
        return charging_schedule

    def _release(self):
        """Drop the computation module when nothing needs it (no profile installed)."""
        if not self.profiles:
            compat.unload(_MOD)

    def enabled(self):
        return bool(self.dm.get(SC, "Enabled"))

    def _ids(self):
        return self.st.board.ids

    def _volts(self):
        # no device-model variable holds the supply's nominal voltage; a board may say it
        from firmware.device_model import NOMINAL_VOLTAGE
        for e in self.st.board.evses:
            v = getattr(e, "nominal_voltage", None)
            if v:
                return v
        return NOMINAL_VOLTAGE

    def ctx(self):
        evses = {}
        for e in self.st.board.evses:
            tx = self._tx.get(e.id)
            local = getattr(e, "rated_current", None) or e.max_current
            evses[e.id] = (e.phases, float(local), tx[0] if tx else None, tx[1] if tx else None)
        return {"v": float(self._volts()), "evses": evses}

    def _limits(self, evse_id):
        phases = [e.phases for e in self.st.board.evses if evse_id == 0 or e.id == evse_id]
        return {"stack": self.dm.get(SC, "ProfileStackLevel"),
                "periods": self.dm.get(SC, "PeriodsPerSchedule"),
                "units": self.dm.get_list(SC, "RateUnit"), "phases": phases}

    def _max_entries(self):
        return self.dm.max_limit(SC, "Entries", vi="ChargingProfiles") or 16

    def _count(self):
        self.dm.set(SC, "Entries", len(self.profiles), vi="ChargingProfiles")

    def changed(self):
        """Recompute and announce the limits now (a profile or a transaction changed)."""
        self._wake.set()
        if self._task is None:  # not started (yet): compute synchronously
            self.apply()

    # ---------------------------------------------------------------- persistence
    def _load(self):
        names = self.st.store.names(DOC)
        if not names:
            return
        cs = self._cs()
        for n in names:
            d = self.st.store.load(n)
            try:
                cp = d["chargingProfile"]
                evse_id = d["evseId"]
                if cp["chargingProfilePurpose"] == "TxProfile":
                    raise cs.Invalid("TxNotFound", "its transaction ended at the restart")
                self.profiles.append(cs.compile_profile(evse_id, cp, self._limits(evse_id)))
            except (cs.Invalid, KeyError, TypeError) as e:
                log.warn("smart", "profile %s dropped: %r" % (n, e))
                self.st.store.remove(n)
        self._count()
        self._release()

    def _install(self, evse_id, cp, p):
        cs = self._cs()
        self.st.store.save(_doc(p[cs.ID]), {"evseId": evse_id, "chargingProfile": cp})
        self.profiles = [q for q in self.profiles if q[cs.ID] != p[cs.ID]] + [p]  # K01.FR.05
        self._count()
        log.info("smart", "profile %d (%s, stack %d) on EVSE %d" % (
            p[cs.ID], cs.PURPOSES[p[cs.PURPOSE]], p[cs.STACK], evse_id))
        self.changed()

    def _remove(self, pids):
        cs = self._cs()
        for pid in pids:
            self.st.store.remove(_doc(pid))
        self.profiles = [q for q in self.profiles if q[cs.ID] not in pids]
        self._count()
        self.changed()

    # ---------------------------------------------------------------- K01
    def check(self, evse_id, cp, tx_id=None):
        """The packed profile, or a Rejected response. tx_id: the transaction a TxProfile
        is for (None: the one active on the EVSE)."""
        if not self.enabled():
            return _rejected("NotEnabled")
        if evse_id != 0 and evse_id not in self._ids():
            return _rejected("UnknownEvse")  # K01.FR.28
        cs = self._cs()
        try:
            p = cs.compile_profile(evse_id, cp, self._limits(evse_id))
        except cs.Invalid as e:
            return _rejected(e.args[0], e.args[1] if len(e.args) > 1 else None)
        except (KeyError, TypeError, ValueError) as e:
            return _rejected("InvalidProfile", repr(e))
        if p[cs.PURPOSE] == cs.TXP and tx_id is not False:
            if tx_id is None:
                tx = self._tx.get(evse_id)
                if tx is None:
                    return _rejected("TxNotFound", "no transaction on EVSE %d" % evse_id)  # K01.FR.09
                tid = cp.get("transactionId")
                if tid is not None and tid != tx[0]:
                    return _rejected("TxNotFound")  # K01.FR.33
                tx_id = tx[0]
            p = p[:cs.TX] + (tx_id,) + p[cs.TX + 1:]
        why = self._conflict(p, cs)
        if why:
            return _rejected("DuplicateProfile", why)
        if len(self.profiles) >= self._max_entries() and \
                not [q for q in self.profiles if q[cs.ID] == p[cs.ID]]:
            return _rejected("TooManyElements", "%d profiles installed" % len(self.profiles))
        return p

    def _conflict(self, p, cs):
        """K01.FR.06/39/52/53: no two profiles of one purpose and stackLevel in force at once."""
        for q in self.profiles:
            if q[cs.ID] == p[cs.ID] or q[cs.PURPOSE] != p[cs.PURPOSE] or q[cs.STACK] != p[cs.STACK]:
                continue
            if p[cs.PURPOSE] == cs.TXP:
                if q[cs.TX] == p[cs.TX]:
                    return "profile %d: same stackLevel for this transaction" % q[cs.ID]
                continue
            if q[cs.EVSE] != p[cs.EVSE] and p[cs.PURPOSE] == cs.TXDEF and \
                    (q[cs.EVSE] == 0 or p[cs.EVSE] == 0):
                return "profile %d on EVSE %d has this stackLevel" % (q[cs.ID], q[cs.EVSE])
            if q[cs.EVSE] == p[cs.EVSE] and _overlap(p, q, cs):
                return "profile %d: same stackLevel, overlapping validity" % q[cs.ID]
        return None

    def set_profile(self, payload):
        evse_id = payload["evseId"]
        cp = payload["chargingProfile"]
        p = self.check(evse_id, cp)
        if isinstance(p, dict):
            self._release()
            return p
        cs = self._cs()
        if p[cs.PURPOSE] == cs.TXP and cp.get("transactionId") != p[cs.TX]:
            cp = dict(cp)
            cp["transactionId"] = p[cs.TX]
        self._install(evse_id, cp, p)  # K01.FR.07: re-evaluated at once
        return {"status": "Accepted"}

    # ---------------------------------------------------------------- K05 / F01.FR.08-12
    def remote_start_profile(self, evse_id, cp):
        """A RequestStartTransaction's chargingProfile: None when it is taken (installed now
        on a transaction already running, else when the next one starts on the EVSE), or a
        Rejected response (F01.FR.26 / K05.FR.05). Ignored when smart charging is disabled."""
        if not self.enabled():
            return None  # K05.FR.04
        if cp.get("chargingProfilePurpose") != "TxProfile":
            return _rejected("InvalidProfile", "the purpose must be TxProfile")  # F01.FR.09
        cp = dict(cp)
        cp.pop("transactionId", None)  # F01.FR.11
        p = self.check(evse_id, cp, tx_id=False)
        if isinstance(p, dict):
            self._release()
            return p
        tx = self._tx.get(evse_id)
        if tx is not None:
            self._bind(evse_id, cp, tx[0])
        else:
            self._pending[evse_id] = cp
            self._release()
        return None

    def _bind(self, evse_id, cp, tx_id):
        cp = dict(cp)
        cp["transactionId"] = tx_id
        p = self.check(evse_id, cp, tx_id)
        if isinstance(p, dict):
            log.warn("smart", "remote-start profile refused: %s" % p["statusInfo"])
            self._release()
            return
        self._install(evse_id, cp, p)

    # ---------------------------------------------------------------- transactions
    def _on_tx_started(self, evse_id, tx):
        self._tx[evse_id] = (tx["id"], int(compat.now()))
        cp = self._pending.pop(evse_id, None)
        if cp is not None:
            self._bind(evse_id, cp, tx["id"])
        else:
            self.changed()

    def _on_tx_ended(self, evse_id, tx):
        self._tx.pop(evse_id, None)
        if self.profiles:
            cs = self._cs()
            gone = [q[cs.ID] for q in self.profiles if q[cs.PURPOSE] == cs.TXP and q[cs.TX] == tx["id"]]
            if gone:
                self._remove(gone)  # K02.FR.05
                self._release()
                return
        self.changed()

    # ---------------------------------------------------------------- K10
    def clear_profile(self, payload):
        if not self.profiles:
            return {"status": "Unknown"}  # K10.FR.01
        cs = self._cs()
        pid = payload.get("chargingProfileId")
        crit = payload.get("chargingProfileCriteria") or {}
        gone = []
        for q in self.profiles:
            if pid is not None:
                ok = q[cs.ID] == pid  # K10.FR.03
            else:
                e = crit.get("evseId")
                pur = crit.get("chargingProfilePurpose")
                lvl = crit.get("stackLevel")
                ok = (e is None or q[cs.EVSE] == e) and \
                    (pur is None or cs.PURPOSES[q[cs.PURPOSE]] == pur) and \
                    (lvl is None or q[cs.STACK] == lvl)  # K10.FR.04
            if ok and q[cs.PURPOSE] != cs.EXT:  # K10.FR.08/09
                gone.append(q[cs.ID])
        if not gone:
            return {"status": "Unknown"}
        self._remove(gone)  # K10.FR.05/07: recomputed at once
        self._release()
        return {"status": "Accepted"}

    # ---------------------------------------------------------------- K09
    def _matches(self, q, evse_id, crit, cs):
        if evse_id is not None and q[cs.EVSE] != evse_id:
            return False  # K09.FR.04/05
        ids = crit.get("chargingProfileId")
        if ids and q[cs.ID] not in ids:
            return False
        pur = crit.get("chargingProfilePurpose")
        if pur is not None and cs.PURPOSES[q[cs.PURPOSE]] != pur:
            return False
        lvl = crit.get("stackLevel")
        if lvl is not None and q[cs.STACK] != lvl:
            return False
        src = crit.get("chargingLimitSource")
        return not src or CSO in src

    def get_profiles(self, payload):
        if not self.profiles:
            return {"status": "NoProfiles"}
        cs = self._cs()
        evse_id = payload.get("evseId")
        crit = payload.get("chargingProfile") or {}
        found = [(q[cs.EVSE], q[cs.ID]) for q in self.profiles if self._matches(q, evse_id, crit, cs)]
        if not found:
            return {"status": "NoProfiles"}
        found.sort()
        rid = payload["requestId"]
        # A profile may go (its transaction ends, a Clear) between this answer and its report.
        # The first document is read now, so an Accepted always has a report to follow it;
        # after that one report is held back until the next is read, so the last one sent is
        # the one without tbc (K09.FR.01/02) whatever vanished. At most two documents in RAM.
        first = None
        while found and first is None:
            e, pid = found.pop(0)
            d = self.st.store.load(_doc(pid))
            if d is not None:
                first = (e, d["chargingProfile"])
        if first is None:
            return {"status": "NoProfiles"}

        async def after():
            held = first
            for e, pid in found:
                d = self.st.store.load(_doc(pid))
                if d is None:
                    continue
                if not await self._report(rid, held, True):
                    return
                held = (e, d["chargingProfile"])
                d = None
            await self._report(rid, held, False)

        return {"status": "Accepted"}, after

    async def _report(self, rid, held, tbc):
        rep = {"requestId": rid, "chargingLimitSource": CSO, "evseId": held[0],
               "chargingProfile": [held[1]]}
        if tbc:
            rep["tbc"] = True
        try:
            await self.st.call("ReportChargingProfiles", rep)
            return True
        except Exception as ex:
            log.warn("smart", "ReportChargingProfiles: %r" % (ex,))
            return False

    # ---------------------------------------------------------------- K08
    def get_composite(self, payload):
        evse_id = payload["evseId"]
        if evse_id != 0 and evse_id not in self._ids():
            return _rejected("UnknownEvse")  # K08.FR.05
        units = self.dm.get_list(SC, "RateUnit")
        unit = payload.get("chargingRateUnit") or units[0]
        if unit not in units:
            return _rejected("UnsupportedRateUnit")  # K08.FR.07
        cs = self._cs()
        now = int(compat.now())
        dur = payload["duration"]
        try:
            dur, periods = cs.composite(self.profiles, evse_id, now, max(dur, 1), unit == "W",
                                        self.ctx())
        finally:
            self._release()
        sched = {"evseId": evse_id, "duration": dur, "scheduleStart": compat.iso8601(now),
                 "chargingRateUnit": unit,
                 "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods]}
        return {"status": "Accepted", "schedule": sched}

    # ---------------------------------------------------------------- the limit
    def apply(self, now=None):
        """Announce the limit of the station and of every EVSE; returns the ms until the
        next boundary (at most MAX_SLEEP_MS)."""
        real = compat.now() if now is None else now
        now = int(real)
        on = self.profiles and self.enabled()
        nxt = None
        ctx = self.ctx() if on else None
        cs = self._cs() if on else None
        for e in (0,) + tuple(self._ids()):
            lim = None
            if on:
                lim = cs.limit_at(self.profiles, e, now, ctx)
                c = cs.next_boundary(self.profiles, e, now, ctx)
                if c is not None and (nxt is None or c < nxt):
                    nxt = c
                if lim is not None:
                    lim = round(lim, 1)
            if lim is not None or self._sent.get(e) is not None:
                self._sent[e] = lim
                self.st.emit("charging_limit", e, "profile", lim)
        if nxt is None:
            return MAX_SLEEP_MS
        return max(0, min(MAX_SLEEP_MS, int((nxt - real) * 1000)))

    def _on_start(self):
        self._task = self.st.spawn(self._run())

    async def _run(self):
        while True:
            try:
                wait = self.apply()
            except Exception as e:
                log.exc("smart", "limit", e)
                wait = MAX_SLEEP_MS
            self._wake.clear()
            try:
                await compat.wait_for_ms(self._wake.wait(), wait + 20 if wait else 0)
            except compat.TimeoutError:
                pass
