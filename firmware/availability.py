# Availability block (G01-G04). This part reports connector status: StatusNotification for
# every connector once BootNotification is Accepted (B01.FR.05), on every change (G01), and
# after a reconnect either for all connectors (offline longer than OfflineThreshold,
# B04.FR.01) or only for those whose status changed while offline (B04.FR.02).
# ChangeAvailability (G03/G04) is added here later; it drives evse.set_available().
from firmware import compat, log
from firmware.rpc import CallError, Offline

COMM = "OCPPCommCtrlr"


class Block:
    def __init__(self, station):
        self.st = station
        self.sent = {}           # evse id -> last status the CSMS acknowledged
        self.notifications = 0
        self._lost_ms = None     # when the connection dropped
        self._out = compat.Queue()
        station.on("start", self._on_start)
        station.on("boot_accepted", self._on_boot_accepted)
        station.on("connected", self._on_connected)
        station.on("disconnected", self._on_disconnected)
        station.on("connector_status", self._on_change)

    def connector_status(self, evse):
        ev = self.st.blocks.get("evse")
        return ev.connector_status(evse.id) if ev is not None else "Available"

    def _on_start(self):
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
        threshold = self.st.dm.get(COMM, "OfflineThreshold")
        if threshold is None or offline_s > threshold:
            self._all()
        else:
            for evse in self.st.board.evses:
                if self.sent.get(evse.id) != self.connector_status(evse):
                    self._out.put_nowait((evse.id, None, None))

    def _all(self):
        for evse in self.st.board.evses:
            self._out.put_nowait((evse.id, None, None))

    def _on_change(self, evse_id, status):
        if self.st.connected and self.st.boot_status == "Accepted":
            self._out.put_nowait((evse_id, status, compat.iso8601()))

    async def _sender(self):
        """One at a time, in order of change; offline items are dropped (B04 resends)."""
        while True:
            evse_id, status, stamp = await self._out.get()
            evse = None
            for e in self.st.board.evses:
                if e.id == evse_id:
                    evse = e
            if evse is not None:
                await self.send_status(evse, 1, status, stamp)

    async def send_status(self, evse, connector_id=1, status=None, timestamp=None):
        status = status or self.connector_status(evse)
        payload = {"timestamp": timestamp or compat.iso8601(), "connectorStatus": status,
                   "evseId": evse.id, "connectorId": connector_id}
        try:
            await self.st.call("StatusNotification", payload, wait_online=False)
            self.sent[evse.id] = status
            self.notifications += 1
        except (CallError, compat.TimeoutError, Offline) as e:
            log.warn("avail", "StatusNotification failed: %r" % (e,))
