# The running firmware update of firmware.firmware_update (see there): request checks,
# download, signature check, installation and the status reports, loaded only while an
# update is in progress. State lives in the block (fw, slots) and in the data directory.
from firmware import compat, log
from firmware.rpc import status_info
from firmware.firmware_update import DOC, SLOT_DOC, SLOTS, ENDS

MAX_TRIAL_BOOTS = 3
TRIAL_S = 600

CERT = "fw_cert.pem"
DL = "fw_dl.bin"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_S = 30
DOWNLOAD_TIMEOUT_MS = 30000
MAX_INSTALL_ATTEMPTS = 2  # a cut installation is redone once, then given up
RESERVE_BYTES = 32768  # flash a download leaves free for the journals and the outbox
HTTP = "firmware.http_client"
_DOWNLOAD = (None, "DownloadScheduled", "Downloading", "DownloadPaused")
# the bundle and crypto modules, only needed during one step of the update: borrowed
# (counted, not imported: compat.borrow_all) around it, so what the step imports goes after
# it unless another user (the certificates or station_cert block) still has it
STEP = ("firmware.fw_bundle", "firmware.x509", "firmware.asn1", "firmware.sha512",
        "firmware.ecdsa", "firmware.rsa", "firmware.cert_store")


class Job:
    def __init__(self, block):
        self.b = block
        self.st = block.st
        self.store = block.store
        self.hold = False
        self._trial_task = None

    @property
    def fw(self):
        return self.b.fw

    # ---------------------------------------------------------------- trial of a new bundle
    def trial_boot(self):
        """A start of the bundle being tried: counted; too many without an Accepted
        BootNotification and the pointer goes back to the previous bundle."""
        s = self.b.slots
        if not getattr(self.st.board, "slot_counted", False):  # board/slot.py counted it
            s["boots"] = (s.get("boots") or 0) + 1
        ota = getattr(self.st.board, "ota", None)
        if s.get("image") and ota is not None and ota.running() != s["image"]:
            log.warn("fw", "the bootloader did not start image %s: rolled back" % s["image"])
            s["trial"] = None
            s["image"] = None
        elif s["boots"] > MAX_TRIAL_BOOTS:
            log.warn("fw", "bundle %s never reached an Accepted boot: rolling back"
                     % s.get("trial_version"))
            s["trial"] = None
            s["image"] = None
        self.store.save(SLOT_DOC, s)
        if not s["trial"] and not self.b.pending():
            self.b.drop_job()

    def watch_trial(self):
        self._trial_task = self.st.spawn(self._trial_timer())

    async def _trial_timer(self):
        await compat.sleep_ms(TRIAL_S * 1000)
        s = self.b.slots
        if s.get("trial"):
            log.warn("fw", "no Accepted BootNotification in %d s: rolling back" % TRIAL_S)
            # a session charging offline meanwhile ends first: the rollback reboot opens
            # the relays, it must not cut a car off
            while self._tx_busy() and s.get("trial"):
                await compat.sleep_ms(10000)
            if not s.get("trial"):
                return  # accepted while the session ran
            s["trial"] = None
            s["image"] = None
            self.store.save(SLOT_DOC, s)
            self.st.reboot("FirmwareUpdate")

    def commit(self):
        """The new bundle's BootNotification was Accepted: it becomes the active one."""
        s = self.b.slots
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
        if self.b.pending():
            self.installed()
        else:
            self.b.drop_job()

    def resume(self):
        """At start-up: an update the power cut or reboot interrupted."""
        fw = self.fw
        if fw.get("slot") and fw.get("st") == "Installing":
            # the slot is saved just before the switch. No trial runs now (resume is not
            # called during one): the pointer naming it as active means the new bundle was
            # tried and committed and a second cut came before its Installed; otherwise the
            # switch did not happen (or was rolled back) and the installation runs again
            # (without the download, which goes after the switch, it ends InstallationFailed)
            if self.b.slots.get("active") == fw["slot"]:
                self.installed()
                return
            fw["slot"] = None
        if fw.get("st") == "InstallRebooting":
            # the reboot happened, no trial is running: it was committed or rolled back
            if fw.get("slot") and self.b.slots.get("active") == fw.get("slot"):
                self.installed()
            else:
                self._end("InstallationFailed", "the new bundle did not start")
            return
        self.b.task = self.st.spawn(self._run())

    def installed(self):
        self._end("Installed")
        self.st.security_event("FirmwareUpdated", "version %s" % (self.b.slots.get("version"),))

    def _inactive(self):
        cur = self.b.slots.get("active")
        return SLOTS[1] if cur == SLOTS[0] else SLOTS[0]

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
        for name in (DL, DL + ".v", CERT):  # first: on a full flash the saves need the room
            self.store.remove(name)
        self._report(status)
        self.b.fw = {"id": self.fw["id"], "st": status}  # what TriggerMessage repeats
        self.store.save(DOC, self.b.fw)
        self._release()
        self.b.drop_job()
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

    # ---------------------------------------------------------------- L01 request
    def request(self, p):
        f = p["firmware"]
        cert, sig = f.get("signingCertificate"), f.get("signature")
        if not cert or not sig:
            # TC_L_18: a station with secure firmware update takes no unsigned firmware
            return status_info("Rejected", "InvalidValue", "signingCertificate and signature required")
        try:
            rt = compat.parse_iso8601(f["retrieveDateTime"])
            it = compat.parse_iso8601(f["installDateTime"]) if f.get("installDateTime") else None
        except ValueError:
            return status_info("Rejected", "InvalidValue", "unreadable date")
        compat.borrow_all(STEP)
        try:
            why = self._check_cert(cert)
        finally:
            compat.release_all(STEP)
        if why:
            log.warn("fw", "UpdateFirmware %s: signing certificate refused: %s" % (p["requestId"], why))

            async def report():  # L01.FR.02, after the response (L01 step 3)
                self.st.security_event("InvalidFirmwareSigningCertificate", why)
            return status_info("InvalidCertificate", "InvalidCertificate", why), report
        if self.b.slots.get("trial"):
            # a new bundle is being tried (not Accepted yet): installing now would overwrite
            # the slot the old code runs from if it rolls back, and the commit would report
            # this request Installed
            return status_info("Rejected", "Unspecified", "a new firmware is on trial")
        running = self.b.task is not None and not self.b.task.done()
        if running and self.fw.get("st") == "InstallRebooting":
            return status_info("Rejected", "Unspecified", "installed, rebooting")  # L01.FR.27
        if running:
            self.b.task.cancel()  # L01.FR.24
            self._release()
            log.info("fw", "request %s canceled by request %s" % (self.fw["id"], p["requestId"]))
        old = self.b.task if running else None
        compat.borrow_all(STEP)
        try:
            from firmware.cert_store import write_file
            write_file(self.store, CERT, cert)
        finally:
            compat.release_all(STEP)
        self.b.fw = {"id": p["requestId"], "loc": f["location"], "rt": rt, "it": it,
                   "retries": p.get("retries"), "interval": p.get("retryInterval"),
                   "sig": sig, "st": None, "tries": 0, "inst": 0}
        self.store.save(DOC, self.fw)  # before the response: a power cut keeps the request

        async def start():
            while old is not None and not old.done():
                await compat.sleep_ms(10)  # the canceled task has let go of the download
            self.store.remove(DL)
            self.b.task = self.st.spawn(self._run())
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
        while True:
            await self._wait_install()
            self._hold()
            if not self._tx_busy():
                break  # no session started between the wait and the hold (L01.FR.33)
            self._release()  # a session started meanwhile: free EVSEs as the setting says
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
            if fw.get("tries", 0) > retries:
                # the last attempt never came back (out of memory: a reboot): counted before
                # it started, so repeated reboots end the update instead of looping
                self._end("DownloadFailed", "download: %d attempts" % fw["tries"])
                return False
            if fw["st"] != "Downloading":
                self._report("Downloading")
            fw["tries"] = fw.get("tries", 0) + 1
            self.store.save(DOC, fw)
            http_client = compat.borrow(HTTP)  # shared with a GetLog upload
            try:
                size = await http_client.download(fw["loc"], self.store.path(DL),
                                                  cafile=self.st.ca_file(), resume=True,
                                                  timeout_ms=DOWNLOAD_TIMEOUT_MS,
                                                  max_bytes=self._room())
                log.info("fw", "downloaded %d bytes" % size)
                break
            except MemoryError:
                raise
            except Exception as e:  # HttpError, OSError, a timeout (not a cancel)
                if type(e).__name__ == "HttpTooLarge":
                    self._end("DownloadFailed", "download: %s" % (e,))  # retrying cannot help
                    return False
                if fw["tries"] > retries:
                    self._end("DownloadFailed", "download: %s" % (e,))  # L01.FR.30
                    return False
                log.warn("fw", "download failed (%d/%d): %s; retry in %d s"
                         % (fw["tries"], retries + 1, e, interval))
                if type(e).__name__ == "HttpBadResponse":
                    self.store.remove(DL)  # not resumable: the next attempt starts over
            finally:
                compat.release(HTTP)
            await self._sleep_until(compat.now() + interval)
        self._report("Downloaded")
        return True

    async def _verify(self):
        fw = self.fw
        fw["ver"] = fw.get("ver", 0) + 1
        if fw["ver"] > MAX_INSTALL_ATTEMPTS:  # the check itself never finished (out of memory)
            self._end("InvalidSignature", "the signature check did not complete")
            return False
        self.store.save(DOC, fw)
        compat.borrow_all(STEP)
        try:
            from firmware import fw_bundle
            from firmware.cert_store import read_file
            digest = await fw_bundle.file_sha256(self.store.path(DL))
            cert = read_file(self.store, CERT)
            ok = cert is not None and fw_bundle.signature_ok(cert, fw["sig"], digest)
        finally:
            compat.release_all(STEP)
        if not ok:
            self._end("InvalidSignature", "signature does not match the downloaded file")
            self.st.security_event("InvalidFirmwareSignature",
                                   "request %s, %s" % (fw["id"], fw["loc"][:120]))  # L01.FR.03
            return False
        self._report("SignatureVerified")
        return True

    def _room(self):
        """Bytes the download may take: half the free space of the data directory (plus what
        an earlier attempt already wrote) less RESERVE_BYTES, which stays for the transaction
        journal and the outbox; half, because the installation unpacks a copy of it into the
        slot. None where the runtime cannot tell."""
        import os
        try:
            v = os.statvfs(self.store.dir)
            free = v[0] * v[4]
        except (AttributeError, OSError, IndexError):
            return None
        have = 0
        try:
            have = os.stat(self.store.path(DL))[6]
        except OSError:
            pass
        return max(0, (free + have - RESERVE_BYTES) // 2)

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
        compat.borrow_all(STEP)
        image = False
        try:
            from firmware import fw_bundle
            try:
                m = await fw_bundle.unpack(self.store.path(DL), self.store.path(slot))
                if m.get("kind") == "esp32-image":
                    ota = getattr(self.st.board, "ota", None)
                    if ota is None:
                        raise OSError("this board has no OTA partition for an esp32-image")
                    image = await ota.write(self.store.path(DL), m)  # its partition
            except fw_bundle.VerifyError as e:
                fw_bundle.remove_tree(self.store.path(slot))
                self._end("InstallVerificationFailed", "%s" % (e,))  # L01.FR.29
                return
            except OSError as e:
                fw_bundle.remove_tree(self.store.path(slot))
                self._end("InstallationFailed", "%s" % (e,))
                return
        finally:
            compat.release_all(STEP)
        if image:
            try:
                # before the switch: if the bootloader refuses the image, the pointer and the
                # slots are as they were and the update ends InstallationFailed
                self.st.board.ota.activate()
            except OSError as e:
                self._end("InstallationFailed", "set_boot: %s" % (e,))
                return
        fw["slot"] = slot
        self.store.save(DOC, fw)  # which slot before the switch: resume() can tell it happened
        s = self.b.slots
        s["trial"] = slot
        s["trial_version"] = m["version"]
        s["boots"] = 0
        s["image"] = image
        self.store.save(SLOT_DOC, s)  # the switch
        self.store.remove(DL)
        self._report("InstallRebooting")  # L01.FR.15 / L01.FR.32 (a)
        # let the status leave before the reboot (it is in the outbox either way)
        for _ in range(50):
            if self.st.queue.idle() or not self.st.online():
                break
            await compat.sleep_ms(100)
        self.b.drop_job()  # the new bundle's start finishes the update (Installed)
        self.st.reboot("FirmwareUpdate")
