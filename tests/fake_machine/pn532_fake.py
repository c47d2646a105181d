"""A PN532 answering over the fake UART (HSU) or I2C: ACK, then a response frame.
`delay_ms` holds each answer back that long on `clock`, as the chip's RF timeout does."""
import time


def _ticks():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)


def resp_frame(payload):
    body = b"\xd5" + bytes(payload)
    n = len(body)
    return b"\x00\x00\xff" + bytes([n, (-n) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF, 0])


class FakePN532:
    def __init__(self, uid=None):
        self.uid = uid
        self.commands = []
        self.corrupt = False
        self.delay_ms = 0
        self.clock = _ticks   # ms; a test may drive it from event-loop turns instead
        self._due = 0
        self._out = b""

    def _ready(self):
        return self._out and self.clock() - self._due >= 0

    def _handle(self, data):
        i = data.find(b"\x00\x00\xff")
        if i < 0:
            return  # wake-up preamble
        n = data[i + 3]
        body = data[i + 5:i + 5 + n]
        if body[0] != 0xD4 or (sum(body) + data[i + 5 + n]) & 0xFF:
            return
        cmd = body[1]
        self.commands.append(cmd)
        if cmd == 0x4A:
            if self.uid is None:
                payload = b"\x4b\x00"
            else:
                payload = b"\x4b\x01\x01\x00\x44\x00" + bytes([len(self.uid)]) + self.uid
        else:
            payload = bytes([cmd + 1])
        out = bytearray(resp_frame(payload))
        if self.corrupt:
            out[-2] ^= 0xFF
        self._out += b"\x00\x00\xff\x00\xff\x00" + bytes(out)
        self._due = self.clock() + self.delay_ms

    # UART side
    def uart_write(self, data):
        self._handle(data)

    def uart_pending(self):
        if not self._ready():
            return b""
        out, self._out = self._out, b""
        return out

    # I2C side: every read starts with the ready byte; ACK and response are read separately
    def i2c_write(self, data):
        self._handle(data)

    def i2c_read(self, n):
        if not self._ready():
            return bytes(n)
        if n == 1:
            return b"\x01"
        if self._out.startswith(b"\x00\x00\xff\x00\xff\x00"):
            chunk, self._out = self._out[:6], self._out[6:]
        else:
            chunk, self._out = self._out, b""
        return (b"\x01" + chunk + bytes(n))[:n]
