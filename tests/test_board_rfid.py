# MFRC522 driver against a register-level fake answering ISO 14443-3 anticollision.
# Portable (pytest and micropython).
from fake_machine import portable  # noqa: F401
import machine
from fake_machine.rc522 import FakeMFRC522, Card

from board import mfrc522 as M
from firmware.compat import asyncio


def scan(reader):
    return asyncio.run(reader.scan())


def rig(*cards):
    machine.reset_all()
    spi = machine.SPI(1)
    fake = FakeMFRC522(cards)
    spi.device = fake
    return M.MFRC522(spi, cs_pin=5), fake


def test_crc_a_known_vectors():
    # ISO/IEC 14443-3 Annex B: CRC_A of 00 00 is A0 1E; HLTA 50 00 carries 57 CD
    assert M.crc_a(b"\x00\x00", 2) == 0x1EA0
    assert M.crc_a(b"\x50\x00", 2) == 0xCD57


def test_init_talks_to_registers():
    drv, fake = rig()
    assert drv.version() == 0x92
    assert fake.regs[0x14] & 0x03 == 0x03, "antenna on"
    assert fake.regs[0x2C] == 0x03 and fake.regs[0x2D] == 0xE8


def test_no_card():
    drv, fake = rig()
    assert drv.read_uid() is None
    assert fake.frames[-1] == (bytes([M.WUPA]), 7)


def test_4_byte_uid():
    drv, fake = rig(Card(b"\xde\xad\xbe\xef"))
    assert drv.read_uid() == b"\xde\xad\xbe\xef"
    sent = [f for f, _ in fake.frames]
    assert sent[1] == b"\x93\x20"
    assert sent[2][:2] == b"\x93\x70" and len(sent[2]) == 9
    assert sent[3][:2] == b"\x50\x00", "halted after reading"


def test_7_byte_uid_uses_two_cascade_levels():
    uid = b"\x04\x11\x22\x33\x44\x55\x66"
    drv, fake = rig(Card(uid))
    assert drv.read_uid() == uid
    sels = [f[0] for f, _ in fake.frames if f[0] in (0x93, 0x95, 0x97)]
    assert 0x93 in sels and 0x95 in sels and 0x97 not in sels


def test_10_byte_uid_uses_three_cascade_levels():
    uid = bytes(range(0x10, 0x1A))
    drv, fake = rig(Card(uid))
    assert drv.read_uid() == uid


def test_collision_resolves_one_card_then_the_other():
    a = Card(b"\x12\x34\x56\x78")
    b = Card(b"\x12\x34\x57\x78")       # differs in byte 2, bit 0
    drv, fake = rig(a, b)
    first = drv.read_uid()
    assert first in (a.uid, b.uid)
    assert any(f[1] != 0x20 and f[1] != 0x70 for f, _ in fake.frames if f[0] == 0x93), \
        "a partial-bit anticollision frame was sent"
    assert drv.read_uid() == first, "WUPA wakes the halted winner again"
    second = drv.read_uid(M.REQA)          # REQA leaves halted cards asleep
    assert second in (a.uid, b.uid) and second != first


def test_collision_between_7_and_4_byte_cards():
    a = Card(b"\x88\x01\x02\x03")          # 4-byte UID starting like a cascade tag
    b = Card(b"\x04\x01\x02\x03\x04\x05\x06")
    drv, fake = rig(a, b)
    got = {drv.read_uid(), drv.read_uid(M.REQA)}
    assert got == {a.uid, b.uid}


def test_card_reader_reports_each_presentation_once():
    card = Card(b"\x01\x02\x03\x04")
    drv, fake = rig(card)
    reader = M.CardReader(drv, gone=2)
    assert reader.poll() is None
    scan(reader)
    assert reader.poll() == ("01020304", "ISO14443")
    assert reader.poll() is None
    scan(reader)
    scan(reader)
    assert reader.poll() is None, "still on the reader"
    fake.cards.remove(card)
    scan(reader)
    scan(reader)
    card.state = Card.IDLE
    fake.cards.append(card)
    scan(reader)
    assert reader.poll() == ("01020304", "ISO14443")


def test_broken_select_crc_is_rejected():
    drv, fake = rig(Card(b"\xde\xad\xbe\xef"))
    orig = fake._select

    def corrupt(level, frame):
        r = orig(level, frame)
        return None if r is None else bytes([r[0], r[1] ^ 0xFF, r[2]])
    fake._select = corrupt
    assert drv.read_uid() is None


def _pn532_uart(fake):
    from board import pn532
    machine.reset_all()
    u = machine.UART(1, 115200)
    u.device = fake
    return pn532.PN532(pn532.UartLink(u))


def _pn532_i2c(fake):
    from board import pn532
    machine.reset_all()
    i2c = machine.I2C(0)
    i2c.devices[0x24] = fake
    return pn532.PN532(pn532.I2cLink(i2c))


def test_pn532_frames_and_uid_over_uart_and_i2c():
    from fake_machine.pn532_fake import FakePN532
    from board import pn532
    assert pn532.frame(b"\x4a\x01\x00") == b"\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00"
    for make in (_pn532_uart, _pn532_i2c):
        fake = FakePN532()
        dev = make(fake)
        assert fake.commands == [0x14, 0x32], make
        assert dev.read_uid() is None
        fake.uid = b"\x04\xaa\xbb\xcc\xdd\xee\xff"
        assert dev.read_uid() == fake.uid
        reader = M.CardReader(dev)
        scan(reader)
        assert reader.poll() == ("04AABBCCDDEEFF", "ISO14443")


def test_pn532_checksum_error_is_rejected():
    from fake_machine.pn532_fake import FakePN532
    fake = FakePN532(b"\x01\x02\x03\x04")
    dev = _pn532_uart(fake)
    fake.corrupt = True
    portable.raises(ValueError, dev.read_uid)


def test_scan_does_not_hold_the_event_loop_while_the_chip_works():
    # with the chip's real timing a scan waits out the 25 ms receive timer (WUPA without a
    # card, HLTA after a read); the 10 ms safety loop must keep running meanwhile. The chip's
    # timer runs on event-loop turns (portable.run_on_loop_clock), so the scan only completes
    # if the driver awaits while it waits, and nothing here depends on how loaded the machine is.
    card = Card(b"\x01\x02\x03\x04")
    drv, fake = rig(card)
    drv.timeout_ms = 5000   # the driver's own guard runs on real ms: keep it out of the way
    fake.realtime = True
    reader = M.CardReader(drv)
    got, turns = portable.run_on_loop_clock(reader.scan(), fake)
    assert got == card.uid, "the chip answered only while other tasks ran"
    assert turns >= 25, ("HLTA timer waited out beside the other tasks", turns)
    fake.cards.remove(card)
    got, turns = portable.run_on_loop_clock(reader.scan(), fake)
    assert got is None and turns >= 25, turns


def test_pn532_scan_does_not_hold_the_event_loop():
    from fake_machine.pn532_fake import FakePN532
    for make in (_pn532_uart, _pn532_i2c):
        fake = FakePN532(b"\x01\x02\x03\x04")
        dev = make(fake)
        dev.timeout_ms = 5000   # real-ms guard; the chip's 30 ms delay runs on loop turns
        reader = M.CardReader(dev)
        fake.delay_ms = 30
        got, turns = portable.run_on_loop_clock(reader.scan(), fake)
        assert got == fake.uid and reader.errors == 0, (make, got, reader.errors)
        assert turns >= 30, (make, turns)
