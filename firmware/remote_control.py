# Remote control block (OCPP 2.0.1 part 2, F): TriggerMessage (F06) for now.
#
# The TriggerMessageResponse goes out first and the requested message after it (F06.FR.04),
# through the handler's `after`. Other blocks add message types with
# station.blocks["remote_control"].register(name, fn): fn(evse) -> (status, after or None),
# where evse is the request's EVSEType dict or None.
from firmware import compat, log
from firmware.rpc import CallError, Offline

def _rejected(reason):
    return {"status": "Rejected", "statusInfo": {"reasonCode": reason}}


class Block:
    def __init__(self, station):
        self.st = station
        self.triggers = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": self._status,
        }
        station.rpc.register("TriggerMessage", self.trigger_message)

    def register(self, name, fn):
        self.triggers[name] = fn

    def trigger_message(self, payload):
        name = payload.get("requestedMessage")
        evse = payload.get("evse")
        fn = self.triggers.get(name)
        if fn is None:
            return {"status": "NotImplemented"}
        if evse is not None and evse.get("id") not in [e.id for e in self.st.board.evses]:
            return _rejected("UnknownEvse")
        res = fn(evse)
        if isinstance(res, dict):
            return res
        status, after = res
        if after is None:
            return {"status": status}
        return {"status": status}, after

    def _permit(self, action):
        # B02.FR.02: a triggered message may be sent before the boot is Accepted.
        st = self.st
        if st.boot_status != "Accepted":
            st.allow_before_accepted((action,))

    async def _send(self, action, coro_fn):
        try:
            await coro_fn()
        except (CallError, Offline, compat.TimeoutError) as e:
            log.warn("trigger", "triggered %s failed: %r" % (action, e))
        finally:
            if self.st.boot_status != "Accepted":
                self.st.allow_before_accepted(())

    # ---------------------------------------------------------------- types
    def _boot(self, evse):
        # F06.FR.17: no second BootNotification once Accepted.
        if self.st.boot_status == "Accepted":
            return _rejected("NotEnabled")
        prov = self.st.blocks.get("provisioning")
        if prov is None:
            return {"status": "NotImplemented"}

        async def after():
            prov.boot_now()

        return "Accepted", after

    def _heartbeat(self, evse):
        prov = self.st.blocks.get("provisioning")
        if prov is None:
            return {"status": "NotImplemented"}

        async def after():
            self._permit("Heartbeat")
            await self._send("Heartbeat", prov.heartbeat)

        return "Accepted", after

    def _status(self, evse):
        avail = self.st.blocks.get("availability")
        if avail is None:
            return {"status": "NotImplemented"}
        evses = self.st.board.evses
        conn = None
        if evse is not None:
            conn = evse.get("connectorId")
            if conn is not None and conn != 1:
                return _rejected("UnknownConnectorId")
            evses = [e for e in evses if e.id == evse["id"]]

        async def send_all():
            for e in evses:
                await avail.send_status(e, conn or 1)

        async def after():
            self._permit("StatusNotification")
            await self._send("StatusNotification", send_all)

        return "Accepted", after
