# WiFi station that reconnects forever, and SNTP time. One WLAN object for the whole run
# (creating new ones per retry leaks on some ports); the socket is closed on every path.
import socket
import struct

from firmware import compat, log

NTP_DELTA = 2208988800  # 1900-01-01 -> 1970-01-01


class Wifi:
    def __init__(self, ssid, password="", hostname=None):
        import network
        self.ssid = ssid
        self._pw = password
        if hostname:
            try:
                network.hostname(hostname)
            except (AttributeError, ValueError, OSError):
                pass
        self.sta = network.WLAN(network.STA_IF)
        self.connects = 0
        self.failures = 0

    def connected(self):
        return self.sta.isconnected()

    def ip(self):
        return self.sta.ifconfig()[0] if self.sta.isconnected() else None

    def rssi(self):
        try:
            return self.sta.status("rssi")
        except (OSError, ValueError, AttributeError):
            return None

    async def connect(self, timeout_ms=20000):
        sta = self.sta
        sta.active(True)
        if sta.isconnected():
            return True
        try:
            sta.disconnect()
        except OSError:
            pass
        sta.connect(self.ssid, self._pw)
        t0 = compat.ticks_ms()
        while not sta.isconnected():
            if compat.ticks_diff(compat.ticks_ms(), t0) > timeout_ms:
                self.failures += 1
                return False
            await compat.sleep_ms(200)
        self.connects += 1
        compat.resolve_reset()
        log.info("wifi", "connected to %s as %s" % (self.ssid, self.ip()))
        return True

    async def keep_connected(self, check_ms=5000):
        """Reconnect forever with back-off capped at one minute."""
        backoff = 1000
        while True:
            if self.sta.isconnected():
                backoff = 1000
                await compat.sleep_ms(check_ms)
                continue
            ok = await self.connect()
            if not ok:
                log.warn("wifi", "connect to %s failed, retry in %d ms" % (self.ssid, backoff))
                await compat.sleep_ms(backoff)
                backoff = min(backoff * 2, 60000)


def ntp_request():
    buf = bytearray(48)
    buf[0] = 0x1B  # LI 0, version 3, mode 3 (client)
    return buf


def ntp_to_unix(reply):
    """Unix seconds from an SNTP reply's transmit timestamp (whole seconds where floats are
    single precision, see compat.SINGLE_FLOAT); ValueError if bogus."""
    if len(reply) < 48 or (reply[0] & 0x07) not in (4, 5) or reply[1] == 0:
        raise ValueError("not an SNTP server reply")
    secs, frac = struct.unpack_from(">II", reply, 40)
    if compat.SINGLE_FLOAT:
        return secs - NTP_DELTA
    return secs - NTP_DELTA + frac / 4294967296.0


async def ntp_sync(host="pool.ntp.org", timeout_ms=2000):
    """Ask an NTP server for the time and adopt it via compat.set_now. Returns the unix
    time or None. The server's address comes from compat.resolve's cache: a DNS lookup
    would block every task; the UDP exchange does not."""
    s = None
    try:
        # getaddrinfo of an IP literal only converts it to a sockaddr: no DNS
        ai = socket.getaddrinfo(compat.resolve(host, 123), 123)[0]
        s = socket.socket(ai[0], socket.SOCK_DGRAM)
        s.setblocking(False)
        s.sendto(ntp_request(), ai[-1])
        t0 = compat.ticks_ms()
        while True:
            try:
                data = s.recv(48)
                break
            except OSError:
                if compat.ticks_diff(compat.ticks_ms(), t0) > timeout_ms:
                    compat.resolve_result(host, False)
                    return None
                await compat.sleep_ms(20)
        t = ntp_to_unix(data)
        compat.resolve_result(host, True)
        compat.set_now(t)
        return t
    except (OSError, ValueError, IndexError) as e:
        compat.resolve_result(host, False)
        log.warn("ntp", "sync with %s failed: %r" % (host, e))
        return None
    finally:
        if s is not None:
            s.close()
