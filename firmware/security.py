# Security block (OCPP 2.0.1 part 2, A04 and the security-log side of A00/A01/A05).
#
# station.security_event(type, tech_info) writes every event to a bounded security log on
# flash and queues the critical ones (appendix "Security events") as SecurityEventNotification
# in the persistent outbox, so they reach the CSMS in order after a reconnect or reboot.
#
# The log is a ring of two journals of at most LOG_BYTES each: when the current one is full
# the older one is deleted and writing continues in it, so flash use never exceeds
# 2 * LOG_BYTES and the newest LOG_BYTES are always kept. Never pass secrets as tech_info.
import json

from firmware import compat, log, storage

LOG_FILES = ("seclog.0.jnl", "seclog.1.jnl")
LOG_BYTES = 8192
MAX_TECH_INFO = 255  # SecurityEventNotificationRequest.techInfo maxLength
MAX_TYPE = 50

# Appendix 1 (security_events.csv), Critical = Yes.
CRITICAL = (
    "FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
    "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated",
    "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate", "InvalidCsmsCertificate",
    "InvalidChargingStationCertificate", "InvalidTLSVersion", "InvalidTLSCipherSuite",
    "MaintenanceLoginAccepted", "MaintenanceLoginFailed",
)

RENEW_BEFORE_S = 30 * 86400  # A03.FR.02: "will expire in one month"
DAY_S = 86400

# passwordString (part 2, 2.1.x primitive types): these characters only.
_PW_SPECIAL = "*-_=:+|@."


def password_reason(value):
    """None when `value` is a valid BasicAuthPassword (A00.FR.205), else a reasonCode."""
    for ch in value:
        if not (("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch in _PW_SPECIAL):
            return "InvalidValue"
    return None


class Block:
    def __init__(self, station):
        self.st = station
        # Each journal starts with a ["#", generation] record; the newer one is written to.
        g0, g1 = self._generation(0), self._generation(1)
        self._cur = 1 if g1 > g0 else 0
        self._gen = max(g0, g1, 0)
        self._size = station.store.size(LOG_FILES[self._cur])
        station.dm.check("SecurityCtrlr", "BasicAuthPassword", password_reason)
        station.dm.provide("SecurityCtrlr", "CertificateEntries", self._cert_entries)
        station.dm.on_change(self._on_var)
        station.on("console", self._console)
        # A02.FR.17-20: the SignCertificateRequest resend timer (station_cert is on demand)
        self._csr_task = None
        station.on("csr_accepted", self._csr_accepted)
        station.on("csr_new", self._csr_stop)
        station.on("csr_done", self._csr_stop)
        # A03.FR.02: renew the station certificate a month before it expires
        self._renew_task = None
        self._switch_task = None  # A02.FR.08: reconnect once a future-dated certificate is valid
        station.on("boot_accepted", self._renew_watch)
        station.on("cert_installed", self._cert_installed)

    def _on_var(self, component, variable, value):
        # A01: a new BasicAuthPassword is recorded without its value.
        if component == "SecurityCtrlr" and variable == "BasicAuthPassword":
            self.event("ReconfigurationOfSecurityParameters", "BasicAuthPassword changed")

    def _cert_entries(self, evse, connector):
        # counted from the certificate index (firmware.cert_store) whenever it is read
        return compat.call_lent("firmware.cert_store", "count", self.st.store)

    # ---------------------------------------------------------------- A02.FR.17-20
    def _csr_accepted(self):
        if self._csr_task is None:
            self._csr_task = self.st.spawn(self._csr_resend())

    def _csr_stop(self):
        t, self._csr_task = self._csr_task, None
        if t is not None:
            t.cancel()

    async def _csr_resend(self):
        try:  # inside: an import that fails after borrowing gives back what it borrowed
            from firmware import csr_resend  # only while a CSR waits for its certificate
            await csr_resend.resend(self.st)
        finally:
            csr_resend = None
            compat.unload("firmware.csr_resend")
        self._csr_task = None  # done (a cancelled task never gets here)

    def _cert_installed(self, not_before):
        self._watch_switch(not_before)
        self._renew_watch()

    def _watch_switch(self, not_before):
        t, self._switch_task = self._switch_task, None
        if t is not None:
            t.cancel()  # a newer certificate came: its own time counts
        self._switch_task = self.st.spawn(self._switch_at(not_before))

    async def _switch_at(self, not_before):
        """A02.FR.08: reconnect with the new station certificate once it is valid."""
        await compat.sleep_ms(200)  # the CertificateSignedResponse first
        while True:
            wait = not_before - compat.now()
            if wait <= 0:
                break
            await compat.sleep_ms(int(min(wait, 3600) * 1000) + 50)  # bounded: ESP32 small ints
        self._switch_task = None
        log.info("cert", "reconnecting with the new station certificate")
        await self.st.reconnect()

    def _renew_watch(self, *args):
        t, self._renew_task = self._renew_task, None
        if t is not None:
            t.cancel()
        self._renew_task = self.st.spawn(self._renew_loop())

    async def _renew_loop(self):
        st = self.st
        idx = _cert_index(st.store)
        if (idx.get("cur") is not None and (idx.get("from") or 0) > compat.now()
                and self._switch_task is None):
            # a certificate valid from a later date, installed before a reboot: the timer
            # that switches to it did not survive the boot (A02.FR.08)
            self._watch_switch(idx["from"])
        while True:
            idx = _cert_index(st.store)
            until = idx.get("until")
            wait = DAY_S
            # a pending CSR the CSMS never answered (resends given up, or a reboot lost
            # the timer) holds the renewal back for a day, not until the certificate expires
            asked = (idx.get("asked") or 0) if idx.get("pending") is not None else None
            if (idx.get("cur") is not None and until is not None
                    and (asked is None or compat.now() - asked >= DAY_S)):
                left = until - compat.now()
                if left > RENEW_BEFORE_S:
                    wait = min(left - RENEW_BEFORE_S, DAY_S)
                elif st.dm.get("SecurityCtrlr", "OrganizationName"):
                    log.info("cert", "station certificate expires %s: renewing it (A03)"
                             % compat.iso8601(until))
                    blk = st.borrow("station_cert")
                    try:
                        await blk.request()
                    except MemoryError:
                        # the key generation did not fit: tried again in a day. Left to the
                        # task guard it would reboot, and the renewal after the boot would
                        # reboot again, every boot
                        compat.collect()
                        log.error("cert", "out of memory renewing the station certificate: "
                                  "retried in a day")
                    finally:
                        blk = None  # this task lives on: it must not keep the block
                        st.release("station_cert")
            await compat.sleep_ms(int(wait * 1000))

    # ---------------------------------------------------------------- events
    def event(self, kind, tech_info=None):
        ts = compat.iso8601()
        kind = kind[:MAX_TYPE]
        if tech_info is not None:
            tech_info = str(tech_info)[:MAX_TECH_INFO]
        self._append([ts, kind, tech_info])
        log.info("security", "%s%s" % (kind, "" if tech_info is None else ": " + tech_info))
        if kind in CRITICAL:
            payload = {"type": kind, "timestamp": ts}
            if tech_info:
                payload["techInfo"] = tech_info
            try:
                self.st.queue.put("SecurityEventNotification", payload)
            except Exception as e:  # outbox full: the event stays in the log
                log.exc("security", "cannot queue %s" % kind, e)

    def _generation(self, i):
        try:
            with open(self.st.store.path(LOG_FILES[i])) as f:
                rec = json.loads(f.readline())
            return rec[1] if rec[0] == "#" else -1
        except (OSError, ValueError, IndexError, TypeError, KeyError):
            return -1

    def _append(self, rec):
        line = storage.line(rec)
        store = self.st.store
        try:
            if self._size == 0 or self._size + len(line) > LOG_BYTES:
                if self._size:
                    self._cur ^= 1
                    self._gen += 1
                store.remove(LOG_FILES[self._cur])
                store.append(LOG_FILES[self._cur], ["#", self._gen])
                self._size = store.size(LOG_FILES[self._cur])
            store.append_raw(LOG_FILES[self._cur], line)
        except OSError as e:
            log.exc("security", "security log write failed", e)
            return
        self._size += len(line)

    def records(self, n=20):
        """The newest n log records, oldest first, as [timestamp, type, techInfo]."""
        out = []
        older = self._cur ^ 1
        for i in (older, self._cur):
            for rec in self.st.store.records(LOG_FILES[i]):
                if rec and rec[0] == "#":
                    continue
                out.append(rec)
                if len(out) > n:
                    out.pop(0)
        return out

    def log_paths(self):
        """The security log's journals that hold records, oldest first (GetLog, N01.FR.03)."""
        store = self.st.store
        return [store.path(LOG_FILES[i]) for i in (self._cur ^ 1, self._cur)
                if store.size(LOG_FILES[i])]

    # ---------------------------------------------------------------- console
    def _console(self, console):
        console.commands["seclog"] = self._cmd_seclog
        console.syntax["seclog"] = "seclog [N]"

    def _cmd_seclog(self, args):
        try:
            n = int(args[0]) if args else 20
        except ValueError:
            n = 20
        return {"records": self.records(max(1, min(n, 100)))}


def _cert_index(store):
    # a daily look at the station certificate's index: the module is not kept resident for it
    return compat.call_lent("firmware.client_cert", "load", store)
