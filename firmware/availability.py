# Availability block (G01-G05). Connector status: StatusNotification for every connector
# once BootNotification is Accepted (B01.FR.05), on every change (G01), and after a
# reconnect either for all connectors (offline longer than OfflineThreshold, B04.FR.01) or
# only for those whose status changed while offline (B04.FR.02).
#
# ChangeAvailability (G03/G04, answered by firmware.change_availability, loaded on demand):
# the CSMS sets the station, an EVSE or its connector Operative or Inoperative. The three
# levels are kept apart (G03 note 1) in a small document (avail.json, atomic write) saved
# before the response, so they survive a reboot or a power cut (G03.FR.08, G04.FR.09,
# B11.FR.02). An EVSE may charge while all three levels are Operative and no OnIdle reset
# waits (B12 3a); evse.set_available() applies that, and the connector then shows
# Unavailable (a fault still shows Faulted, G03.FR.06). An EVSE with a transaction keeps
# charging: the answer is Scheduled and the change happens when the transaction ends
# (G03.FR.05, G04.FR.06, G01.FR.05). Lock failure (G05) is a blocking safety fault: the
# connector shows Faulted, charging does not start, and the diagnostics block reports
# ConnectorPlugRetentionLock.Problem.
#
# API: operative(evse_id) -> bool (may a new session start there).
from firmware import compat, log
from firmware.rpc import CallError, Offline

COMM = "OCPPCommCtrlr"
DOC = "avail.json"


class Block:
    def __init__(self, station):
        self.st = station
        self.sent = {}           # evse id -> last status the CSMS acknowledged
        self._lost_ms = None     # when the connection dropped
        self._out = compat.Queue()
        self._queued = 0         # StatusNotifications queued so far (a running count)
        self._done = 0           # ... of which sent (or failed)
        self._settled = compat.asyncio.Event()
        # {"cs": station Operative, "off": EVSE ids Inoperative, "coff": EVSE ids whose
        # connector is Inoperative}
        self.doc = station.store.load(DOC) or {"cs": True, "off": [], "coff": []}
        self.resetting = False   # an OnIdle reset waits for the transactions to end
        self.fw_hold = False     # a firmware installation waits or runs (L01.FR.07)
        station.on("start", self._on_start)
        station.on("boot_accepted", self._on_boot_accepted)
        station.on("connected", self._on_connected)
        station.on("disconnected", self._on_disconnected)
        station.on("connector_status", self._on_change)
        station.on("tx_ended", self._on_tx_ended)
        station.on("reset_scheduled", self._on_reset_scheduled)
        station.on("firmware_hold", self._on_fw_hold)
        dm = station.dm
        dm.provide("ChargingStation", "AvailabilityState", self._cs_state)
        dm.provide("EVSE", "AvailabilityState", self._state)
        dm.provide("Connector", "AvailabilityState", self._state)

    def _state(self, evse_id, conn=None):
        """Connector status of an EVSE (one connector each); also the provider of the EVSE and
        Connector AvailabilityState variables."""
        ev = self.st.blocks.get("evse")
        return ev.connector_status(evse_id) if ev is not None and evse_id else "Available"

    def _cs_state(self, evse_id, conn):
        ev = self.st.blocks.get("evse")
        on = self.doc["cs"] or (ev is not None and [1 for e in ev.evses if e.available])
        return "Available" if on else "Unavailable"

    # ---------------------------------------------------------------- G03/G04
    def operative(self, evse_id):
        """True when the CSMS left the station, the EVSE and its connector Operative and no
        reset waits: a new session may start on `evse_id`."""
        d = self.doc
        return d["cs"] and evse_id not in d["off"] and evse_id not in d["coff"] \
            and not self.resetting and not self.fw_hold and evse_id in self.st.board.ids

    def sync(self, ids, apply=True):
        """Make the EVSEs' availability follow operative(); an EVSE with a transaction
        stays available until it ends. Returns True when one waits (Scheduled)."""
        ev = self.st.blocks.get("evse")
        tx = self.st.blocks.get("transactions")
        held = False
        if ev is None:
            return held
        for i in ids:
            want = self.operative(i)
            if not want and ev.get(i).available and tx is not None and tx.active(i):
                held = True
            elif apply:
                ev.set_available(i, want)
        return held

    def _on_tx_ended(self, evse_id, tx):
        self.sync([evse_id])

    def _on_reset_scheduled(self):
        # B12 3a: free EVSEs become Unavailable until the reset (not persisted)
        self.resetting = True
        self.sync(self.st.board.ids)

    def _on_fw_hold(self, on):
        # L01.FR.07: free EVSEs Unavailable until the firmware is installed (not persisted:
        # the installation ends in a reboot, or in a failure that releases the hold)
        self.fw_hold = on
        self.sync(self.st.board.ids)

    # ---------------------------------------------------------------- G01 / B04
    def _on_start(self):
        ev = self.st.blocks.get("evse")
        if ev is not None:
            for i in self.st.board.ids:  # persisted state, before the first StatusNotification
                ev.set_available(i, self.operative(i))
        self.st.spawn(self._sender())

    def _on_boot_accepted(self):
        self._lost_ms = None
        self._all()

    def _on_disconnected(self):
        if self._lost_ms is None:
            self._lost_ms = compat.ticks_ms()

    def _on_connected(self):
        if self.st.boot_status != "Accepted" or self._lost_ms is None:
            return  # the first boot is handled by boot_accepted
        offline_s = compat.ticks_diff(compat.ticks_ms(), self._lost_ms) / 1000
        self._lost_ms = None
        if offline_s > self.st.dm.get(COMM, "OfflineThreshold"):
            self._all()
        else:
            for evse in self.st.board.evses:
                if self.sent.get(evse.id) != self._state(evse.id):
                    self._queue((evse.id, None, None))

    def _all(self):
        for evse in self.st.board.evses:
            self._queue((evse.id, None, None))

    def _on_change(self, evse_id, status):
        if self.st.online():
            self._queue((evse_id, status, compat.iso8601()))

    def _queue(self, item):
        self._queued += 1
        self._out.put_nowait(item)

    async def settled(self):
        """Returns once every StatusNotification queued before the call has been sent (or
        failed); later ones are not waited for, so a flapping connector cannot hold the
        outbox back. The outbox waits for it before each message, so a pilot change's
        Occupied reaches the CSMS before the TransactionEvent the same change queued after it
        (E02/E03): the two go out through different tasks, and the outbox's could take the
        CALL lock first while this sender still waited for the reply to the previous status."""
        target = self._queued
        while self._done < target:
            self._settled.clear()
            await self._settled.wait()

    async def _sender(self):
        """One at a time, in order of change; offline items are dropped (B04 resends)."""
        while True:
            evse_id, status, stamp = await self._out.get()
            evse = self.st.board.evse(evse_id)
            try:
                if evse is not None:
                    await self.send_status(evse, 1, status, stamp)
            except MemoryError:
                raise  # the station's task guard reboots
            except Exception as e:
                # this task must go on: the outbox waits for the statuses it has queued
                log.exc("avail", "StatusNotification", e)
            finally:
                self._done += 1
                self._settled.set()

    async def send_status(self, evse, connector_id=1, status=None, timestamp=None):
        status = status or self._state(evse.id)
        payload = {"timestamp": timestamp or compat.iso8601(), "connectorStatus": status,
                   "evseId": evse.id, "connectorId": connector_id}
        try:
            await self.st.call("StatusNotification", payload, wait_online=False)
            self.sent[evse.id] = status
        except (CallError, compat.TimeoutError, Offline) as e:
            log.warn("avail", "StatusNotification failed: %r" % (e,))

