# Provisioning block (OCPP 2.0.1 part 2, B01-B04): BootNotification with Accepted / Pending /
# Rejected, Heartbeat at the CSMS-given interval, and the station clock taken from the CSMS.
from firmware import compat, log
from firmware.rpc import CallError, Offline

COMM = "OCPPCommCtrlr"
DEFAULT_RETRY_S = 30  # when the CSMS gives interval 0 or does not answer


def adopt_time(payload):
    t = payload.get("currentTime")
    if isinstance(t, str):
        try:
            compat.set_now(compat.parse_iso8601(t))
        except ValueError:
            log.warn("clock", "ignoring unreadable currentTime %r" % t[:40])


class Block:
    def __init__(self, station):
        self.st = station
        saved = station.store.load("boot.json") or {}
        self.reason = saved.get("reason") or "PowerUp"
        self._boot_now = compat.asyncio.Event()
        self._hb_changed = compat.asyncio.Event()
        self._booting = False
        self.heartbeats = 0
        station.on("connected", self._on_connected)
        station.on("start", self._on_start)
        station.dm.on_change(self._on_var)

    def _on_start(self):
        self.st.spawn(self._heartbeat_loop())

    def _on_var(self, component, variable, value):
        if component == COMM and variable == "HeartbeatInterval":
            self._hb_changed.set()

    def _on_connected(self):
        # B02/B03: a plain reconnect does not repeat an Accepted BootNotification.
        if self.st.boot_status != "Accepted" and not self._booting:
            self.st.spawn(self._boot_loop())

    def boot_payload(self):
        b = self.st.board
        cs = {"model": b.model[:20], "vendorName": b.vendor[:50]}
        if b.serial:
            cs["serialNumber"] = b.serial[:25]
        if b.firmware_version:
            cs["firmwareVersion"] = b.firmware_version[:50]
        return {"reason": self.reason, "chargingStation": cs}

    def boot_now(self):
        """TriggerMessage(BootNotification) while Pending: resend without waiting."""
        self._boot_now.set()

    async def _boot_loop(self):
        st = self.st
        self._booting = True
        try:
            while st.running and st.connected and st.boot_status != "Accepted":
                wait_s = DEFAULT_RETRY_S
                try:
                    resp = await st.call("BootNotification", self.boot_payload(), wait_online=False)
                except Offline:
                    return
                except (CallError, compat.TimeoutError) as e:
                    log.warn("boot", "BootNotification failed: %r" % (e,))
                else:
                    adopt_time(resp)
                    status = resp["status"]
                    interval = resp.get("interval", 0)
                    log.info("boot", "BootNotification %s (interval %s)" % (status, interval))
                    if status == "Accepted":
                        if interval > 0:
                            st.dm.set(COMM, "HeartbeatInterval", interval)
                        st.store.remove("boot.json")
                        st.set_boot_status(status)
                        st.emit("boot_accepted")
                        return
                    st.set_boot_status(status)
                    if interval > 0:
                        wait_s = interval
                self._boot_now.clear()
                try:
                    await compat.wait_for_ms(self._boot_now.wait(), int(wait_s * 1000))
                except compat.TimeoutError:
                    pass
        finally:
            self._booting = False

    async def _heartbeat_loop(self):
        st = self.st
        while True:
            interval = st.dm.get(COMM, "HeartbeatInterval") or 0
            self._hb_changed.clear()
            try:
                await compat.wait_for_ms(self._hb_changed.wait(), int(max(interval, 1) * 1000))
                continue  # interval changed: restart the period
            except compat.TimeoutError:
                pass
            if interval <= 0 or not st.connected or st.boot_status != "Accepted":
                continue
            try:
                resp = await st.call("Heartbeat", {}, wait_online=False)
                adopt_time(resp)
                self.heartbeats += 1
            except (Offline, CallError, compat.TimeoutError) as e:
                log.warn("boot", "Heartbeat failed: %r" % (e,))
