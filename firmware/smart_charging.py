# Smart charging block (OCPP 2.0.1 part 2, K01-K10 for an AC station without ISO 15118),
# the resident part: the installed profiles, the transactions they apply to, and the limit
# that follows from them. The requests (SetChargingProfile, ClearChargingProfile,
# GetChargingProfiles, GetCompositeSchedule, the chargingProfile of a
# RequestStartTransaction) are answered by firmware/charging_profiles.py, on demand.
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


def doc_name(pid):
    return "%s%d.json" % (DOC, pid)


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self.profiles = []     # packed profiles (charging_schedule tuples)
        self._tx = {}          # evse id -> (transactionId, start in unix s)
        self._pending = {}     # evse id -> (remoteStartId, TxProfile) of a RequestStartTransaction
        self._sent = {}        # evse id -> last limit announced
        self._wake = compat.asyncio.Event()
        self._task = None
        station.on("start", self._on_start)
        station.on("tx_started", self._on_tx_started)
        station.on("tx_ended", self._on_tx_ended)
        station.on("clock_set", self._on_clock)
        station.on("permitted", lambda evse_id, on: self.changed())
        station.dm.on_change(self._on_var)
        self._load()

    def _on_clock(self, jump):
        # the transactions' starts were taken on the old clock: Relative schedules count
        # from them, so they move with it (else a clock set back by minutes would put every
        # Relative profile before its start, i.e. not limiting)
        for e in self._tx:
            tid, start = self._tx[e]
            self._tx[e] = (tid, int(start + jump))
        self.changed()

    def _on_var(self, component, variable, value):
        if component == SC and variable == "Enabled":
            self.changed()  # profiles stop (or start again) limiting at once

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
                self.profiles.append(cs.compile_profile(evse_id, cp, cs.bounds(self, evse_id)))
            except (cs.Invalid, KeyError, TypeError) as e:
                log.warn("smart", "profile %s dropped: %r" % (n, e))
                self.st.store.remove(n)
        self._count()
        self._release()

    def _remove(self, pids):
        cs = self._cs()
        for pid in pids:
            self.st.store.remove(doc_name(pid))
        self.profiles = [q for q in self.profiles if q[cs.ID] not in pids]
        self._count()
        self.changed()

    # ---------------------------------------------------------------- transactions
    def _on_tx_started(self, evse_id, tx):
        self._tx[evse_id] = (tx["id"], int(compat.now()))
        pend = self._pending.pop(evse_id, None)
        try:
            # only the session its RequestStartTransaction started (F01.FR.10); another
            # one (a card at the charger after that remote start timed out) drops it
            if pend is not None and pend[0] == tx.get("_rsid"):
                blk = self.st.borrow("charging_profiles")  # its checks, loaded for this
                try:
                    blk.bind(evse_id, pend[1], tx["id"])
                finally:
                    self.st.release("charging_profiles")
        finally:
            self.changed()  # the shares of a station maximum change, whatever bind did

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

    # ---------------------------------------------------------------- the limit
    def apply(self, now=None):
        """Announce the limit of the station and of every EVSE; returns the ms until the
        next boundary (at most MAX_SLEEP_MS)."""
        if self.profiles:
            cs = self._cs()
            if self.enabled():
                return cs.announce(self, now, MAX_SLEEP_MS)
            # disabled: the CSMS's schedules stop, but not a ChargingStationMaxProfile: it
            # is what keeps the installation within its connection (fuse)
            keep = [p for p in self.profiles if p[cs.PURPOSE] == cs.MAX]
            if keep:
                return cs.announce(self, now, MAX_SLEEP_MS, keep)
        for e in self._sent:  # the last profile went (or smart charging was disabled)
            if self._sent[e] is not None:
                self._sent[e] = None
                self.st.emit("charging_limit", e, "profile", None)
        return MAX_SLEEP_MS

    def _on_start(self):
        self._task = self.st.spawn(self._run())

    async def _run(self):
        while True:
            try:
                wait = self.apply()
            except MemoryError:
                raise  # the station's task guard reboots: a limit that cannot be computed
            except Exception as e:
                log.exc("smart", "limit", e)
                wait = 1000  # soon again, not after MAX_SLEEP_MS with a stale limit
            self._wake.clear()
            try:
                await compat.wait_for_ms(self._wake.wait(), wait + 20 if wait else 0)
            except compat.TimeoutError:
                pass
