"""A stand-in for MicroPython's `esp32` module: two OTA app partitions in RAM with the
Partition calls board/ota.py uses. Tests put it in sys.modules as "esp32" themselves."""


class Partition:
    RUNNING = 1
    BOOT = 0
    _parts = {}
    running = "ota_0"
    boot = "ota_0"
    confirmed = False

    def __init__(self, which):
        if which == Partition.RUNNING:
            which = Partition.running
        self.label = which
        if which not in Partition._parts:
            Partition._parts[which] = bytearray(b"\xff" * (64 * 1024))

    @classmethod
    def reset(cls, size=64 * 1024):
        cls._parts = {"ota_0": bytearray(b"\xff" * size), "ota_1": bytearray(b"\xff" * size)}
        cls.running = cls.boot = "ota_0"
        cls.confirmed = False

    def info(self):
        return (0, 16, 0x10000, len(Partition._parts[self.label]), self.label, False)

    def get_next_update(self):
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    def writeblocks(self, block, buf):
        data = Partition._parts[self.label]
        if (block + 1) * 4096 > len(data):
            raise OSError(28)
        data[block * 4096:(block + 1) * 4096] = buf

    def readblocks(self, block, buf):
        data = Partition._parts[self.label]
        buf[:] = data[block * 4096:block * 4096 + len(buf)]

    def set_boot(self):
        Partition.boot = self.label

    @staticmethod
    def mark_app_valid_cancel_rollback():
        Partition.confirmed = True
