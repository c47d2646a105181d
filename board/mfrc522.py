# NXP MFRC522 over SPI: ISO/IEC 14443-3 type A card detection with the full bit-oriented
# anticollision loop over up to three cascade levels (4-, 7- and 10-byte UIDs).
# Written from the MFRC522 datasheet (registers, SPI address byte) and ISO/IEC 14443-3
# (REQA/WUPA, SEL/NVB, cascade tag 0x88, BCC, SAK bit 0x04, CRC_A).
#
# The chip exchanges take up to 25 ms (its receive timer: WUPA with no card, HLTA whose
# silence is the success case). The exchange logic is written once as generators that
# yield while the chip is busy: run_async() sleeps between polls so the 10 ms safety loop
# keeps running during a scan, run_sync() spins (construction, tests, the REPL).
import machine

from firmware.compat import sleep_ms, ticks_ms, ticks_diff

# registers
_COMMAND = 0x01
_COMIRQ = 0x04
_ERROR = 0x06
_FIFODATA = 0x09
_FIFOLEVEL = 0x0A
_CONTROL = 0x0C
_BITFRAMING = 0x0D
_COLL = 0x0E
_MODE = 0x11
_TXCONTROL = 0x14
_TXASK = 0x15
_TMODE = 0x2A
_TPRESCALER = 0x2B
_TRELOADH = 0x2C
_TRELOADL = 0x2D
_VERSION = 0x37
# commands
_IDLE = 0x00
_TRANSCEIVE = 0x0C
_SOFTRESET = 0x0F
# PICC commands
REQA = 0x26
WUPA = 0x52
HLTA = 0x50
SEL = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88

OK = 0
TIMEOUT = 1
COLLISION = 2
ERROR = 3


def run_sync(steps):
    """Run a driver generator to its end, spinning while it waits; returns its value."""
    try:
        while True:
            next(steps)
    except StopIteration as e:
        return e.value


async def run_async(steps, ms=1):
    """Run a driver generator, sleeping `ms` each time it waits; returns its value."""
    try:
        while True:
            next(steps)
            await sleep_ms(ms)
    except StopIteration as e:
        return e.value


def crc_a(buf, n):
    """ISO/IEC 14443-3 CRC_A (init 0x6363) over buf[:n], returned as an int (LSB first on air)."""
    crc = 0x6363
    for i in range(n):
        b = buf[i] ^ (crc & 0xFF)
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


class MFRC522:
    def __init__(self, spi, cs_pin, rst_pin=None, timeout_ms=40):
        self.spi = spi
        self.cs = machine.Pin(cs_pin, machine.Pin.OUT, value=1)
        if rst_pin is not None:
            self.rst = machine.Pin(rst_pin, machine.Pin.OUT, value=1)
        self.timeout_ms = timeout_ms
        self._w2 = bytearray(2)
        self._r2 = bytearray(2)
        self._tx = bytearray(12)
        self._rx = bytearray(16)
        self._uid5 = bytearray(5)
        self.init()

    # ---------------------------------------------------------------- registers
    def _wr(self, reg, val):
        b = self._w2
        b[0] = (reg << 1) & 0x7E
        b[1] = val
        self.cs.value(0)
        self.spi.write(b)
        self.cs.value(1)

    def _rd(self, reg):
        b = self._w2
        b[0] = 0x80 | ((reg << 1) & 0x7E)
        b[1] = 0
        self.cs.value(0)
        self.spi.write_readinto(b, self._r2)
        self.cs.value(1)
        return self._r2[1]

    def version(self):
        return self._rd(_VERSION)

    def init(self):
        self._wr(_COMMAND, _SOFTRESET)
        t0 = ticks_ms()
        while self._rd(_COMMAND) & 0x10 and ticks_diff(ticks_ms(), t0) < 50:
            pass
        # timer: TAuto, prescaler 0xA9 -> 40 kHz ticks, reload 1000 -> 25 ms receive timeout
        self._wr(_TMODE, 0x80)
        self._wr(_TPRESCALER, 0xA9)
        self._wr(_TRELOADH, 0x03)
        self._wr(_TRELOADL, 0xE8)
        self._wr(_TXASK, 0x40)      # force 100 % ASK
        self._wr(_MODE, 0x3D)       # CRC preset 0x6363
        self._wr(_TXCONTROL, self._rd(_TXCONTROL) | 0x03)  # antenna on

    # ---------------------------------------------------------------- transceive
    def _transceive(self, n, tx_bits=0, rx_align=0):
        """Send self._tx[:n] (last byte tx_bits wide, 0 = 8); reply lands in self._rx.
        Generator: yields while the chip works, returns (status, nbytes, last_bits)."""
        self._wr(_COMMAND, _IDLE)
        self._wr(_COMIRQ, 0x7F)
        self._wr(_FIFOLEVEL, 0x80)
        tx = self._tx
        for i in range(n):
            self._wr(_FIFODATA, tx[i])
        framing = (rx_align << 4) | tx_bits
        self._wr(_BITFRAMING, framing)
        self._wr(_COMMAND, _TRANSCEIVE)
        self._wr(_BITFRAMING, framing | 0x80)  # StartSend
        t0 = ticks_ms()
        while True:
            irq = self._rd(_COMIRQ)
            if irq & 0x30:       # RxIRq | IdleIRq
                break
            if irq & 0x01 or ticks_diff(ticks_ms(), t0) > self.timeout_ms:
                return TIMEOUT, 0, 0
            yield
        err = self._rd(_ERROR)
        if err & 0x13:           # BufferOvfl | ParityErr | ProtocolErr
            return ERROR, 0, 0
        cnt = self._rd(_FIFOLEVEL)
        if cnt > len(self._rx):
            return ERROR, 0, 0
        for i in range(cnt):
            self._rx[i] = self._rd(_FIFODATA)
        last = self._rd(_CONTROL) & 0x07
        return (COLLISION if err & 0x08 else OK), cnt, last

    # ---------------------------------------------------------------- ISO 14443-3
    def _request(self, cmd):
        """REQA/WUPA short frame; returns ATQA (int) or None (generator)."""
        self._tx[0] = cmd
        st, n, last = yield from self._transceive(1, tx_bits=7)
        if st != OK or n != 2:
            return None
        return self._rx[0] | (self._rx[1] << 8)

    def _cascade(self, level, out):
        """Anticollision + select for one cascade level. Writes the 4 UID CLn bytes into
        `out`, returns SAK or None (generator)."""
        sel = SEL[level]
        uid = self._uid5
        for i in range(5):
            uid[i] = 0
        known = 0
        tx = self._tx
        rx = self._rx
        for _ in range(33):
            full = known >> 3
            extra = known & 7
            tx[0] = sel
            tx[1] = ((2 + full) << 4) | extra
            nb = full + (1 if extra else 0)
            for i in range(nb):
                tx[2 + i] = uid[i]
            st, n, _last = yield from self._transceive(2 + nb, tx_bits=extra, rx_align=extra)
            if st != OK and st != COLLISION:
                return None
            for i in range(n):
                j = full + i
                if j >= 5:
                    break
                if i == 0 and extra:
                    keep = (1 << extra) - 1
                    uid[j] = (uid[j] & keep) | (rx[0] & ~keep & 0xFF)
                else:
                    uid[j] = rx[i]
            if st == OK:
                break
            coll = self._rd(_COLL)
            if coll & 0x20:      # CollPosNotValid
                return None
            # CollPos counts from 1 within this level's UID field (0 stands for 32)
            pos = (coll & 0x1F) or 32
            if pos <= known:
                return None
            b = pos - 1
            uid[b >> 3] |= 1 << (b & 7)   # follow the card that sent a 1 there
            known = pos
        else:
            return None
        if uid[0] ^ uid[1] ^ uid[2] ^ uid[3] != uid[4]:
            return None
        tx[0] = sel
        tx[1] = 0x70
        for i in range(5):
            tx[2 + i] = uid[i]
        c = crc_a(tx, 7)
        tx[7] = c & 0xFF
        tx[8] = c >> 8
        st, n, _last = yield from self._transceive(9)
        if st != OK or n != 3:
            return None
        c = crc_a(rx, 1)
        if rx[1] != (c & 0xFF) or rx[2] != (c >> 8):
            return None
        for i in range(4):
            out[i] = uid[i]
        return rx[0]

    def _halt(self):
        tx = self._tx
        tx[0] = HLTA
        tx[1] = 0
        c = crc_a(tx, 2)
        tx[2] = c & 0xFF
        tx[3] = c >> 8
        # a halted card stays silent: the timeout is the success case
        st, _n, _last = yield from self._transceive(4)
        return st == TIMEOUT

    def read_uid(self, cmd=WUPA):
        """WUPA (or REQA: skips halted cards), anticollision over the cascade levels, HLTA.
        Returns the UID bytes or None. Spins while the chip works (25 ms per silent
        exchange): the scan loop uses read_uid_async."""
        return run_sync(self._read_uid(cmd))

    async def read_uid_async(self, cmd=WUPA):
        return await run_async(self._read_uid(cmd))

    def _read_uid(self, cmd):
        if (yield from self._request(cmd)) is None:
            return None
        part = bytearray(4)
        uid = bytearray()
        for level in range(3):
            sak = yield from self._cascade(level, part)
            if sak is None:
                return None
            if sak & 0x04:       # UID not complete: this level carried CT + 3 bytes
                if part[0] != CASCADE_TAG:
                    return None
                uid.extend(part[1:4])
            else:
                uid.extend(part)
                yield from self._halt()
                return bytes(uid)
        return None


class CardReader:
    """hal.Reader over a driver with read_uid_async(): reports each presented card once, as
    the upper-case hex UID with token type ISO14443, until it has been away for `gone`
    scans."""

    def __init__(self, driver, gone=2):
        self.driver = driver
        self.gone = gone
        self._last = None
        self._absent = 0
        self._pending = None
        self.errors = 0

    async def scan(self):
        try:
            uid = await self.driver.read_uid_async()
        except OSError:
            self.errors += 1
            uid = None
        if uid is None:
            self._absent += 1
            if self._absent >= self.gone:
                self._last = None
            return None
        self._absent = 0
        if uid != self._last:
            self._last = uid
            self._pending = uid
        return uid

    def poll(self):
        uid = self._pending
        if uid is None:
            return None
        self._pending = None
        return ("".join("%02X" % b for b in uid), "ISO14443")
