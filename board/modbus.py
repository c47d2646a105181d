# Modbus RTU master, just function 04 (read input registers), over a UART with an optional
# RS485 driver-enable pin. One request in flight; request and reply buffers are reused.
import struct

import machine

from firmware.compat import sleep_ms, ticks_ms, ticks_diff


class MeterError(Exception):
    """A meter did not answer properly: args[0] is "timeout", "crc", "exception" or "frame"."""


def crc16(buf, n=None):
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF) over buf[:n]."""
    crc = 0xFFFF
    for i in range(len(buf) if n is None else n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


MAX_REGS = 16


class ModbusRTU:
    def __init__(self, uart, de_pin=None, timeout_ms=300):
        self.uart = uart
        self.de = None
        if de_pin is not None:
            self.de = machine.Pin(de_pin, machine.Pin.OUT, value=0)
        self.timeout_ms = timeout_ms
        self._req = bytearray(8)
        self._resp = bytearray(5 + 2 * MAX_REGS)
        self._mv = memoryview(self._resp)
        self.errors = 0

    def _frame(self, addr, reg, count):
        r = self._req
        r[0] = addr
        r[1] = 4
        r[2] = reg >> 8
        r[3] = reg & 0xFF
        r[4] = count >> 8
        r[5] = count & 0xFF
        c = crc16(r, 6)
        r[6] = c & 0xFF
        r[7] = c >> 8
        return r

    async def read_input(self, addr, reg, count):
        """Read `count` input registers; returns a memoryview of the 2*count data bytes
        (valid until the next call). Raises MeterError."""
        if count > MAX_REGS:
            raise ValueError("count")
        u = self.uart
        while u.any():  # stale bytes from an earlier timed-out reply
            u.read()
        if self.de is not None:
            self.de.value(1)
        u.write(self._frame(addr, reg, count))
        if self.de is not None:
            # Release the RS485 driver once the last bit is out. flush() would hold the
            # event loop for the whole frame (8 ms at 9600 baud, 33 ms at 2400), so poll
            # txdone() where the port has it. A late wake-up keeps DE on into the reply;
            # that read then fails (timeout/crc) and the next poll asks again.
            txdone = getattr(u, "txdone", None)
            if txdone is not None:
                t0 = ticks_ms()
                while not txdone() and ticks_diff(ticks_ms(), t0) <= self.timeout_ms:
                    await sleep_ms(1)
            else:
                flush = getattr(u, "flush", None)
                if flush:
                    flush()
            self.de.value(0)
        want = 5 + 2 * count
        got = 0
        t0 = ticks_ms()
        buf = self._resp
        mv = self._mv
        while got < want:
            if u.any():
                n = u.readinto(mv[got:want])
                got += n or 0
                # an exception reply is only 5 bytes long
                if got >= 5 and buf[1] == 0x84:
                    want = 5
                continue
            if ticks_diff(ticks_ms(), t0) > self.timeout_ms:
                self.errors += 1
                raise MeterError("timeout")
            await sleep_ms(5)
        c = crc16(buf, want - 2)
        if buf[want - 2] != (c & 0xFF) or buf[want - 1] != (c >> 8):
            self.errors += 1
            raise MeterError("crc")
        if buf[0] != addr:
            self.errors += 1
            raise MeterError("frame")
        if buf[1] == 0x84:
            self.errors += 1
            raise MeterError("exception", buf[2])
        if buf[1] != 4 or buf[2] != 2 * count:
            self.errors += 1
            raise MeterError("frame")
        return mv[3:3 + 2 * count]


def float_at(data, reg):
    """IEEE-754 big-endian float32 starting `reg` registers into the reply data."""
    return struct.unpack_from(">f", data, 2 * reg)[0]
