# WebSocket client (RFC 6455) with optional permessage-deflate (RFC 7692) on asyncio
# streams, identical on CPython and MicroPython.
#
# Resident for the station's life: the frame loop (WebSocket) and the errors. Opening a
# connection (URL, TCP/TLS, the HTTP Upgrade and its answer) is firmware.ws_handshake,
# imported by connect() and dropped again when the connection is up or the attempt failed.
import struct

from firmware import compat
from firmware.compat import asyncio, const

_CHUNK = const(1024)  # masking granularity
_CLOSE_WAIT_MS = const(2000)
_LINGER_MS = const(1000)

OP_CONT = const(0)
OP_TEXT = const(1)
OP_BINARY = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)


class WsError(Exception):
    pass


class WsHandshakeError(WsError):
    pass


class WsAuthError(WsHandshakeError):
    """The server refused our credentials (HTTP 401)."""


class WsCertError(WsHandshakeError):
    """The server's TLS certificate did not verify against the configured CA."""


class WsRefused(WsHandshakeError):
    """The server ended the connection during the TLS or HTTP handshake (what a TLS server
    that refuses the client certificate does), as opposed to not being reachable at all."""


class WsClosed(WsError):
    def __init__(self, code, reason=""):
        super().__init__("connection closed: %d %s" % (code, reason))
        self.code = code
        self.reason = reason


def quote_identity(s):
    """Percent-encode one URL path segment (RFC 3986: only unreserved chars stay)."""
    out = []
    for c in s.encode("utf-8"):
        if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122
                or c == 45 or c == 46 or c == 95 or c == 126):
            out.append(chr(c))
        else:
            out.append("%%%02X" % c)
    return "".join(out)


_exc_text = compat.exc_text
_HANDSHAKE = "firmware.ws_handshake"
_opening = 0  # connects and split_url calls using the handshake module now


def _handshake_module():
    # the handshake code (and firmware.net) is on the heap only while a connection is being
    # opened; counted, so that one user's end does not drop it under another (a second
    # import would put a second copy on the heap)
    global _opening
    _opening += 1
    return __import__(_HANDSHAKE, None, None, ("connect",))


def _handshake_done():
    global _opening
    _opening -= 1
    if _opening == 0:
        compat.unload(_HANDSHAKE)  # and firmware.net unless the HTTP client borrows it too


def split_url(url):
    """(secure, host, port, path) of a ws:// or wss:// URL; WsError says what is wrong."""
    try:
        return _handshake_module().split_url(url)
    finally:
        _handshake_done()


async def connect(url, subprotocol="ocpp2.0.1", username=None, password=None,
                  cafile=None, max_size=65536, deflate=False, timeout_ms=10000,
                  certfile=None, keyfile=None):
    """Open a WebSocket. `deflate` is False, True (10-bit window) or window bits 9..15.
    certfile/keyfile add a TLS client certificate (security profile 3)."""
    try:
        return await _handshake_module().connect(
            url, subprotocol, username, password, cafile, max_size, deflate, timeout_ms,
            certfile, keyfile)
    finally:
        _handshake_done()


def _mask(mv, key, full):
    """XOR memoryview `mv` (at most _CHUNK bytes) with the 4-byte key, in place.

    Big-integer XOR runs in C on both runtimes (~7x faster than a byte loop on the
    unix port); `full` is the precomputed mask for a whole _CHUNK."""
    m = len(mv)
    mk = full if m == _CHUNK else int.from_bytes((key * ((m + 3) // 4))[:m], "big")
    mv[:] = (int.from_bytes(mv, "big") ^ mk).to_bytes(m, "big")


async def _write_masked(writer, buf, hdr, parts, n, key):
    """Header, then the n payload bytes taken from `parts` (buffers) in order, masked and
    written _CHUNK bytes at a time through `buf` (the connection's one send buffer): a frame
    never exists as one buffer, so a 4 KB report part needs no 4 KB free block."""
    mv = memoryview(buf)
    h = len(hdr)
    mv[:h] = hdr
    full = int.from_bytes(key * (_CHUNK // 4), "big") if n >= _CHUNK else 0
    pos = h  # the first chunk shares the buffer (and the write) with the header
    room = min(n, _CHUNK)
    filled = 0
    left = n
    if not n:
        await _out(writer, mv[:h])
        return
    for p in parts:
        src = memoryview(p)
        off = 0
        size = len(src)
        while off < size:
            if room == 0:
                raise ValueError("frame parts longer than announced")
            k = min(size - off, room - filled)
            mv[pos + filled:pos + filled + k] = src[off:off + k]
            off += k
            filled += k
            if filled == room:  # every chunk starts at a payload offset divisible by 4
                _mask(mv[pos:pos + room], key, full)
                await _out(writer, mv[:pos + room])
                left -= room
                pos = 0
                filled = 0
                room = min(left, _CHUNK)
        src = None
    if left:
        raise ValueError("frame parts shorter than announced")


async def _out(writer, mv):
    # CPython's transport may keep what it could not send yet: give it a copy. MicroPython's
    # stream copies the unsent rest itself; draining each chunk keeps that rest small.
    writer.write(mv if compat.MICROPYTHON else bytes(mv))
    await writer.drain()


def _byte_len(s):
    return len(memoryview(s)) if compat.MICROPYTHON else len(s.encode())


def _as_buffer(s):
    # MicroPython lends a str's UTF-8 bytes as a buffer: no copy of a 4 KB report part
    return s if compat.MICROPYTHON else s.encode()


def _valid_close_code(code):
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class WebSocket:
    def __init__(self, reader, writer, subprotocol, max_size, inflate_bits):
        self._r = reader
        self._w = writer
        self.subprotocol = subprotocol
        self.max_size = max_size
        self.deflate = inflate_bits > 0
        self._wbits = inflate_bits
        self._compress = self.deflate and compat.CAN_DEFLATE
        self._lock = asyncio.Lock()
        self._close_ev = asyncio.Event()
        self._close_sent = False
        self._reader_task = None
        self._cancelled_by_abort = False
        self._pong_wait = False
        self._buf = bytearray(14 + _CHUNK)  # the send buffer, reused for every frame
        self.closed = False
        self.close_code = None
        self.close_reason = ""

    # ------------------------------------------------------------------ state
    def _finish(self, code, reason):
        if not self.closed:
            self.closed = True
            self.close_code = code
            self.close_reason = reason
            self._close_ev.set()

    def _closed_exc(self):
        return WsClosed(1006 if self.close_code is None else self.close_code, self.close_reason)

    def _drop(self):
        compat.abort_stream(self._w)
        t = self._reader_task
        # MicroPython leaves a task polling a closed socket forever; wake it explicitly.
        if compat.MICROPYTHON and t is not None and t is not asyncio.current_task():
            self._cancelled_by_abort = True
            t.cancel()

    def abort(self, reason="aborted"):
        """Drop the transport now; a pending recv() raises WsClosed(1006)."""
        self._finish(1006, reason)
        self._drop()

    # ------------------------------------------------------------------ sending
    async def _send_frame(self, opcode, payload, rsv=0, parts=None):
        """One frame: `payload` (a buffer) or, with `parts`, the buffers in `parts` whose
        lengths add up to `payload` (an int)."""
        async with self._lock:
            if self.closed or self._close_sent:
                raise self._closed_exc() if self.closed else WsClosed(1000, "closing")
            if opcode == OP_CLOSE:
                self._close_sent = True
            if parts is None:
                n = len(payload)
                parts = (payload,)
            else:
                n = payload
            hdr = bytearray(14)
            hdr[0] = 0x80 | rsv | opcode
            if n < 126:
                hdr[1] = 0x80 | n
                i = 2
            elif n < 65536:
                hdr[1] = 0xFE
                struct.pack_into(">H", hdr, 2, n)
                i = 4
            else:
                hdr[1] = 0xFF
                struct.pack_into(">Q", hdr, 2, n)
                i = 10
            key = compat.random_bytes(4)
            hdr[i:i + 4] = key
            try:
                await _write_masked(self._w, self._buf, memoryview(hdr)[:i + 4], parts, n, key)
            except OSError as e:
                self.abort("connection lost: %s" % _exc_text(e))
                raise self._closed_exc()

    async def send(self, data):
        """Send one message: str as text, bytes-like as binary, a list of str as one text
        message made of those pieces (written in order, never joined)."""
        if isinstance(data, list):
            if self._compress:  # one deflate stream over the whole text
                data = "".join(data)
            else:
                n = 0
                for p in data:
                    n += _byte_len(p)
                await self._send_frame(OP_TEXT, n, 0, [_as_buffer(p) for p in data]
                                       if not compat.MICROPYTHON else data)
                return
        if isinstance(data, str):
            op = OP_TEXT
            data = memoryview(data) if compat.MICROPYTHON else data.encode()
        else:
            op = OP_BINARY
        rsv = 0
        if self._compress and len(data) > 64:
            z = compat.deflate_raw(data, self._wbits)
            if z is not None and len(z) < len(data):
                data = z
                rsv = 0x40
        await self._send_frame(op, data, rsv)

    async def ping(self, payload=b""):
        if len(payload) > 125:
            raise ValueError("ping payload > 125 bytes")
        self._pong_wait = True
        await self._send_frame(OP_PING, payload)

    async def keepalive(self, interval_s):
        """Ping every interval_s; abort when the previous ping got no pong in time."""
        if not interval_s or interval_s <= 0:
            return
        ms = int(interval_s * 1000)
        while not self.closed:
            await compat.sleep_ms(ms)
            if self.closed:
                return
            if self._pong_wait:
                self.abort("no pong within %d ms" % ms)
                return
            try:
                await self.ping()
            except WsError:
                return

    async def close(self, code=1000, reason=""):
        """Close handshake: send close, wait briefly for the echo, drop the transport."""
        if self.closed:
            return
        try:
            if not self._close_sent:
                await self._send_frame(OP_CLOSE, _close_payload(code, reason))
            if self._reader_task is not None:
                await compat.wait_for_ms(self._close_ev.wait(), _CLOSE_WAIT_MS)
            else:
                await self._linger(_CLOSE_WAIT_MS)
        except Exception:
            pass
        self._finish(code, reason)
        self._drop()

    # ------------------------------------------------------------------ receiving
    async def _linger(self, ms):
        # Let the server end TCP first so our last frame is not lost to a reset.
        try:
            await compat.wait_for_ms(self._discard(), ms)
        except Exception:
            pass

    async def _discard(self):
        while True:
            if not await self._r.read(256):
                return

    async def _end(self, body, code, reason, linger):
        """Send our close frame unless it went already, record the close, give the peer time
        to end TCP first (linger), drop the transport."""
        if not self._close_sent:
            try:
                await self._send_frame(OP_CLOSE, body)
            except WsError:
                pass
        self._finish(code, reason)
        if linger:
            await self._linger(_LINGER_MS)
        self._drop()

    async def _fail(self, code, reason):
        if not self.closed:
            await self._end(_close_payload(code, reason), code, reason, True)
        raise self._closed_exc()

    async def recv(self):
        """Next whole message: str for text, bytes for binary. Raises WsClosed."""
        if self.closed:
            raise self._closed_exc()
        if self._reader_task is not None:
            raise WsError("recv() already in progress")
        self._reader_task = asyncio.current_task()
        try:
            return await self._recv_message()
        except WsClosed:
            raise
        except compat.CancelledError:
            if self._cancelled_by_abort:
                self._cancelled_by_abort = False
                raise self._closed_exc()
            raise
        except (OSError, EOFError) as e:
            self.abort("connection lost: %s" % (_exc_text(e) or "EOF"))
            raise self._closed_exc()
        finally:
            self._reader_task = None

    async def _recv_message(self):
        r = self._r

        def rx(n):
            return compat.read_exactly(r, n)
        op = None
        compressed = False
        size = 0
        buf = None
        while True:
            h = await rx(2)
            b0 = h[0]
            b1 = h[1]
            opcode = b0 & 0x0F
            rsv = b0 & 0x70
            if b1 & 0x80:
                await self._fail(1002, "masked frame from server")
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await rx(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await rx(8))[0]
            if opcode >= 8:
                if opcode > OP_PONG:
                    await self._fail(1002, "unknown opcode %d" % opcode)
                if not b0 & 0x80 or n > 125 or rsv:
                    await self._fail(1002, "bad control frame")
                await self._control(opcode, await rx(n) if n else b"")
                continue
            if opcode == OP_CONT:
                if op is None:
                    await self._fail(1002, "continuation frame without a message")
            elif opcode == OP_TEXT or opcode == OP_BINARY:
                if op is not None:
                    await self._fail(1002, "new message inside a fragmented one")
                op = opcode
                if rsv & 0x40 and self._wbits:
                    compressed = True
                    rsv &= ~0x40
            else:
                await self._fail(1002, "unknown opcode %d" % opcode)
            if rsv:
                await self._fail(1002, "reserved bits set")
            size += n
            if size > self.max_size:
                await self._fail(1009, "message larger than %d bytes" % self.max_size)
            payload = await rx(n) if n else b""
            if b0 & 0x80 and buf is None:
                data = payload
                break
            if buf is None:
                buf = bytearray(payload)
            else:
                buf.extend(payload)
            payload = None
            if b0 & 0x80:
                data = buf
                break
        buf = None
        if compressed:
            try:
                data = compat.inflate_raw(data, self._wbits, self.max_size)
            except (OSError, ValueError, EOFError) as e:
                await self._fail(1007, "bad deflate data: %s" % _exc_text(e))
            if data is None:
                await self._fail(1009, "message larger than %d bytes" % self.max_size)
        if op == OP_TEXT:
            try:
                return compat.utf8_decode(data)
            except UnicodeError:
                await self._fail(1007, "invalid UTF-8 in text message")
        return bytes(data)

    async def _control(self, opcode, payload):
        if opcode == OP_PING:
            if not self._close_sent:
                await self._send_frame(OP_PONG, payload)
        elif opcode == OP_PONG:
            self._pong_wait = False
        else:
            code = 1005
            reason = ""
            if len(payload) == 1:
                await self._fail(1002, "close frame with 1-byte payload")
            if len(payload) >= 2:
                code = struct.unpack(">H", payload[:2])[0]
                if not _valid_close_code(code):
                    await self._fail(1002, "invalid close code %d" % code)
                try:
                    reason = compat.utf8_decode(payload[2:])
                except UnicodeError:
                    await self._fail(1007, "invalid UTF-8 in close reason")
            # echo the status code; linger only when the peer started the close
            await self._end(payload[:2], code, reason, not self._close_sent)
            raise WsClosed(code, reason)


def _close_payload(code, reason):
    """Close frame body: status code and a reason cut to 123 bytes (control frames carry at
    most 125, RFC 6455 5.5)."""
    return struct.pack(">H", code) + reason.encode()[:123]
