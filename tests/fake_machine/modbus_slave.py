"""A Modbus RTU slave on the fake UART serving float32 big-endian input registers."""
import struct


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    c = crc16(body)
    return bytes(body) + bytes([c & 0xFF, c >> 8])


class Slave:
    def __init__(self, addr=1, floats=None):
        self.addr = addr
        self.regs = {}
        for reg, val in (floats or {}).items():
            self.set_float(reg, val)
        self.mode = "ok"      # ok | silent | badcrc | exception | wrongaddr
        self.requests = []
        self.bad_requests = 0
        self._out = b""

    def set_float(self, reg, val):
        b = struct.pack(">f", val)
        self.regs[reg] = b[0] << 8 | b[1]
        self.regs[reg + 1] = b[2] << 8 | b[3]

    def uart_write(self, frame):
        self.requests.append(frame)
        if len(frame) != 8 or crc16(frame[:6]) != frame[6] | (frame[7] << 8):
            self.bad_requests += 1
            return
        if frame[0] != self.addr or self.mode == "silent":
            return
        fn = frame[1]
        reg = frame[2] << 8 | frame[3]
        n = frame[4] << 8 | frame[5]
        if self.mode == "exception" or fn != 4:
            self._out += with_crc(bytes([self.addr, fn | 0x80, 2]))
            return
        data = bytearray()
        for r in range(reg, reg + n):
            v = self.regs.get(r, 0)
            data += bytes([v >> 8, v & 0xFF])
        addr = self.addr + 1 if self.mode == "wrongaddr" else self.addr
        out = bytearray(with_crc(bytes([addr, 4, 2 * n]) + data))
        if self.mode == "badcrc":
            out[-1] ^= 0x55
        self._out += bytes(out)

    def uart_pending(self):
        out, self._out = self._out, b""
        return out
