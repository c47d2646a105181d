# Provisioning block (OCPP 2.0.1 part 2, B01-B04, B09-B12, A05): BootNotification with
# Accepted / Pending / Rejected, Heartbeat at the CSMS-given interval, the station clock taken
# from the CSMS, network connection profiles and their priority, and Reset. SetNetworkProfile
# is answered by firmware.network_profile, loaded on demand.
from firmware import compat, log
from firmware.rpc import CallError, Offline

COMM = "OCPPCommCtrlr"
SEC = "SecurityCtrlr"
DEFAULT_RETRY_S = 30  # when the CSMS gives interval 0 or does not answer
RESET_HOOK_MS = 5000  # how long "reset" listeners may take before an Immediate reboot

NETDOC = "netprof.json"
# Configuration slots for NetworkConnectionProfiles (the valuesList of
# NetworkConfigurationPriority); the installer's --csms seeds SEED_SLOT.
SLOTS = (0, 1, 2)
SEED_SLOT = 1


def adopt_time(payload, station=None):
    t = payload.get("currentTime")
    if not isinstance(t, str):
        return
    try:
        new = compat.parse_iso8601(t)
    except ValueError:
        log.warn("clock", "ignoring unreadable currentTime %r" % t[:40])
        return
    jump = new - compat.now()
    compat.set_now(new)
    if station is not None:
        station.emit("clock_set", jump)  # schedules (smart charging) are re-evaluated
        # larger than the threshold (0: every adjustment) is a security event
        limit = station.dm.get("ClockCtrlr", "TimeAdjustmentReportingThreshold")
        if jump > limit or -jump > limit:
            station.security_event("SettingSystemTime", "clock set by the CSMS, moved %d s" % jump)


def _slots(text):
    """'2,1' -> [2, 1]; ValueError when malformed."""
    return [int(x) for x in text.split(",") if x != ""] if text else []


class NetProfiles:
    """Persistent NetworkConnectionProfile slots (B09) and the order to try them (B10).

    netprof.json holds {"slots": {"<n>": connectionData}, "last": [slot, connectionData]
    of the last successful connection, "seed": [url, cafile] from the installer}. The
    installer's --csms/--cafile seed slot SEED_SLOT; a changed seed replaces the network
    configuration (lowering the security profile is allowed only this way, A00.FR.005)."""

    def __init__(self, station):
        self.st = station
        doc = station.store.load(NETDOC)
        seed = [station.csms_url, station.cafile or ""]
        if not isinstance(doc, dict) or doc.get("seed") != seed or not doc.get("slots"):
            doc = self._seed(seed)
        self.doc = doc

    def _seed(self, seed):
        st = self.st
        sp = 2 if seed[0].startswith("wss:") else 1
        prof = {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": seed[0],
                "messageTimeout": int(st.message_timeout_ms() // 1000), "securityProfile": sp,
                "ocppInterface": "Wired0"}
        doc = {"slots": {str(SEED_SLOT): prof}, "last": None, "seed": seed}
        st.store.save(NETDOC, doc)
        st.dm.set(SEC, "SecurityProfile", sp)
        st.dm.set(COMM, "NetworkConfigurationPriority", str(SEED_SLOT))
        return doc

    def save(self):
        self.st.store.save(NETDOC, self.doc)

    def profile(self, slot):
        return self.doc["slots"].get(str(slot))

    def security_profile(self):
        return self.st.dm.get(SEC, "SecurityProfile") or 0

    def usable(self, prof):
        """None when the station can connect with `prof` now, else a reasonCode."""
        sp = prof.get("securityProfile")
        if sp is None or sp < self.security_profile():
            return "ValueTooLow"  # B09.FR.04 / A00.FR.005: no downgrade through OCPP
        if sp >= 2 and self.st.ca_file() is None:
            return "InvalidCertificate"  # A05.FR.02: no CSMS root certificate
        if sp >= 3:
            if not compat.call_lent("firmware.client_cert", "installed", self.st.store):
                return "InvalidCertificate"  # A05.FR.03: no ChargingStationCertificate
        return None

    def check_priority(self, value):
        """dm.check hook for NetworkConfigurationPriority (B10.FR.01/02, A05.FR.02..04)."""
        try:
            slots = _slots(value)
        except ValueError:
            return "InvalidValue"
        if not slots:
            return "InvalidValue"
        for s in slots:
            if s not in SLOTS:
                return "ValueOutOfRange"
            prof = self.profile(s)
            if prof is None:
                return "MissingParam"  # slot without a profile
            r = self.usable(prof)
            if r is not None:
                return r
        return None

    def candidates(self):
        try:
            order = _slots(self.st.dm.get(COMM, "NetworkConfigurationPriority"))
        except ValueError:
            order = []
        out = []
        for s in order:
            prof = self.profile(s)
            if prof is not None and self.usable(prof) is None:
                out.append((s, prof))
        last = self.doc.get("last")
        if last and not [1 for c in out if c[1] == last[1]] and self.usable(last[1]) is None:
            out.append((last[0], last[1]))
        return out

    def connected(self, slot, prof):
        st = self.st
        if slot is not None:
            st.dm.set(COMM, "ActiveNetworkProfile", slot)
        changed = self.doc.get("last") != [slot, prof]
        self.doc["last"] = [slot, prof]
        sp = prof.get("securityProfile") or 0
        if sp > self.security_profile():
            # A05.FR.06: the higher profile works; forget the weaker ones for good.
            st.dm.set(SEC, "SecurityProfile", sp)
            slots = self.doc["slots"]
            for k in list(slots):
                if (slots[k].get("securityProfile") or 0) < sp:
                    del slots[k]
            try:
                keep = [x for x in _slots(st.dm.get(COMM, "NetworkConfigurationPriority"))
                        if str(x) in slots]
            except ValueError:
                keep = []
            if slot is not None and slot not in keep:
                keep.insert(0, slot)
            st.dm.set(COMM, "NetworkConfigurationPriority", ",".join(str(x) for x in keep))
            st.security_event("ReconfigurationOfSecurityParameters",
                              "SecurityProfile raised to %d" % sp)
            changed = True
        if changed:
            self.save()


class Block:
    def __init__(self, station):
        self.st = station
        saved = station.store.load("boot.json") or {}
        self.reason = saved.get("reason") or "PowerUp"
        self._boot_now = compat.asyncio.Event()
        self._triggered = False  # the next BootNotification answers a TriggerMessage
        self._hb_changed = compat.asyncio.Event()
        self._booting = False
        self.reset_scheduled = None  # Reset type waiting for "idle" (B12.FR.01)
        self._resetting = False
        self.net = station.net = NetProfiles(station)
        station.dm.check(COMM, "NetworkConfigurationPriority", self.net.check_priority)
        station.on("connected", self._on_connected)
        station.on("start", self._on_start)
        station.on("idle", self._on_idle)
        station.dm.on_change(self._on_var)
        station.rpc.register("Reset", self.reset)

    def _on_start(self):
        self.st.security_event("StartupOfTheDevice", "boot reason " + self.reason)
        self.st.spawn(self._heartbeat_loop())

    def _on_var(self, component, variable, value):
        if component == COMM and variable == "HeartbeatInterval":
            self._hb_changed.set()
        elif component == SEC and variable == "BasicAuthPassword":
            # A01: reconnect with the new password once the SetVariablesResponse is out.
            self.st.spawn(self._reconnect_soon())

    async def _reconnect_soon(self):
        await compat.sleep_ms(200)
        await self.st.reconnect()

    # ---------------------------------------------------------------- B11/B12
    def reset(self, payload):
        kind = payload.get("type")
        if payload.get("evseId") is not None:
            # B11.FR.09 / B12.FR.09: EVSEs cannot be reset on their own here.
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        if self._resetting:
            return {"status": "Accepted"}
        if kind == "OnIdle" and not self.st.idle():
            self.reset_scheduled = kind
            log.info("boot", "Reset OnIdle scheduled until the station is idle")

            async def scheduled():  # B12 3a: availability makes free EVSEs Unavailable
                self.st.emit("reset_scheduled")

            return {"status": "Scheduled"}, scheduled

        async def after():
            await self.do_reset(kind)

        return {"status": "Accepted"}, after

    def _on_idle(self, *args):
        if self.reset_scheduled and not self._resetting and self.st.idle():
            kind = self.reset_scheduled
            self.reset_scheduled = None
            self.st.spawn(self.do_reset(kind, "ScheduledReset"))  # TC_B_21 boot reason

    async def do_reset(self, kind, reason="RemoteReset"):
        """Reboot for a Reset. Listeners of the station event "reset" get `kind`
        ("Immediate" or "OnIdle") first and may return a coroutine that ends transactions
        (stoppedReason ImmediateReset) and queues their TransactionEvent(Ended); the reboot
        waits for those coroutines up to RESET_HOOK_MS. Persisted state is kept as is."""
        if self._resetting:
            return
        self._resetting = True
        st = self.st
        await st.emit_wait("reset", RESET_HOOK_MS, kind)
        await compat.sleep_ms(50)  # let the last frames leave
        st.reboot(reason)

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
        return {"reason": "Triggered" if self._triggered else self.reason, "chargingStation": cs}

    def boot_now(self):
        """TriggerMessage(BootNotification) while Pending or Rejected: send one now, before
        the interval is over, with reason Triggered."""
        self._triggered = True
        self._boot_now.set()

    async def _boot_loop(self):
        st = self.st
        self._booting = True
        try:
            while st.running and st.connected and st.boot_status != "Accepted":
                wait_s = DEFAULT_RETRY_S
                payload = self.boot_payload()
                # cleared before the call, not after its reply: a trigger that arrives while
                # this BootNotification is outstanding must send the next one at once
                self._triggered = False
                self._boot_now.clear()
                try:
                    resp = await st.call("BootNotification", payload, wait_online=False)
                except Offline:
                    return
                except (CallError, compat.TimeoutError) as e:
                    log.warn("boot", "BootNotification failed: %r" % (e,))
                else:
                    # all of it before the next await: the CSMS's next CALL may already be
                    # read and is handled as soon as this task awaits (see rpc.py)
                    adopt_time(resp, st)
                    status = resp["status"]
                    interval = resp.get("interval", 0)
                    log.info("boot", "BootNotification %s (interval %s)" % (status, interval))
                    if status == "Accepted":
                        if interval > 0:
                            st.dm.set(COMM, "HeartbeatInterval", interval)
                        st.store.remove("boot.json")
                        st.set_boot_status(status)
                        return
                    st.set_boot_status(status)
                    if interval > 0:
                        wait_s = interval
                try:
                    await compat.wait_for_ms(self._boot_now.wait(), int(wait_s * 1000))
                except compat.TimeoutError:
                    pass
        finally:
            self._booting = False

    async def heartbeat(self):
        resp = await self.st.call("Heartbeat", {}, wait_online=False)
        adopt_time(resp, self.st)

    async def _heartbeat_loop(self):
        st = self.st
        while True:
            interval = st.dm.get(COMM, "HeartbeatInterval") or 0
            self._hb_changed.clear()
            if interval <= 0:
                await self._hb_changed.wait()  # heartbeats off until the interval changes
                continue
            try:
                await compat.wait_for_ms(self._hb_changed.wait(), int(interval * 1000))
                continue  # interval changed: restart the period
            except compat.TimeoutError:
                pass
            if not st.online():
                continue
            try:
                await self.heartbeat()
            except (Offline, CallError, compat.TimeoutError) as e:
                log.warn("boot", "Heartbeat failed: %r" % (e,))
