# ESP32 application-image update for "esp32-image" firmware bundles (firmware/fw_bundle.py,
# OCPP 2.0.1 L01). The image goes into the next OTA app partition in 4 KB blocks, is read back
# and checked against the bundle manifest's SHA-256, and set_boot() makes the bootloader start
# it once. The new image confirms itself (mark_app_valid_cancel_rollback) only when its
# BootNotification was Accepted (firmware_update's commit); a reset before that and the
# bootloader goes back to the previous image (MicroPython's OTA-capable ESP32 builds enable
# the bootloader's app rollback). Without `esp32.Partition` (host, other ports) there is no
# OTA object and such bundles end in InstallationFailed.
import hashlib

BLOCK = 4096


def available():
    try:
        import esp32
    except ImportError:
        return False
    return hasattr(esp32, "Partition") and hasattr(esp32.Partition, "RUNNING")


class Ota:
    def __init__(self):
        import esp32
        self._esp32 = esp32
        self.next = esp32.Partition(esp32.Partition.RUNNING).get_next_update()

    def running(self):
        """Label of the app partition this boot runs."""
        e = self._esp32
        return e.Partition(e.Partition.RUNNING).info()[4]

    def target(self):
        return self.next.info()[4]

    async def write(self, bundle, manifest):
        """Copy the bundle's one image into the next OTA partition and check it there;
        returns the partition's label. VerifyError (from fw_bundle) on a mismatch."""
        from firmware import compat, fw_bundle
        name, size, want = manifest["files"][0]
        _, off = fw_bundle.read_manifest(bundle)
        if size > self.next.info()[3]:
            raise OSError("image of %d bytes is larger than partition %s" % (size, self.target()))
        buf = bytearray(BLOCK)
        mv = memoryview(buf)
        with open(bundle, "rb") as f:
            f.seek(off)
            blk = 0
            left = size
            while left:
                n = f.readinto(mv[:min(BLOCK, left)])
                if not n:
                    raise fw_bundle.VerifyError("bundle ends inside the image")
                for i in range(n, BLOCK):
                    buf[i] = 0xFF  # erased flash
                self.next.writeblocks(blk, buf)  # erases the block first
                left -= n
                blk += 1
                await compat.sleep_ms(0)
        h = hashlib.sha256()
        blk = 0
        left = size
        while left:
            self.next.readblocks(blk, buf)
            n = min(BLOCK, left)
            h.update(mv[:n])
            left -= n
            blk += 1
            await compat.sleep_ms(0)
        import binascii
        if binascii.hexlify(h.digest()).decode() != want.lower():
            raise fw_bundle.VerifyError("image in %s differs from the manifest" % self.target())
        return self.target()

    def activate(self):
        self.next.set_boot()

    def confirm(self):
        self._esp32.Partition.mark_app_valid_cancel_rollback()
