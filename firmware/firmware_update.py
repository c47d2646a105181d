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
#
# Resident here: the slot pointer, the trial boot and its commit, the request's entry point.
# The update itself (firmware.fw_job, with the bundle, crypto and HTTP modules it imports)
# is loaded for a request or an update to resume and dropped when the update has ended.
import sys

from firmware import compat, log

DOC = "fw.json"
SLOT_DOC = "fw_slot.json"
SLOTS = ("fw_a", "fw_b")
MAX_TRIAL_BOOTS = 3
TRIAL_S = 600
ENDS = ("DownloadFailed", "InvalidSignature", "InstallVerificationFailed",
        "InstallationFailed", "Installed")
# imported by the job, dropped with it unless they were loaded before (another block's)
JOB_MODULES = ("firmware.fw_job", "firmware.fw_bundle", "firmware.x509", "firmware.asn1",
               "firmware.sha512", "firmware.ecdsa", "firmware.rsa", "firmware.cert_store",
               "firmware.http_client", "firmware.net")


class Block:
    def __init__(self, station):
        self.st = station
        self.store = station.store
        self.fw = self.store.load(DOC)   # the update in progress or the last one
        self.slots = self.store.load(SLOT_DOC) or {"active": None, "version": None,
                                                   "trial": None, "boots": 0}
        self.job = None   # firmware.fw_job.Job while an update runs
        self.task = None  # the job's task
        self._kept = ()
        self._trial_task = None
        self._boot_trial()
        s = self.slots
        v = s.get("trial_version") if s.get("trial") else s.get("version")
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

    def pending(self):
        return bool(self.fw) and self.fw.get("st") not in ENDS

    # ---------------------------------------------------------------- life cycle
    def _on_start(self):
        if self.slots.get("trial"):
            self._trial_task = self.st.spawn(self._trial_timer())
        elif self.pending():
            self.load_job().resume()

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
        if self.pending():
            self.load_job().installed()

    async def _trial_timer(self):
        await compat.sleep_ms(TRIAL_S * 1000)
        if self.slots.get("trial"):
            log.warn("fw", "no Accepted BootNotification in %d s: rolling back" % TRIAL_S)
            self.slots["trial"] = None
            self.store.save(SLOT_DOC, self.slots)
            self.st.reboot("FirmwareUpdate")

    def idle(self):
        """Reset(OnIdle) waits while an update runs (B12)."""
        return self.task is None or self.task.done()

    def trigger(self):
        """FirmwareStatusNotification for TriggerMessage (L01.FR.25/26)."""
        fw = self.fw
        if not fw or fw.get("st") in (None, "Installed"):
            return {"status": "Idle"}
        return {"status": fw["st"], "requestId": fw["id"]}

    # ---------------------------------------------------------------- the job
    def update_firmware(self, payload):
        had = self.job is not None
        r = self.load_job().request(payload)
        resp = r[0] if isinstance(r, tuple) else r
        if not had and resp["status"] not in ("Accepted", "AcceptedCanceled"):
            self.drop_job()  # refused: nothing runs
        return r

    def load_job(self):
        if self.job is None:
            self._kept = [m for m in JOB_MODULES if m in sys.modules]
            from firmware import fw_job
            self.job = fw_job.Job(self)
        return self.job

    def drop_job(self):
        """The update ended: its code leaves the heap."""
        self.job = None
        self.task = None
        for m in JOB_MODULES:
            if m not in self._kept:
                compat.unload(m)
