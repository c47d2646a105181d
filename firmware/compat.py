# The one place where MicroPython and CPython differ: time, ticks, asyncio helpers,
# random ids, memory figures. Everything else in firmware/ imports from here.
import gc
import sys
import time
import os

try:
    import asyncio
except ImportError:  # MicroPython < 1.21
    import uasyncio as asyncio  # noqa

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const  # noqa: F401
except ImportError:
    def const(x):
        return x

# ---------------------------------------------------------------- ticks (monotonic ms)
if MICROPYTHON:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
else:
    _T0 = time.monotonic()

    def ticks_ms():
        return int((time.monotonic() - _T0) * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


def sleep_ms(ms):
    """Awaitable sleep in milliseconds on both targets."""
    if MICROPYTHON:
        return asyncio.sleep_ms(ms)
    return asyncio.sleep(ms / 1000)


async def wait_for_ms(aw, ms):
    """asyncio.wait_for with a millisecond timeout; raises asyncio.TimeoutError."""
    if MICROPYTHON:
        return await asyncio.wait_for_ms(aw, ms)
    return await asyncio.wait_for(aw, ms / 1000)


TimeoutError = asyncio.TimeoutError
CancelledError = asyncio.CancelledError

# ---------------------------------------------------------------- wall clock (UTC)
# Embedded MicroPython ports count from 2000-01-01, unix ports and CPython from 1970.
# We always work in unix seconds; the offset is applied here and nowhere else.
EPOCH_OFFSET = 0 if time.gmtime(0)[0] == 1970 else 946684800
# A single-precision float (the ESP32 port's default) holds a unix time only to 128 s, so on
# such ports wall-clock times are ints (whole seconds) from end to end: never add a float to
# one there. Ports with double floats keep the fraction.
SINGLE_FLOAT = float("16777217") == 16777216.0
_clock_delta = 0  # correction learned from the CSMS (BootNotification/Heartbeat currentTime)


def _raw_unix():
    t = time.time()
    return (int(t) if SINGLE_FLOAT else t) + EPOCH_OFFSET


def now():
    """Current UTC time in unix seconds (an int where floats are single precision)."""
    return _raw_unix() + _clock_delta


def set_now(unix_seconds):
    """Adopt the given UTC time (e.g. currentTime from the CSMS) without touching the RTC."""
    global _clock_delta
    _clock_delta = (int(unix_seconds) if SINGLE_FLOAT else unix_seconds) - _raw_unix()


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def iso8601(unix_seconds=None):
    """UTC timestamp as the OCPP dateTime string, e.g. 2026-11-24T03:36:00.123Z."""
    if unix_seconds is None:
        unix_seconds = now()
    ms = int(round(unix_seconds * 1000))
    secs, ms = divmod(ms, 1000)
    days, rem = divmod(secs, 86400)
    y, mo, d = _civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        y, mo, d, rem // 3600, rem // 60 % 60, rem % 60, ms)


_naive_seen = False  # a date-time without UTC offset was read (warned about once)


def parse_iso8601(s, naive_utc=True):
    """Parse an RFC 3339 date-time into unix seconds (float; whole seconds as an int where
    floats are single precision). Raises ValueError.

    A date-time without UTC offset ("2026-12-02T16:31:09.123", which some CSMS libraries
    send) is not RFC 3339; it is read as UTC, with one warning per boot, unless naive_utc
    is False. What the station sends always carries its Z (iso8601)."""
    global _naive_seen
    try:
        if len(s) < 19 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt" or s[13] != ":" \
                or s[16] != ":":
            raise ValueError
        y, mo, d = int(s[0:4]), int(s[5:7]), int(s[8:10])
        hh, mm, ss = int(s[11:13]), int(s[14:16]), int(s[17:19])
        i = 19
        frac = 0.0
        if i < len(s) and s[i] == ".":
            j = i + 1
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            if j == i + 1:
                raise ValueError
            frac = float("0" + s[i:j])
            i = j
        tz = s[i:]
        if tz in ("Z", "z"):
            off = 0
        elif len(tz) == 6 and tz[0] in "+-" and tz[3] == ":":
            off = (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60) * (1 if tz[0] == "+" else -1)
        elif tz == "" and naive_utc:
            off = 0
        else:
            raise ValueError
        if not (1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61):
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError("not an RFC 3339 date-time: %r" % (s,))
    if tz == "" and not _naive_seen:
        _naive_seen = True
        try:
            from firmware import log  # here, not at the top: log imports this module
            log.warn("clock", "date-time without UTC offset read as UTC: %r" % (s[:40],))
        except ImportError:  # compat used without the rest of the firmware (tools)
            pass
    t = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss - off
    return t if SINGLE_FLOAT else t + frac


# ---------------------------------------------------------------- ids
def random_bytes(n):
    return os.urandom(n)


def uuid4():
    """Random RFC 4122 version-4 UUID string (36 characters)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = "".join("%02x" % x for x in b)
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def random_int(lo, hi):
    """Uniform integer in [lo, hi] from the OS random source."""
    if hi <= lo:
        return lo
    span = hi - lo + 1
    r = int.from_bytes(os.urandom(4), "big")
    return lo + r % span


# ---------------------------------------------------------------- asyncio helpers
class Queue:
    """Minimal unbounded FIFO for asyncio on both targets (MicroPython has none built in)."""

    def __init__(self):
        self._items = []
        self._ev = asyncio.Event()

    def put_nowait(self, item):
        self._items.append(item)
        self._ev.set()

    async def get(self):
        while not self._items:
            self._ev.clear()
            await self._ev.wait()
        return self._items.pop(0)


if MICROPYTHON and sys.platform in ("linux", "darwin"):
    # The unix port's poller sleeps on file descriptors only: with any other object (the
    # real ThreadSafeFlag) registered it falls back to polling every object in 1 ms steps,
    # which cut the simulator's round trips from ~3,400/s to ~260/s (measured). The ESP32
    # port polls every object that way anyway, so it keeps asyncio.ThreadSafeFlag; here a
    # flag that its waiter checks every 10 ms (events reach the charging side <= 10 ms late;
    # the relay never waits for them).
    class ThreadSafeFlag:
        def __init__(self):
            self._set = False

        def set(self):
            self._set = True

        async def wait(self):
            while not self._set:
                await asyncio.sleep_ms(10)
            self._set = False
elif MICROPYTHON:
    ThreadSafeFlag = asyncio.ThreadSafeFlag
else:
    class ThreadSafeFlag:
        """asyncio.ThreadSafeFlag for CPython: set() from any thread wakes one wait().
        It binds to the loop of its waiter, so a flag outlives asyncio.run() in tests."""

        def __init__(self):
            self._loop = None
            self._ev = None
            self._pending = False

        def set(self):
            loop, ev = self._loop, self._ev
            if loop is None:
                self._pending = True
                return
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:    # that loop is closed
                self._pending = True

        async def wait(self):
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                self._ev = asyncio.Event()
                self._loop = loop
                self._pending = True    # a set() may have gone to the old loop
            if self._pending:
                self._pending = False
                return
            await self._ev.wait()
            self._ev.clear()


def current_task():
    return asyncio.current_task()


def create_task(coro):
    return asyncio.create_task(coro)


def run(coro):
    return asyncio.run(coro)


# ---------------------------------------------------------------- memory
# Largest gc.mem_alloc() seen by sample_mem() (the event-loop heartbeat calls it every
# 50 ms): the peak where micropython.mem_peak() is missing, as on the ESP32 port.
mem_sampled = [0]


def sample_mem():
    try:
        a = gc.mem_alloc()
    except AttributeError:  # CPython
        return
    if a > mem_sampled[0]:
        mem_sampled[0] = a


def mem_figures():
    """(free, allocated, peak) heap bytes where the runtime can tell, else Nones. The peak is
    micropython.mem_peak(), or without it the sampled one (a lower bound: garbage included,
    but only at the sampling instants)."""
    try:
        free, alloc = gc.mem_free(), gc.mem_alloc()
    except AttributeError:
        return None, None, None
    sample_mem()
    try:
        import micropython
        peak = micropython.mem_peak()
    except (ImportError, AttributeError):
        peak = mem_sampled[0]
    return free, alloc, peak


def collect():
    import gc
    gc.collect()


# ---------------------------------------------------------------- big numbers
def pow_mod(b, e, m):
    """b ** e % m. MicroPython's three-argument pow() is one C call that holds the GIL for
    the whole exponentiation (an inverse modulo a 384-bit prime: ~4 ms here, 100-200 ms on
    an ESP32), and the safety stepper's thread waits for it. One square or multiply per
    bytecode step instead: the longest hold is one 4096-bit product (~0.4 ms here)."""
    if not MICROPYTHON:
        return pow(b, e, m)
    r = 1
    b %= m
    n = len("%x" % e) * 4
    while n:
        n -= 1
        r = r * r % m
        if (e >> n) & 1:
            r = r * b % m
    return r % m


# ---------------------------------------------------------------- modules
def unload(name):
    """Forget an imported module (e.g. "board.config") so its RAM can be collected:
    drop it from sys.modules and from its parent package, which keeps an attribute per
    imported submodule. The modules it borrowed at import (borrow_all's owner) are given
    back, also when its import failed: both runtimes then drop the half-run module."""
    _lent.pop(name, None)
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    # checked first: MicroPython raises KeyError for a missing module attribute
    if parent is not None and attr in parent.__dict__:
        delattr(parent, attr)
    for dep in _owed.pop(name, ()):
        release(dep)


# Modules shared by code that comes and goes (firmware.net by the WebSocket handshake and the
# HTTP client, the HTTP client by GetLog and a firmware download): each user borrows the
# module and releases it, and the last release unloads it. Dropped while another user still
# ran, it would be imported again: a second copy on the heap.
_lent = {}  # module name -> how many borrowers hold it (only modules not loaded at the first borrow)
_owed = {}  # module name -> the names it borrowed at its import (borrow_all's owner)


def borrow(name, load=True):
    """Import module `name` for a while; give it back with release(name). A module that was
    loaded before its first borrow is someone's own import: borrowing it counts nothing and
    releasing it never unloads it. load=False counts a user without importing: a module the
    borrower's code imports later (a lazy `from firmware import x509`, or one module's
    import of another) is then the borrowers', and goes with the last release."""
    counted = name not in sys.modules or name in _lent
    if counted:
        _lent[name] = _lent.get(name, 0) + 1
    if load:
        try:
            return __import__(name, None, None, ("_",))
        except BaseException:
            if counted:
                release(name)
            raise


def release(name):
    n = _lent.get(name)
    if n is None:
        return
    if n > 1:
        _lent[name] = n - 1
    else:
        unload(name)


def call_lent(name, fn, *args):
    """Module `name`'s function `fn`(*args), the module borrowed only for the call (a look
    at a file that does not justify keeping its code resident)."""
    mod = borrow(name)
    try:
        return getattr(mod, fn)(*args)
    finally:
        release(name)


def borrow_all(names, owner=None):
    """borrow(name, False) for each name (a tuple), all or none. A module borrowing at its
    import passes owner=__name__: unloading it gives them back even if its import failed."""
    i = 0
    try:
        for n in names:
            borrow(n, False)
            i += 1
    except BaseException:
        release_all(names[:i])
        raise
    if owner is not None:
        _owed[owner] = names


def release_all(names):
    for n in names:
        release(n)


# ---------------------------------------------------------------- files
def path_exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    """mkdir -p (os.makedirs is missing on MicroPython)."""
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        if not path_exists(cur):
            os.mkdir(cur)


# ---------------------------------------------------------------- TLS / sockets (ws.py)
def exc_text(e):
    t = " ".join(str(e).split())  # mbedTLS texts come wrapped in newlines
    return t if t else type(e).__name__


def tls_context(cafile=None, certfile=None, keyfile=None):
    """Client TLS context verifying the server against `cafile` (PEM or DER path).

    Without a CA file CPython falls back to the system store; MicroPython has none,
    so it refuses rather than silently skipping verification."""
    import ssl
    if not MICROPYTHON:
        ctx = ssl.create_default_context(cafile=cafile)
        # mbedTLS takes every certificate it is given as a trust anchor; OpenSSL only
        # self-signed ones unless told so. An installed CSMS root may be signed by the root
        # it replaced (AdditionalRootCertificateCheck, M05.FR.10): trust it the same way.
        ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
        # A00.FR.314: TLS 1.2 or higher, whatever this OpenSSL's default (MicroPython's mbedTLS
        # builds carry no protocol below 1.2)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        return ctx
    if not cafile:
        raise ValueError("TLS (wss://, https://) needs a CA file on this runtime")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    # This mbedTLS build parses DER only, one certificate per call; calls accumulate.
    for label, der in _der_blocks(cafile):
        ctx.load_verify_locations(cadata=der)
    if certfile:
        cert = [d for label, d in _der_blocks(certfile) if b"CERTIFICATE" in label]
        key = [d for label, d in _der_blocks(keyfile or certfile) if b"PRIVATE KEY" in label]
        if not cert or not key:
            raise ValueError("no certificate/private key in %s" % certfile)
        ctx.load_cert_chain(cert[0], key[0])
    return ctx


def _der_blocks(path):
    """[(label, der)] of every PEM block in a file, read line by line; a file without
    PEM armour is taken as one DER certificate."""
    import binascii
    out = []
    cur = None
    label = b""
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line.startswith(b"-----BEGIN"):
                cur = []
                label = line
            elif line.startswith(b"-----END"):
                if cur is not None:
                    out.append((label, binascii.a2b_base64(b"".join(cur))))
                cur = None
            elif cur is not None:
                cur.append(line)
    if not out:
        with open(path, "rb") as f:
            out.append((b"CERTIFICATE", f.read()))
    return out


# ---------------------------------------------------------------- DNS cache
# socket.getaddrinfo blocks the whole VM on a board (every task, the safety loop too), for
# seconds when the WiFi is up but DNS is not. So a name is looked up once and its address
# reused. It is looked up again only after a connection to that address failed, and not
# within RESOLVE_RETRY_MS of the previous lookup: the reconnect back-off tops out near
# 5.5 min, so a long outage costs at most one lookup every other attempt, and a CSMS that
# really moved is found again within about 10 min. A lookup that failed slowly (DNS
# unreachable) waits as long, or until the WiFi reconnects; a quick failure (no network
# yet, unknown name) may be retried at once.
RESOLVE_RETRY_MS = const(600000)
_SLOW_LOOKUP_MS = const(1000)
_dns = {}  # host -> [addresses (preferred first), ticks of the lookup, ticks when due or None]


def is_ip(host):
    if ":" in host:
        return True
    p = host.split(".")
    return len(p) == 4 and all(x.isdigit() for x in p)


def _lookup(host, port):
    """The host's addresses as strings, in getaddrinfo order. Blocks for DNS."""
    import socket
    out = []
    for ai in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sa = ai[-1]
        if not isinstance(sa, tuple):  # unix MicroPython: a raw struct sockaddr
            sa = socket.sockaddr(sa)
            sa = (socket.inet_ntop(sa[0], sa[1]),)
        if sa[0] not in out:
            out.append(sa[0])
    if not out:
        raise OSError("no address for %s" % host)
    return out


def resolve(host, port):
    """The address to connect to for `host`: an IP literal as it is, else the cached
    address, looked up when there is none or when it is due. Raises OSError."""
    if is_ip(host):
        return host
    e = _dns.get(host)
    if e is None or (e[2] is not None and ticks_diff(ticks_ms(), e[2]) >= 0):
        t0 = ticks_ms()
        try:
            e = _dns[host] = [_lookup(host, port), t0, None]
        except OSError:
            now = ticks_ms()
            if ticks_diff(now, t0) >= _SLOW_LOOKUP_MS:
                if e is None:
                    e = _dns[host] = [[], t0, None]
                e[1] = t0
                e[2] = ticks_add(now, RESOLVE_RETRY_MS)
            if e is None or not e[0]:
                raise
    if not e[0]:
        raise OSError("DNS lookup of %s failed, next try in %d s"
                      % (host, ticks_diff(e[2], ticks_ms()) // 1000))
    return e[0][0]


def resolve_result(host, ok):
    """Report whether a connection to resolve(host)'s address worked. A failure moves
    the next address (if any) to the front and makes a new lookup due."""
    e = _dns.get(host)
    if e is None or not e[0]:
        return
    if ok:
        e[2] = None
        return
    if e[2] is None:
        age = ticks_diff(ticks_ms(), e[1])
        # a negative age: the lookup is so old that the ticks wrapped
        e[2] = ticks_add(e[1], RESOLVE_RETRY_MS) if 0 <= age < RESOLVE_RETRY_MS else ticks_ms()
    e[0].append(e[0].pop(0))


def resolve_reset():
    """The network link (re)connected: lookups that failed before it tell nothing about
    DNS now, so names with no address may be looked up at once."""
    for host in [h for h in _dns if not _dns[h][0]]:
        del _dns[host]


def is_cert_error(exc):
    """True when a TLS failure is a server-certificate verification failure."""
    name = type(exc).__name__
    if name == "SSLCertVerificationError":
        return True
    # MicroPython raises ValueError/OSError carrying mbedTLS's verify text, e.g.
    # "The certificate is not correctly signed by the trusted CA".
    text = str(exc).upper()
    return "CERTIFICATE" in text or "X509" in text


def abort_stream(writer):
    """Drop a stream's transport at once; pending reads on CPython then see EOF."""
    try:
        if MICROPYTHON:
            writer.s.close()
        else:
            writer.transport.abort()
    except Exception:
        pass


def tcp_nodelay(writer):
    """Best effort: disable Nagle on a MicroPython stream (CPython's asyncio already
    does). Plain sockets only; a TLS stream does not expose its socket."""
    if MICROPYTHON:
        try:
            writer.s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux and lwIP)
        except Exception:
            pass


# ---------------------------------------------------------------- UTF-8
def utf8_decode(b):
    """Strict UTF-8 decode; raises UnicodeError (MicroPython's own check is lax)."""
    s = str(b, "utf-8")
    if MICROPYTHON:
        _utf8_strict_tail(b)
    return s


def _utf8_strict_tail(b):
    # MicroPython rejects broken sequences but accepts overlong forms, surrogates and
    # code points above U+10FFFF; those all start with one of these lead bytes.
    for lead in (0xC0, 0xC1, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xF6, 0xF7):
        i = b.find(bytes((lead,)))
        while i >= 0:
            nxt = b[i + 1] if i + 1 < len(b) else 0x80
            if (lead < 0xC2 or lead > 0xF4
                    or (lead == 0xE0 and nxt < 0xA0)
                    or (lead == 0xED and nxt > 0x9F)
                    or (lead == 0xF0 and nxt < 0x90)
                    or (lead == 0xF4 and nxt > 0x8F)):
                raise UnicodeError("invalid UTF-8")
            i = b.find(bytes((lead,)), i + 1)


# ---------------------------------------------------------------- raw deflate (RFC 7692)
_SYNC_TAIL = b"\x00\x00\xff\xff"


def inflate_raw(data, wbits, limit):
    """Decompress one permessage-deflate message (trailer already stripped).

    Returns the bytes, or None as soon as the output would exceed `limit` bytes, so a
    zip bomb costs at most limit plus one chunk."""
    if MICROPYTHON:
        import io
        import deflate
        # An empty final stored block after the sync marker ends the stream cleanly.
        src = io.BytesIO(bytes(data) + _SYNC_TAIL + b"\x01\x00\x00\xff\xff")
        d = deflate.DeflateIO(src, deflate.RAW, wbits)
        chunk = bytearray(512)
        out = bytearray()
        while True:
            k = d.readinto(chunk)
            if not k:
                return out
            if len(out) + k > limit:
                return None
            out.extend(memoryview(chunk)[:k])
    import zlib
    d = zlib.decompressobj(-wbits)
    out = d.decompress(bytes(data) + _SYNC_TAIL, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        return None
    return out


def _probe_deflate_write():
    try:
        import deflate
        return hasattr(deflate.DeflateIO, "write")
    except ImportError:
        return False


# MicroPython builds without MICROPY_PY_DEFLATE_COMPRESS can only inflate.
CAN_DEFLATE = _probe_deflate_write() if MICROPYTHON else True


def deflate_raw(data, wbits=15):
    """Compress one message for permessage-deflate (no context takeover), trailer
    stripped; returns None when this runtime cannot compress."""
    if not CAN_DEFLATE:
        return None
    if MICROPYTHON:
        import io
        import deflate
        out = io.BytesIO()
        d = deflate.DeflateIO(out, deflate.RAW, wbits)
        d.write(data)
        d.close()
        # This ends with a BFINAL block instead of a sync flush; RFC 7692 allows it and
        # the receiver's appended 00 00 ff ff then lies after the end of the stream.
        return out.getvalue()
    import zlib
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(_SYNC_TAIL) else out


async def read_exactly(reader, n):
    """n bytes from an asyncio stream as one buffer of exactly n bytes.

    MicroPython's readexactly grows a bytes object piece by piece (quadratic copying,
    twice the RAM at the end); reading into one preallocated bytearray avoids both."""
    if not MICROPYTHON:
        return await reader.readexactly(n)
    buf = bytearray(n)
    mv = memoryview(buf)
    got = 0
    while got < n:
        k = await reader.readinto(mv[got:])
        if k is None:
            continue
        if not k:
            raise EOFError
        got += k
    return buf
