"""Register-level fake of an MFRC522 with ISO/IEC 14443-3 type A cards in its field.

Attach as `spi.device`. It decodes SPI address bytes, keeps a register file and a FIFO,
and on Transceive+StartSend answers REQA/WUPA, SEL anticollision frames (bit-oriented,
reporting collisions through ErrorReg.CollErr and CollReg as 1-based positions within
the cascade level's UID field), SELECT (checking CRC_A), and HLTA.
With `realtime = True` the completion interrupts take real time as on the chip: an answer
1 ms, silence the full receive timer (TMode/TPrescaler/TReload, 25 ms as the driver sets it),
measured on `clock` (real ms unless a test replaces it).
"""
import time


def _ticks():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)


def crc_a(data):
    crc = 0x6363
    for x in data:
        b = x ^ (crc & 0xFF)
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return crc & 0xFFFF


class Card:
    IDLE, READY, ACTIVE, HALT = range(4)

    def __init__(self, uid, sak=0x08):
        assert len(uid) in (4, 7, 10)
        self.uid = bytes(uid)
        self.sak = sak
        self.state = Card.IDLE
        self.level = 0
        u = self.uid
        if len(u) == 4:
            parts = [u]
        elif len(u) == 7:
            parts = [b"\x88" + u[0:3], u[3:7]]
        else:
            parts = [b"\x88" + u[0:3], b"\x88" + u[3:6], u[6:10]]
        self.fields = [p + bytes([p[0] ^ p[1] ^ p[2] ^ p[3]]) for p in parts]
        self.atqa = {4: 0x0004, 7: 0x0044, 10: 0x0084}[len(u)]

    def bit(self, level, i):
        f = self.fields[level]
        return (f[i >> 3] >> (i & 7)) & 1


class FakeMFRC522:
    def __init__(self, cards=()):
        self.cards = list(cards)
        self.regs = bytearray(64)
        self.fifo = []
        self.frames = []      # every frame the driver transmitted: (bytes, tx_bits)
        self.realtime = False
        self.clock = _ticks   # ms; a test may drive it from event-loop turns instead
        self._irq = None      # (bits, due ms) of a completion still in flight
        self.reset()

    def reset(self):
        self.regs = bytearray(64)
        self.regs[0x37] = 0x92
        self.regs[0x14] = 0x80
        self.fifo = []

    # ---------------------------------------------------------------- SPI side
    def xfer(self, data):
        out = bytearray(len(data))
        addr = data[0]
        reg = (addr >> 1) & 0x3F
        if addr & 0x80:
            # read: every byte after the first returns the register addressed before it
            for i in range(1, len(data)):
                out[i] = self._read(reg)
                reg = (data[i] >> 1) & 0x3F
        else:
            for b in data[1:]:
                self._write(reg, b)
        return bytes(out)

    def _read(self, reg):
        if reg == 0x04 and self._irq is not None:
            bits, due = self._irq
            if self.clock() - due >= 0:
                self._irq = None
                self.regs[0x04] |= bits
        if reg == 0x09:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == 0x0A:
            return len(self.fifo)
        return self.regs[reg]

    def _write(self, reg, v):
        r = self.regs
        if reg == 0x01:
            cmd = v & 0x0F
            if cmd == 0x0F:
                self.reset()
                return
            r[0x01] = v
        elif reg == 0x04:
            if v & 0x80:
                r[0x04] |= v & 0x7F
            else:
                r[0x04] &= ~v & 0x7F
        elif reg == 0x09:
            self.fifo.append(v)
        elif reg == 0x0A:
            if v & 0x80:
                self.fifo = []
        elif reg == 0x0D:
            r[0x0D] = v & 0x7F
            if v & 0x80 and (r[0x01] & 0x0F) == 0x0C:
                self._transceive()
        else:
            r[reg] = v

    # ---------------------------------------------------------------- RF side
    def _transceive(self):
        r = self.regs
        frame = bytes(self.fifo)
        tx_bits = r[0x0D] & 0x07
        self.fifo = []
        self.frames.append((frame, tx_bits))
        r[0x06] = 0
        r[0x0E] = 0x20
        r[0x0C] = 0
        reply = self._picc(frame, tx_bits)
        if reply is None:
            self._complete(0x01, self._timer_ms())   # TimerIRq: nobody answered
            return
        self.fifo = list(reply)
        self._complete(0x30, 1)                      # RxIRq | IdleIRq

    def _complete(self, bits, ms):
        if self.realtime:
            self._irq = (bits, self.clock() + ms)
        else:
            self.regs[0x04] |= bits

    def _timer_ms(self):
        r = self.regs
        prescaler = ((r[0x2A] & 0x0F) << 8) | r[0x2B]
        reload = (r[0x2C] << 8) | r[0x2D]
        return (2 * prescaler + 1) * (reload + 1) * 1000 // 13560000

    def _picc(self, frame, tx_bits):
        if tx_bits == 7 and len(frame) == 1 and frame[0] in (0x26, 0x52):
            woken = (Card.IDLE,) if frame[0] == 0x26 else (Card.IDLE, Card.HALT)
            cards = [c for c in self.cards if c.state in woken]
            if not cards:
                return None
            for c in self.cards:
                if c.state == Card.ACTIVE:
                    c.state = Card.IDLE
            for c in cards:
                c.state = Card.READY
                c.level = 0
            atqa = cards[0].atqa
            for c in cards:
                atqa &= c.atqa
            return bytes([atqa & 0xFF, atqa >> 8])
        if len(frame) >= 2 and frame[0] in (0x93, 0x95, 0x97):
            level = (frame[0] - 0x93) // 2
            nvb = frame[1]
            if nvb == 0x70 and len(frame) == 9 and tx_bits == 0:
                return self._select(level, frame)
            known = ((nvb >> 4) - 2) * 8 + (nvb & 0x0F)
            return self._anticollision(level, frame[2:], known)
        if len(frame) == 4 and frame[0] == 0x50 and frame[1] == 0:
            if crc_a(frame[:2]) == frame[2] | (frame[3] << 8):
                for c in self.cards:
                    if c.state == Card.ACTIVE:
                        c.state = Card.HALT
            return None
        return None

    def _matching(self, level, data, known):
        out = []
        for c in self.cards:
            if c.state != Card.READY or c.level != level:
                continue
            if all(((data[i >> 3] >> (i & 7)) & 1) == c.bit(level, i) for i in range(known)):
                out.append(c)
            else:
                c.state = Card.IDLE
        return out

    def _anticollision(self, level, data, known):
        cards = self._matching(level, data, known)
        if not cards:
            return None
        first = known >> 3
        out = bytearray(5 - first)
        coll = None
        for i in range(known, 40):
            bits = set(c.bit(level, i) for c in cards)
            if len(bits) > 1 and coll is None:
                coll = i
            if 1 in bits:
                out[(i >> 3) - first] |= 1 << (i & 7)
        if coll is not None:
            self.regs[0x06] |= 0x08
            self.regs[0x0E] = (coll + 1) & 0x1F
        return bytes(out)

    def _select(self, level, frame):
        if crc_a(frame[:7]) != frame[7] | (frame[8] << 8):
            return None
        chosen = None
        for c in self.cards:
            if c.state != Card.READY or c.level != level:
                continue
            if bytes(frame[2:7]) == c.fields[level]:
                chosen = c
            else:
                c.state = Card.IDLE
        if chosen is None:
            return None
        if level + 1 < len(chosen.fields):
            sak = 0x04
            chosen.level = level + 1
        else:
            sak = chosen.sak & ~0x04
            chosen.state = Card.ACTIVE
        crc = crc_a(bytes([sak]))
        return bytes([sak, crc & 0xFF, crc >> 8])
