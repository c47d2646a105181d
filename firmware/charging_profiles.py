# Charging-profile requests (OCPP 2.0.1 part 2 K01, K05, K08-K10), on demand: imported for
# SetChargingProfile, ClearChargingProfile, GetChargingProfiles, GetCompositeSchedule (and
# borrowed for the chargingProfile of a RequestStartTransaction) and dropped after. The
# profiles and the limit they make live in the resident smart_charging block; this module
# holds only the checks (K01 rules, stack-level conflicts, the device-model bounds), the
# reports and the answers.
from firmware import compat, log
from firmware.rpc import status_info
from firmware.smart_charging import SC, CSO, doc_name


def _rejected(reason, info=None):
    return status_info("Rejected", reason, info)



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
        self.sc = station.blocks["smart_charging"]
        r = station.rpc
        r.register("SetChargingProfile", self.set_profile)
        r.register("ClearChargingProfile", self.clear_profile)
        r.register("GetChargingProfiles", self.get_profiles)
        r.register("GetCompositeSchedule", self.get_composite)

    def _max_entries(self):
        return self.dm.max_limit(SC, "Entries", vi="ChargingProfiles") or 16

    def _install(self, evse_id, cp, p):
        sc = self.sc
        cs = sc._cs()
        self.st.store.save(doc_name(p[cs.ID]), {"evseId": evse_id, "chargingProfile": cp})
        sc.profiles = [q for q in sc.profiles if q[cs.ID] != p[cs.ID]] + [p]  # K01.FR.05
        sc._count()
        log.info("smart", "profile %d (%s, stack %d) on EVSE %d" % (
            p[cs.ID], cs.PURPOSES[p[cs.PURPOSE]], p[cs.STACK], evse_id))
        sc.changed()

    # ---------------------------------------------------------------- K01
    def check(self, evse_id, cp, tx_id=None):
        """The packed profile, or a Rejected response. tx_id: the transaction a TxProfile
        is for (None: the one active on the EVSE)."""
        if not self.sc.enabled():
            return _rejected("NotEnabled")
        if evse_id != 0 and evse_id not in self.sc._ids():
            return _rejected("UnknownEvse")  # K01.FR.28
        cs = self.sc._cs()
        try:
            p = cs.compile_profile(evse_id, cp, cs.bounds(self.sc, evse_id))
        except cs.Invalid as e:
            return _rejected(e.args[0], e.args[1] if len(e.args) > 1 else None)
        except (KeyError, TypeError, ValueError) as e:
            return _rejected("InvalidProfile", repr(e))
        if p[cs.PURPOSE] == cs.TXP and tx_id is not False:
            if tx_id is None:
                tx = self.sc._tx.get(evse_id)
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
        if len(self.sc.profiles) >= self._max_entries() and \
                not [q for q in self.sc.profiles if q[cs.ID] == p[cs.ID]]:
            return _rejected("TooManyElements", "%d profiles installed" % len(self.sc.profiles))
        return p

    def _conflict(self, p, cs):
        """K01.FR.06/39/52/53: no two profiles of one purpose and stackLevel in force at once."""
        for q in self.sc.profiles:
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
            self.sc._release()
            return p
        cs = self.sc._cs()
        if p[cs.PURPOSE] == cs.TXP and cp.get("transactionId") != p[cs.TX]:
            cp = dict(cp)
            cp["transactionId"] = p[cs.TX]
        try:
            self._install(evse_id, cp, p)  # K01.FR.07: re-evaluated at once
        except OSError as e:  # the data directory refused it: not installed (K01.FR.27)
            return _rejected("OutOfStorage", "profile not saved: %s" % (e,))
        return {"status": "Accepted"}

    # ---------------------------------------------------------------- K05 / F01.FR.08-12
    def remote_start_profile(self, evse_id, cp, rsid=None):
        """A RequestStartTransaction's chargingProfile: None when it is taken (installed now
        on a transaction already running, else when the next one starts on the EVSE), or a
        Rejected response (F01.FR.26 / K05.FR.05). Ignored when smart charging is disabled."""
        if not self.sc.enabled():
            return None  # K05.FR.04
        if cp.get("chargingProfilePurpose") != "TxProfile":
            return _rejected("InvalidProfile", "the purpose must be TxProfile")  # F01.FR.09
        cp = dict(cp)
        cp.pop("transactionId", None)  # F01.FR.11
        p = self.check(evse_id, cp, tx_id=False)
        if isinstance(p, dict):
            self.sc._release()
            return p
        tx = self.sc._tx.get(evse_id)
        if tx is not None:
            self.bind(evse_id, cp, tx[0])
        else:
            self.sc._pending[evse_id] = (rsid, cp)
            self.sc._release()
        return None

    def bind(self, evse_id, cp, tx_id):
        cp = dict(cp)
        cp["transactionId"] = tx_id
        p = self.check(evse_id, cp, tx_id)
        if isinstance(p, dict):
            log.warn("smart", "remote-start profile refused: %s" % p["statusInfo"])
            self.sc._release()
            return
        self._install(evse_id, cp, p)

    # ---------------------------------------------------------------- K10
    def clear_profile(self, payload):
        if not self.sc.profiles:
            return {"status": "Unknown"}  # K10.FR.01
        cs = self.sc._cs()
        pid = payload.get("chargingProfileId")
        crit = payload.get("chargingProfileCriteria") or {}
        gone = []
        for q in self.sc.profiles:
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
        self.sc._remove(gone)  # K10.FR.05/07: recomputed at once
        self.sc._release()
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
        if not self.sc.profiles:
            return {"status": "NoProfiles"}
        cs = self.sc._cs()
        evse_id = payload.get("evseId")
        crit = payload.get("chargingProfile") or {}
        found = [(q[cs.EVSE], q[cs.ID]) for q in self.sc.profiles if self._matches(q, evse_id, crit, cs)]
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
            d = self.st.store.load(doc_name(pid))
            if d is not None:
                first = (e, d["chargingProfile"])
        if first is None:
            return {"status": "NoProfiles"}

        async def after():
            held = first
            for e, pid in found:
                d = self.st.store.load(doc_name(pid))
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
        if evse_id != 0 and evse_id not in self.sc._ids():
            return _rejected("UnknownEvse")  # K08.FR.05
        units = self.dm.get_list(SC, "RateUnit")
        unit = payload.get("chargingRateUnit") or units[0]
        if unit not in units:
            return _rejected("UnsupportedRateUnit")  # K08.FR.07
        cs = self.sc._cs()
        now = int(compat.now())
        dur = payload["duration"]
        try:
            dur, periods = cs.composite(self.sc.profiles, evse_id, now, max(dur, 1), unit == "W",
                                        cs.context(self.sc))
        finally:
            self.sc._release()
        sched = {"evseId": evse_id, "duration": dur, "scheduleStart": compat.iso8601(now),
                 "chargingRateUnit": unit,
                 "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods]}
        return {"status": "Accepted", "schedule": sched}
