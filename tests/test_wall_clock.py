"""Wall-clock times where floats are single precision (the ESP32 port's default build). A unix
time in a 32-bit float is good to 128 s only (1795000000 and 30 s later are the same float32),
so there compat keeps every wall-clock time an int. The host runtimes have double floats:
these tests switch compat to the single-precision rules (compat.SINGLE_FLOAT) and check that
the times stay ints from end to end."""
import struct

import pytest

from fake_machine import portable  # noqa: F401  (board.net imports on the host)
from board import net
from firmware import compat


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


@pytest.fixture
def single(monkeypatch):
    monkeypatch.setattr(compat, "SINGLE_FLOAT", True)
    monkeypatch.setattr(compat, "_clock_delta", 0)


def test_single_float_detection():
    # the probe compat uses, as a port with 32-bit floats evaluates it, and as this host does
    assert f32(float("16777217")) == f32(16777216.0)
    assert compat.SINGLE_FLOAT is False            # this host: doubles, fractions kept


def test_single_float_clock_is_whole_seconds(single):
    t = compat.parse_iso8601("2026-11-24T10:00:00.750Z")
    assert type(t) is int and t == 1795514400
    assert type(compat.parse_iso8601("2026-11-24T11:00:00+01:00")) is int
    assert type(compat.now()) is int
    compat.set_now(t)
    n = compat.now()
    assert type(n) is int and t <= n <= t + 1
    assert compat.iso8601(n).endswith(".000Z") and compat.iso8601(t) == "2026-11-24T10:00:00.000Z"


def test_double_float_clock_keeps_fractions():
    assert compat.parse_iso8601("2026-11-24T10:00:00.750Z") == 1795514400.75


def test_single_float_sntp_time_is_whole_seconds(single):
    reply = bytearray(48)
    reply[0], reply[1] = 0x24, 2                   # server mode, stratum 2
    struct.pack_into(">II", reply, 40, 1795514400 + net.NTP_DELTA, 0xC0000000)
    t = net.ntp_to_unix(reply)
    assert type(t) is int and t == 1795514400


def test_double_float_sntp_time_keeps_the_fraction():
    reply = bytearray(48)
    reply[0], reply[1] = 0x24, 2
    struct.pack_into(">II", reply, 40, 1795514400 + net.NTP_DELTA, 0xC0000000)
    assert net.ntp_to_unix(reply) == 1795514400.75
