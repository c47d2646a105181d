# Availability block (G01-G04) — boot-time StatusNotification (B01.FR.05) for now; the charging
# work extends it with ChangeAvailability and connector state changes.
from firmware import compat, log
from firmware.rpc import CallError, Offline


class Block:
    def __init__(self, station):
        self.st = station
        station.on("boot_accepted", self._on_boot_accepted)

    def connector_status(self, evse):
        return "Available"

    async def _on_boot_accepted(self):
        for evse in self.st.board.evses:
            await self.send_status(evse)

    async def send_status(self, evse, connector_id=1):
        payload = {"timestamp": compat.iso8601(), "connectorStatus": self.connector_status(evse),
                   "evseId": evse.id, "connectorId": connector_id}
        try:
            await self.st.call("StatusNotification", payload)
        except (CallError, compat.TimeoutError, Offline) as e:
            log.warn("avail", "StatusNotification failed: %r" % (e,))
