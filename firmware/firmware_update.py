# Firmware management block (OCPP 2.0.1 part 2, L01 secure firmware update; L02 non-secure
# requests are refused, TC_L_18). UpdateFirmware -> download (http_client) -> signature
# check against the signing certificate, itself checked against the installed
# ManufacturerRootCertificates -> install into the inactive slot -> reboot into it -> the new
# bundle reports Installed once its BootNotification is Accepted, or the slot pointer goes
# back to the old bundle.
#
# Every step is in fw.json (storage.Store, atomic), written after the step's
# FirmwareStatusNotification was queued in the persistent outbox (a power cut repeats a
# status, never loses one, except the optional InstallRebooting when the cut falls between
# the slot switch and its report, L01.FR.32 (b)): on start-up an unfinished update resumes where it was (the
# download continues with an HTTP Range request, a cut install is redone from the
# downloaded bundle). The slot pointer fw_slot.json is the only thing that switches code:
#   {"active": slot or None (the factory code), "version": its version,
#    "trial": the slot being tried or None, "trial_version": ..., "boots": starts of it}
# It names a new slot only after every file of that slot was checked against the bundle's
# manifest (firmware.fw_bundle), so a start finds the old bundle or the new one, never a mix.
# A trial that was started fw_job.MAX_TRIAL_BOOTS (3) times (counted by board/slot.py on a
# board, by fw_job on the host), or ran fw_job.TRIAL_S (600 s) without an Accepted
# BootNotification, is rolled back (InstallationFailed). On an ESP32 with an OTA partition
# the board's `ota` object takes "esp32-image" bundles and confirms the image
# (mark_app_valid_cancel_rollback) at the same point.
#
# While an installation waits for transactions to end (L01.FR.06), free EVSEs are made
# Unavailable unless ChargingStation.AllowNewSessionsPendingFirmwareUpdate is true
# (L01.FR.07, station event "firmware_hold" read by availability); they are held during the
# installation itself too, and released when it fails.
#
# Resident here: the slot pointer, the version it reports, the request's entry point. The
# update itself and the trial boot (firmware.fw_job, with the bundle, crypto and HTTP modules
# it borrows) load for a request, an update to resume or a bundle on trial, and are dropped
# when that has ended. On a board, boot.py runs the slot's code (board/slot.py); the
# simulator only reports the slot's version and keeps running the repository's code.
from firmware import compat, log

DOC = "fw.json"
SLOT_DOC = "fw_slot.json"
SLOTS = ("fw_a", "fw_b")
ENDS = ("DownloadFailed", "InvalidSignature", "InstallVerificationFailed",
        "InstallationFailed", "Installed")
JOB = "firmware.fw_job"  # borrowed while a job exists (compat.borrow)


class Block:
    def __init__(self, station):
        self.st = station
        self.store = station.store
        self.fw = self.store.load(DOC)   # the update in progress, or {"id", "st"} of the last
        self.slots = self.store.load(SLOT_DOC) or {"active": None, "version": None, "trial": None}
        self.job = None   # firmware.fw_job.Job while an update runs or a new bundle is tried
        self.task = None  # the job's task
        if self.slots.get("trial"):
            self.load_job().trial_boot()  # may roll back to the previous bundle
        s = self.slots
        v = s.get("trial_version") if s.get("trial") else s.get("version")
        if v:
            station.board.firmware_version = v  # BootNotification reports the running bundle
        station.rpc.register("UpdateFirmware", self.update_firmware)
        station.on("start", self._on_start)
        station.on("boot_accepted", self._on_boot_accepted)

    def active_dir(self):
        """Directory of the bundle this start runs (None: the factory code)."""
        s = self.slots.get("trial") or self.slots.get("active")
        return self.store.path(s) if s else None

    def pending(self):
        return bool(self.fw) and self.fw.get("st") not in ENDS

    def _on_start(self):
        if self.slots.get("trial"):
            self.load_job().watch_trial()
        elif self.pending():
            self.load_job().resume()

    def _on_boot_accepted(self):
        if self.slots.get("trial"):
            self.load_job().commit()

    def idle(self):
        """Reset(OnIdle) waits while an update runs (B12)."""
        return self.task is None or self.task.done()

    def trigger(self):
        """FirmwareStatusNotification for TriggerMessage (L01.FR.25/26)."""
        fw = self.fw
        if not fw or fw.get("st") in (None, "Installed"):
            return {"status": "Idle"}
        return {"status": fw["st"], "requestId": fw["id"]}

    def update_firmware(self, payload):
        had = self.job is not None
        ok = False
        try:
            r = self.load_job().request(payload)
            resp = r[0] if isinstance(r, tuple) else r
            ok = resp["status"] in ("Accepted", "AcceptedCanceled")
        finally:
            if not had and not ok:
                self.drop_job()  # refused (or failed): nothing runs
        return r

    def load_job(self):
        if self.job is None:
            fw_job = compat.borrow(JOB)
            try:
                self.job = fw_job.Job(self)
            except BaseException:
                compat.release(JOB)
                raise
        return self.job

    def drop_job(self):
        """The update ended: its code leaves the heap (unless someone imported it)."""
        if self.job is not None:
            self.job = None
            compat.release(JOB)
        self.task = None
