# Remote control block (OCPP 2.0.1 part 2, F): RequestStartTransaction (F01/F02),
# RequestStopTransaction (F03), UnlockConnector (F05) and TriggerMessage (F06).
#
# Requests are answered first; whatever they set in motion (authorizing a remote start,
# stopping, the triggered message) runs afterwards through the handler's `after`. The
# transactions block does the charging work: tx.remote_start / tx.stop / tx.trigger_event.
#
# The block is loaded on demand (see station.ON_DEMAND): it keeps no state between requests.
from firmware import compat, log
from firmware.rpc import CallError, Offline, status_info
from firmware.hal import NoLock

UNLOCK_WAIT_MS = 1000  # how long a sensed lock may take to report "open"


def _rejected(reason, info=None):
    return status_info("Rejected", reason, info)


class Block:
    def __init__(self, station):
        self.st = station
        self.triggers = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": self._status,
            "MeterValues": self._meter_values,
            "TransactionEvent": self._tx_event,
            "SignChargingStationCertificate": self._sign_cert,
            "LogStatusNotification": self._log_status,
            "FirmwareStatusNotification": self._fw_status,
        }
        r = station.rpc
        r.register("TriggerMessage", self.trigger_message)
        r.register("RequestStartTransaction", self.request_start)
        r.register("RequestStopTransaction", self.request_stop)
        r.register("UnlockConnector", self.unlock_connector)

    # ---------------------------------------------------------------- F01/F02
    def _refuse(self, ev, tx, evse_id):
        """Why a remote start may not use this EVSE (F01.FR.21-24), or None."""
        e = ev.get(evse_id)
        if e is None:
            return ("UnknownEvse", None)
        if not e.available or ev.blocked(evse_id):
            return ("Unspecified", "EVSE %d is %s" % (evse_id, ev.connector_status(evse_id)))
        t = tx.active(evse_id)
        # authorized (pending or in a transaction), or a transaction already told to stop
        if e.authorized or (t is not None and (t.get("auth") or t.get("stop_reason"))):
            return ("TxInProgress", None)
        if e.reserved:  # no reservation block to match the token against
            return ("Unspecified", "EVSE %d is Reserved" % evse_id)
        return None

    def request_start(self, payload):
        st = self.st
        ev, tx = st.blocks.get("evse"), st.blocks.get("transactions")
        if ev is None or tx is None:
            return _rejected("UnsupportedRequest")
        if st.boot_status != "Accepted":
            return _rejected("CSNotAccepted")
        evse_id = payload.get("evseId")
        if evse_id is None:  # F01.FR.20: pick one, preferably where an EV waits
            ok = [i for i in ev.ids() if self._refuse(ev, tx, i) is None]
            if not ok:
                return _rejected("Unspecified", "no EVSE is free")
            evse_id = ok[0]
            for i in ok:
                if ev.connected(i):
                    evse_id = i
                    break
        else:
            why = self._refuse(ev, tx, evse_id)
            if why:
                return _rejected(why[0], why[1])
        cp = payload.get("chargingProfile")
        if cp is not None and "smart_charging" in st.blocks:  # F01.FR.12: without, ignored
            blk = st.borrow("charging_profiles")  # F01.FR.09/10/26
            try:
                refused = blk.remote_start_profile(evse_id, cp, payload.get("remoteStartId"))
            finally:
                st.release("charging_profiles")
            if refused is not None:
                return refused
        tok, rsid = payload["idToken"], payload["remoteStartId"]
        t = tx.active(evse_id)
        resp = {"status": "Accepted"}
        if t is not None:
            resp["transactionId"] = t["id"]  # F01.FR.13

        async def after():
            await tx.remote_start(evse_id, tok, rsid)

        return resp, after

    # ---------------------------------------------------------------- F03
    def request_stop(self, payload):
        tx = self.st.blocks.get("transactions")
        evse_id = tx.find(payload["transactionId"])[0] if tx is not None else None
        if evse_id is None:
            return {"status": "Rejected"}  # F03.FR.08

        async def after():
            await tx.stop(evse_id, "Remote", "RemoteStop")

        return {"status": "Accepted"}, after  # F03.FR.07

    # ---------------------------------------------------------------- F05
    async def unlock_connector(self, payload):
        evse_id = payload["evseId"]
        hw = self.st.board.evse(evse_id)
        if hw is None or payload["connectorId"] != 1:
            return {"status": "UnknownConnector"}  # F05.FR.03
        tx = self.st.blocks.get("transactions")
        t = tx.active(evse_id) if tx is not None else None
        # F05.FR.02; a stopping transaction still has its relay closed: no unlock under load
        if t is not None and (t.get("auth") or t.get("ending")):
            return {"status": "OngoingAuthorizedTransaction"}
        lock = hw.lock
        if isinstance(lock, NoLock):  # no lock fitted: a captive cable
            return {"status": "UnlockFailed", "statusInfo": {"reasonCode": "FixedCable"}}
        lock.set(False)  # F05.FR.06: tried even without a cable
        t0 = compat.ticks_ms()
        while lock.locked() and compat.ticks_diff(compat.ticks_ms(), t0) < UNLOCK_WAIT_MS:
            await compat.sleep_ms(50)
        if lock.locked() or "lock" in hw.faults():
            log.warn("remote", "EVSE %d: unlock failed" % evse_id)
            return {"status": "UnlockFailed"}  # F05.FR.05
        return {"status": "Unlocked"}  # F05.FR.04

    def trigger_message(self, payload):
        name = payload.get("requestedMessage")
        evse = payload.get("evse")
        fn = self.triggers.get(name)
        if fn is None:
            return {"status": "NotImplemented"}
        if evse is not None and evse.get("id") not in self.st.board.ids:
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

    def _fw_status(self, evse):
        fw = self.st.blocks.get("firmware_update")
        if fw is None:
            return {"status": "NotImplemented"}

        async def send():
            await self.st.call("FirmwareStatusNotification", fw.trigger(), wait_online=False)

        async def after():
            self._permit("FirmwareStatusNotification")
            await self._send("FirmwareStatusNotification", send)

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
            evses = [self.st.board.evse(evse["id"])]

        async def send_all():
            for e in evses:
                await avail.send_status(e, conn or 1)

        async def after():
            self._permit("StatusNotification")
            await self._send("StatusNotification", send_all)

        return "Accepted", after

    def _ids(self, evse):
        return [evse["id"]] if evse is not None else self.st.board.ids

    def _meter_values(self, evse):
        mv = self.st.blocks.get("meter_values")
        if mv is None:
            return {"status": "NotImplemented"}
        ids = self._ids(evse)

        async def send_all():
            for i in ids:
                v = mv.trigger_sample(i)
                if v:
                    await mv.send(i, [v])

        async def after():
            self._permit("MeterValues")
            await self._send("MeterValues", send_all)

        return "Accepted", after

    def _tx_event(self, evse):
        tx = self.st.blocks.get("transactions")
        if tx is None:
            return {"status": "NotImplemented"}
        busy = [i for i in self._ids(evse) if tx.active(i) is not None]
        if not busy:
            return _rejected("TxNotFound")

        async def after():
            for i in busy:  # F06.FR.07, queued like every TransactionEvent
                tx.trigger_event(i)

        return "Accepted", after

    def _sign_cert(self, evse):
        # A02: answered first, then the key pair and the CSR (A02.FR.02: "after sending a
        # TriggerMessageResponse"), by the station_cert block borrowed for the purpose
        st = self.st
        if not st.dm.get("SecurityCtrlr", "OrganizationName"):  # A02 prerequisite
            log.warn("trigger", "no CSR: SecurityCtrlr.OrganizationName is not set")
            return _rejected("MissingDevModelInfo", "SecurityCtrlr.OrganizationName is not set")

        async def after():
            blk = st.borrow("station_cert")
            try:
                await blk.request()
            finally:
                st.release("station_cert")

        return "Accepted", after

    def _log_status(self, evse):
        # F06.FR.14/15: Uploading with the upload's requestId while the get_log block (on
        # demand, loaded only while a GetLog is in progress) uploads, else Idle without one
        # (N01.FR.13)
        st = self.st
        blk = st.blocks.get("get_log")
        rid = blk.uploading() if blk is not None else None
        p = {"status": "Idle"} if rid is None else {"status": "Uploading", "requestId": rid}

        async def after():
            self._permit("LogStatusNotification")
            await self._send("LogStatusNotification", lambda: st.call("LogStatusNotification", p))

        return "Accepted", after
