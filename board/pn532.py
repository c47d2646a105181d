# NXP PN532 as an ISO 14443A reader over HSU (UART) or I2C, written from the PN532 user
# manual: normal information frames (00 00 FF LEN LCS D4 ... DCS 00), ACK frame,
# SAMConfiguration, RFConfiguration (retry count) and InListPassiveTarget.
# As in board.mfrc522, the exchanges are generators that yield while the chip is busy (up
# to 100 ms per frame): the scan loop runs them with run_async, so it never holds the loop.
import machine

from firmware.compat import ticks_ms, ticks_diff
from board.mfrc522 import run_sync, run_async

ACK = b"\x00\x00\xff\x00\xff\x00"
I2C_ADDR = 0x24


def frame(data):
    """Wrap host->PN532 command bytes (without TFI) in a normal information frame."""
    body = b"\xd4" + bytes(data)
    n = len(body)
    dcs = (-sum(body)) & 0xFF
    return b"\x00\x00\xff" + bytes([n, (-n) & 0xFF]) + body + bytes([dcs, 0])


def parse(buf):
    """Find one PN532->host frame in buf. Returns (payload after TFI 0xD5, end index),
    (True, end) for an ACK, or (None, 0) if incomplete; raises ValueError if corrupt."""
    i = bytes(buf).find(b"\x00\xff")
    if i < 0 or len(buf) < i + 4:
        return None, 0
    n = buf[i + 2]
    lcs = buf[i + 3]
    if n == 0 and lcs == 0xFF:
        return True, i + 4
    if (n + lcs) & 0xFF:
        raise ValueError("PN532 length checksum")
    end = i + 4 + n + 1
    if len(buf) < end:
        return None, 0
    body = buf[i + 4:i + 4 + n]
    if (sum(body) + buf[end - 1]) & 0xFF:
        raise ValueError("PN532 data checksum")
    if body[0] != 0xD5:
        raise ValueError("PN532 frame direction")
    return bytes(body[1:]), end


class UartLink:
    def __init__(self, uart):
        self.uart = uart
        self._buf = b""

    def wake(self):
        # HSU wake-up: a long preamble of 0x55 then zeros, before the first command
        self.uart.write(b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")

    def send(self, data):
        while self.uart.any():
            self.uart.read()
        self._buf = b""
        self.uart.write(data)

    def poll(self):
        if self.uart.any():
            more = self.uart.read()
            if more:
                self._buf += more
        return self._buf

    def consume(self, n):
        self._buf = self._buf[n:]


class I2cLink:
    def __init__(self, i2c, addr=I2C_ADDR, chunk=32):
        self.i2c = i2c
        self.addr = addr
        self.chunk = chunk
        self._buf = b""

    def wake(self):
        pass

    def send(self, data):
        self._buf = b""
        self.i2c.writeto(self.addr, data)

    def poll(self):
        if self._buf:
            return self._buf
        try:
            st = self.i2c.readfrom(self.addr, 1)
        except OSError:
            return b""
        if not st or not (st[0] & 1):
            return b""
        r = self.i2c.readfrom(self.addr, self.chunk + 1)
        self._buf = r[1:]  # skip the ready byte
        return self._buf

    def consume(self, n):
        self._buf = b""  # the next read returns a fresh frame


class PN532:
    def __init__(self, link, timeout_ms=100):
        self.link = link
        self.timeout_ms = timeout_ms
        link.wake()
        self.command(b"\x14\x01\x14\x01")        # SAMConfiguration: normal mode
        self.command(b"\x32\x05\xff\x01\x00")    # one passive activation try per scan

    def _wait(self, want_ack):
        """Generator: yields until a frame arrives; returns True (ACK) or the payload."""
        t0 = ticks_ms()
        while True:
            buf = self.link.poll()
            if buf:
                got, end = parse(buf)
                if got is not None:
                    self.link.consume(end)
                    if want_ack:
                        if got is not True:
                            raise ValueError("PN532 no ACK")
                        return True
                    if got is not True:
                        return got
            if ticks_diff(ticks_ms(), t0) > self.timeout_ms:
                raise OSError(110)  # ETIMEDOUT
            yield

    def command(self, data):
        """Send a command, check the ACK and return the response payload (after D5)."""
        return run_sync(self._command(data))

    def _command(self, data):
        self.link.send(frame(data))
        yield from self._wait(True)
        resp = yield from self._wait(False)
        if not resp or resp[0] != data[0] + 1:
            raise ValueError("PN532 unexpected response")
        return resp[1:]

    def read_uid(self):
        """InListPassiveTarget for one 106 kbps type A target; UID bytes or None. Spins
        while the chip works: the scan loop uses read_uid_async."""
        return run_sync(self._read_uid())

    async def read_uid_async(self):
        return await run_async(self._read_uid())

    def _read_uid(self):
        r = yield from self._command(b"\x4a\x01\x00")
        if not r or r[0] == 0:
            return None
        # Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1...
        n = r[5]
        uid = r[6:6 + n]
        if len(uid) != n or n not in (4, 7, 10):
            return None
        return bytes(uid)


def make_uart(uart_id, tx, rx, baud=115200):
    return UartLink(machine.UART(uart_id, baud, tx=tx, rx=rx, timeout=0))


def make_i2c(bus, scl, sda, addr=I2C_ADDR):
    return I2cLink(machine.I2C(bus, scl=machine.Pin(scl), sda=machine.Pin(sda)), addr)
