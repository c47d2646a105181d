# External charging limits reported to the CSMS (K11-K13). A limit that does not come from
# the CSMS, "local" (the console `limit`, an energy manager on the serial line) or
# "external" (the board's limit input), is enforced by the evse block whatever happens here;
# this block tells the CSMS about it while SmartChargingCtrlr.ExternalControlSignalsEnabled
# is true: NotifyChargingLimit when a limit is set or moves by more than
# LimitChangeSignificance percent (K11.FR.02, K12.FR.02), with its schedule when
# NotifyChargingLimitWithSchedules is true (K11.FR.03, K12.FR.03), and ClearedChargingLimit
# once it is lifted (K13.FR.02). chargingLimitSource is never "CSO" (K11.FR.05, K12.FR.04):
# "EMS" for the board input, "Other" for the console; isGridCritical is false, nothing here
# knows the grid's state. A schedule carries a negative id (K12.FR.05's recommendation).
#
# The limit is enforced even with ExternalControlSignalsEnabled false: it is what keeps an
# installation's supply within its fuse, and a CSMS setting can not rewire that.
#
# Station events: listens to "charging_limit" (evse_id, source, amps or None).
from firmware import compat, log
from firmware.rpc import CallError

SC = "SmartChargingCtrlr"
LIMIT_SOURCE = {"external": "EMS", "local": "Other"}
RETRY_MS = 5000


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self.now = {}        # (evse_id, source) -> amps in force, None once lifted
        self.reported = {}   # (evse_id, source) -> amps the CSMS was last told (None: cleared)
        self._due = []       # keys whose value in self.now is still to be sent, oldest first
        self._wake = compat.asyncio.Event()
        station.on("charging_limit", self._on_limit)
        station.on("start", self._on_start)

    def _on_limit(self, evse_id, source, amps):
        if source not in LIMIT_SOURCE:
            return  # the CSMS's own profiles are not reported back to it
        key = (evse_id, source)
        self.now[key] = amps
        if not self.dm.get(SC, "ExternalControlSignalsEnabled"):
            return
        prev = self.reported.get(key)
        if amps is None:
            if prev is None:
                return  # never reported: nothing to clear
        elif prev is not None:
            sig = self.dm.get(SC, "LimitChangeSignificance") or 0
            if abs(amps - prev) * 100.0 <= sig * prev:
                return  # SC.03: a small move is not worth a message
        if key not in self._due:
            self._due.append(key)
        self._wake.set()

    def payload(self, evse_id, source, amps):
        """(action, payload) telling the CSMS about `amps` (None: the limit was lifted)."""
        src = LIMIT_SOURCE[source]
        if amps is None:
            p = {"chargingLimitSource": src}
            if evse_id:
                p["evseId"] = evse_id
            return "ClearedChargingLimit", p
        p = {"chargingLimit": {"chargingLimitSource": src, "isGridCritical": False}}
        if evse_id:
            p["evseId"] = evse_id  # absent: the whole station (evseId must be > 0)
        if self.dm.get(SC, "NotifyChargingLimitWithSchedules"):
            sid = -(2 * evse_id + (1 if source == "external" else 2))
            p["chargingSchedule"] = [{
                "id": sid, "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0,
                                            "limit": int(amps * 10) / 10.0}]}]
        return "NotifyChargingLimit", p

    def _on_start(self):
        self.st.spawn(self._sender())

    async def _sender(self):
        while True:
            if not self._due:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self.st.online():
                await compat.sleep_ms(500)   # offline: what is sent later is the latest value
                continue
            key = self._due.pop(0)
            amps = self.now.get(key)
            if amps == self.reported.get(key):
                continue  # set and lifted again (or back) before it went out
            action, p = self.payload(key[0], key[1], amps)
            try:
                await self.st.call(action, p)
                self.reported[key] = amps
            except CallError as e:
                # the CSMS answered with an error (e.g. NotImplemented): it will give the same
                # answer again, so it is not asked every RETRY_MS forever
                log.warn("limits", "%s refused by the CSMS (%s): not retried" % (action, e))
                self.reported[key] = amps
            except Exception as e:
                log.warn("limits", "%s failed (%r): retried" % (action, e))
                if key not in self._due:
                    self._due.insert(0, key)
                await compat.sleep_ms(RETRY_MS)
