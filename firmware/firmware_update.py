# Firmware management block (OCPP 2.0.1 part 2, L01 secure firmware update; L02 non-secure
# requests are refused, TC_L_18). UpdateFirmware -> download (http_client) -> signature
# check against the signing certificate, itself checked against the installed
# ManufacturerRootCertificates -> install into the inactive slot -> reboot into it -> the new
# bundle reports Installed once its BootNotification is Accepted, or the slot pointer goes
# back to the old bundle.
#
# Every step is in fw.json (storage.Store, atomic), written after the step's
# FirmwareStatusNotification was queued in the persistent outbox (a power cut repeats a
# status, never loses one): on start-up an unfinished update resumes where it was (the
# download continues with an HTTP Range request, a cut install is redone from the
# downloaded bundle). The slot pointer fw_slot.json is the only thing that switches code:
#   {"active": slot or None (the factory code), "version": its version,
#    "trial": the slot being tried or None, "trial_version": ..., "boots": starts of it}
# It names a new slot only after every file of that slot was checked against the bundle's
# manifest (firmware.fw_bundle), so a start finds the old bundle or the new one, never a mix.
# A trial that was started MAX_TRIAL_BOOTS times, or ran TRIAL_S without an Accepted
# BootNotification, is rolled back (InstallationFailed). On an ESP32 with an OTA partition
# the board's `ota` object takes "esp32-image" bundles and confirms the image
# (mark_app_valid_cancel_rollback) at the same point.
#
# While an installation waits for transactions to end (L01.FR.06), free EVSEs are made
# Unavailable unless ChargingStation.AllowNewSessionsPendingFirmwareUpdate is true
# (L01.FR.07, station event "firmware_hold" read by availability); they are held during the
# installation itself too, and released when it fails.
from firmware import compat, log

DOC = "fw.json"
CERT = "fw_cert.pem"
DL = "fw_dl.bin"
SLOT_DOC = "fw_slot.json"
SLOTS = ("fw_a", "fw_b")
MAX_TRIAL_BOOTS = 3
TRIAL_S = 600
DEFAULT_RETRIES = 2
DEFAULT_RETRY_S = 30
DOWNLOAD_TIMEOUT_MS = 30000
MAX_INSTALL_ATTEMPTS = 2  # a cut installation is redone once, then given up
ENDS = ("DownloadFailed", "InvalidSignature", "InstallVerificationFailed",
        "InstallationFailed", "Installed")
_DOWNLOAD = (None, "DownloadScheduled", "Downloading", "DownloadPaused")
_LAZY = ("firmware.fw_bundle", "firmware.x509", "firmware.asn1", "firmware.sha512",
         "firmware.ecdsa", "firmware.rsa", "firmware.cert_store", "firmware.http_client")


def _status(status, reason=None, info=None):
    r = {"status": status}
    if reason:
        si = {"reasonCode": reason}
        if info:
            si["additionalInfo"] = str(info)[:512]
        r["statusInfo"] = si
    return r


def _drop_lazy(had):
    # the crypto, bundle and HTTP modules are only needed during an update step
    for m in _LAZY:
        if m not in had:
            compat.unload(m)


def _loaded():
    import sys
    return [m for m in _LAZY if m in sys.modules]


class Block:
    def __init__(self, station):
        self.st = station
        self.store = station.store
        self.fw = self.store.load(DOC)
        self.slots = self.store.load(SLOT_DOC) or {"active": None, "version": None,
                                                   "trial": None, "boots": 0}
        self._task = None
        self._trial_task = None
        self.hold = False
        self._boot_trial()
        v = self.slots.get("trial_version") if self.slots.get("trial") else self.slots.get("version")
        if v:
            station.board.firmware_version = v  # BootNotification reports the running bundle
        station.rpc.register("UpdateFirmware", self.update_firmware)
        station.on("start", self._on_start)
        station.on("boot_accepted", self._on_boot_accepted)

    # ---------------------------------------------------------------- slots
    def _boot_trial(self):
        s = self.slots
        if not s.get("trial"):
            return
        s["boots"] = (s.get("boots") or 0) + 1
        if s["boots"] > MAX_TRIAL_BOOTS:
            log.warn("fw", "bundle %s never reached an Accepted boot: rolling back"
                     % s.get("trial_version"))
            s["trial"] = None
        self.store.save(SLOT_DOC, s)

    def active_dir(self):
        """Directory of the bundle this start runs (None: the factory code)."""
        s = self.slots.get("trial") or self.slots.get("active")
        return self.store.path(s) if s else None

    def _inactive(self):
        cur = self.slots.get("active")
        return SLOTS[1] if cur == SLOTS[0] else SLOTS[0]

    # ---------------------------------------------------------------- life cycle
    def _on_start(self):
        fw = self.fw
        if self.slots.get("trial"):
            self._trial_task = self.st.spawn(self._trial_timer())
            return
        if not fw or fw.get("st") in ENDS:
            return
        if fw.get("st") == "InstallRebooting":
            # the reboot happened, no trial is running: it was committed or rolled back
            if self.slots.get("active") == fw.get("slot") and fw.get("slot"):
                self._finish_installed()
            else:
                self._end("InstallationFailed", "the new bundle did not start")
            return
        self._task = self.st.spawn(self._run())

    def _on_boot_accepted(self):
        s = self.slots
        if not s.get("trial"):
            return
        ota = getattr(self.st.board, "ota", None)
        if ota is not None and s.get("image"):
            ota.confirm()  # ESP32: cancel the bootloader's rollback
        s["active"] = s["trial"]
        s["version"] = s.get("trial_version")
        s["trial"] = None
        s["boots"] = 0
        self.store.save(SLOT_DOC, s)
        t, self._trial_task = self._trial_task, None
        if t is not None:
            t.cancel()
        if self.fw and self.fw.get("st") not in ENDS:
            self._finish_installed()

    def _finish_installed(self):
        self._end("Installed")
        self.st.security_event("FirmwareUpdated", "version %s" % (self.slots.get("version"),))

    async def _trial_timer(self):
        await compat.sleep_ms(TRIAL_S * 1000)
        if self.slots.get("trial"):
            log.warn("fw", "no Accepted BootNotification in %d s: rolling back" % TRIAL_S)
            self.slots["trial"] = None
            self.store.save(SLOT_DOC, self.slots)
            self.st.reboot("FirmwareUpdate")

    def idle(self):
        """Reset(OnIdle) waits while an update runs (B12)."""
        return self._task is None or self._task.done()

    # ---------------------------------------------------------------- status
    def _report(self, status):
        fw = self.fw
        log.info("fw", "request %s: %s" % (fw["id"], status))
        try:
            self.st.queue.put("FirmwareStatusNotification", {"status": status, "requestId": fw["id"]})
        except Exception as e:  # outbox full: the document still says where we are
            log.exc("fw", "cannot queue FirmwareStatusNotification %s" % status, e)
        fw["st"] = status
        self.store.save(DOC, fw)

    def _end(self, status, why=None):
        if why:
            log.warn("fw", "request %s: %s" % (self.fw["id"], why))
        self._report(status)
        for name in (DL, CERT):
            self.store.remove(name)
        self._release()
        if status != "Installed" and self.st.idle():
            self.st.emit("idle")

    def _release(self):
        if self.hold:
            self.hold = False
            self.st.emit("firmware_hold", False)

    def _hold(self):
        if not self.hold:
            self.hold = True
            self.st.emit("firmware_hold", True)

    def trigger(self):
        """FirmwareStatusNotification for TriggerMessage (L01.FR.25/26)."""
        fw = self.fw
        if not fw or fw.get("st") in (None, "Installed"):
            return {"status": "Idle"}
        return {"status": fw["st"], "requestId": fw["id"]}

    # ---------------------------------------------------------------- L01 request
    def update_firmware(self, p):
        f = p["firmware"]
        cert, sig = f.get("signingCertificate"), f.get("signature")
        if not cert or not sig:
            # TC_L_18: a station with secure firmware update takes no unsigned firmware
            return _status("Rejected", "InvalidValue", "signingCertificate and signature required")
        try:
            rt = compat.parse_iso8601(f["retrieveDateTime"])
            it = compat.parse_iso8601(f["installDateTime"]) if f.get("installDateTime") else None
        except ValueError:
            return _status("Rejected", "InvalidValue", "unreadable date")
        had = _loaded()
        try:
            why = self._check_cert(cert)
        finally:
            _drop_lazy(had)
        if why:
            log.warn("fw", "UpdateFirmware %s: signing certificate refused: %s" % (p["requestId"], why))

            async def report():  # L01.FR.02, after the response (L01 step 3)
                self.st.security_event("InvalidFirmwareSigningCertificate", why)
            return _status("InvalidCertificate", "InvalidCertificate", why), report
        running = self._task is not None and not self._task.done()
        if running and self.fw.get("st") == "InstallRebooting":
            return _status("Rejected", "Unspecified", "installed, rebooting")  # L01.FR.27
        if running:
            self._task.cancel()  # L01.FR.24
            self._release()
            log.info("fw", "request %s canceled by request %s" % (self.fw["id"], p["requestId"]))
        old = self._task if running else None
        had = _loaded()
        try:
            from firmware.cert_store import write_file
            write_file(self.store, CERT, cert)
        finally:
            _drop_lazy(had)
        self.fw = {"id": p["requestId"], "loc": f["location"], "rt": rt, "it": it,
                   "retries": p.get("retries"), "interval": p.get("retryInterval"),
                   "sig": sig, "st": None, "tries": 0, "inst": 0}
        self.store.save(DOC, self.fw)  # before the response: a power cut keeps the request

        async def start():
            while old is not None and not old.done():
                await compat.sleep_ms(10)  # the canceled task has let go of the download
            self.store.remove(DL)
            self._task = self.st.spawn(self._run())
        return {"status": "AcceptedCanceled" if running else "Accepted"}, start

    def _check_cert(self, pem):
        from firmware import cert_store, fw_bundle
        roots = []
        for e in cert_store.load(self.store)["certs"]:
            if e[1] == "ManufacturerRootCertificate":
                t = cert_store.read_file(self.store, cert_store.cert_name(e[0]))
                if t:
                    roots.append(t)
        return fw_bundle.check_signing_cert(pem, roots, compat.now())

    # ---------------------------------------------------------------- the update
    async def _run(self):
        try:
            await self._steps()
        except MemoryError:
            raise
        except Exception as e:
            log.exc("fw", "firmware update failed", e)
            if self.fw and self.fw.get("st") not in ENDS:
                self._end("InstallationFailed", "%s" % (e,))

    async def _steps(self):
        fw = self.fw
        if fw["st"] in _DOWNLOAD:
            if not await self._download():
                return
        if fw["st"] in ("Downloaded",):
            if not await self._verify():
                return
        await self._wait_install()
        await self._install()

    async def _sleep_until(self, t):
        while True:
            wait = t - compat.now()
            if wait <= 0:
                return
            await compat.sleep_ms(int(min(wait, 3600) * 1000) + 20)  # bounded: ESP32 small ints

    async def _download(self):
        fw = self.fw
        if fw["rt"] > compat.now():
            if fw["st"] != "DownloadScheduled":
                self._report("DownloadScheduled")  # L01.FR.13
            await self._sleep_until(fw["rt"])
        retries = fw["retries"] if fw.get("retries") is not None else DEFAULT_RETRIES
        interval = fw["interval"] if fw.get("interval") is not None else DEFAULT_RETRY_S
        while True:
            if fw["st"] != "Downloading":
                self._report("Downloading")
            had = _loaded()
            try:
                from firmware import http_client
                size = await http_client.download(fw["loc"], self.store.path(DL),
                                                  cafile=self.st.ca_file(), resume=True,
                                                  timeout_ms=DOWNLOAD_TIMEOUT_MS)
                log.info("fw", "downloaded %d bytes" % size)
                break
            except MemoryError:
                raise
            except Exception as e:  # HttpError, OSError, a timeout (not a cancel)
                fw["tries"] = fw.get("tries", 0) + 1
                self.store.save(DOC, fw)
                if fw["tries"] > retries:
                    self._end("DownloadFailed", "download: %s" % (e,))  # L01.FR.30
                    return False
                log.warn("fw", "download failed (%d/%d): %s; retry in %d s"
                         % (fw["tries"], retries + 1, e, interval))
                if isinstance(e, ValueError):
                    self.store.remove(DL)  # not resumable (e.g. a changed file)
            finally:
                _drop_lazy(had)
            await compat.sleep_ms(int(interval * 1000))
        self._report("Downloaded")
        return True

    async def _verify(self):
        fw = self.fw
        had = _loaded()
        try:
            from firmware import fw_bundle
            from firmware.cert_store import read_file
            digest = await fw_bundle.file_sha256(self.store.path(DL))
            cert = read_file(self.store, CERT)
            ok = cert is not None and fw_bundle.signature_ok(cert, fw["sig"], digest)
        finally:
            _drop_lazy(had)
        if not ok:
            self._end("InvalidSignature", "signature does not match the downloaded file")
            self.st.security_event("InvalidFirmwareSignature",
                                   "request %s, %s" % (fw["id"], fw["loc"][:120]))  # L01.FR.03
            return False
        self._report("SignatureVerified")
        return True

    def _tx_busy(self):
        tx = self.st.blocks.get("transactions")
        return tx is not None and not tx.idle()

    async def _wait_install(self):
        fw = self.fw
        it = fw.get("it")
        if it is not None and it > compat.now():
            if fw["st"] != "InstallScheduled":
                self._report("InstallScheduled")  # L01.FR.16
            await self._sleep_until(it)
        if self._tx_busy():
            if fw["st"] != "InstallScheduled":
                self._report("InstallScheduled")  # L01.FR.34
            if not self.st.dm.get("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate"):
                self._hold()  # L01.FR.07
            while self._tx_busy():  # L01.FR.06
                await compat.sleep_ms(500)

    async def _install(self):
        fw = self.fw
        self._hold()
        fw["inst"] = fw.get("inst", 0) + 1
        if fw["inst"] > MAX_INSTALL_ATTEMPTS:
            self._end("InstallationFailed", "installation was cut %d times" % (fw["inst"] - 1))
            return
        self._report("Installing")
        slot = self._inactive()
        had = _loaded()
        image = False
        try:
            from firmware import fw_bundle
            try:
                m = await fw_bundle.unpack(self.store.path(DL), self.store.path(slot))
                if m.get("kind") == "esp32-image":
                    ota = getattr(self.st.board, "ota", None)
                    if ota is None:
                        raise OSError("this board has no OTA partition for an esp32-image")
                    await ota.write(self.store.path(DL), m)
                    image = True
            except fw_bundle.VerifyError as e:
                fw_bundle.remove_tree(self.store.path(slot))
                self._end("InstallVerificationFailed", "%s" % (e,))  # L01.FR.29
                return
            except OSError as e:
                fw_bundle.remove_tree(self.store.path(slot))
                self._end("InstallationFailed", "%s" % (e,))
                return
        finally:
            _drop_lazy(had)
        s = self.slots
        s["trial"] = slot
        s["trial_version"] = m["version"]
        s["boots"] = 0
        s["image"] = image
        self.store.save(SLOT_DOC, s)  # the switch
        fw["slot"] = slot
        self.store.remove(DL)
        self._report("InstallRebooting")  # L01.FR.15 / L01.FR.32 (a)
        if image:
            self.st.board.ota.activate()
        # let the status leave before the reboot (it is in the outbox either way)
        for _ in range(50):
            if self.st.queue.idle() or not self.st.online():
                break
            await compat.sleep_ms(100)
        self.st.reboot("FirmwareUpdate")
