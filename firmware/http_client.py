# A streaming HTTP/1.1 client for file transfers (firmware download, log upload) on asyncio
# streams, identical on CPython and MicroPython. Bodies go between the socket and a file
# through one reused buffer of _CHUNK bytes: a body never exists in RAM as a whole. One
# request per connection (Connection: close), so a body without Content-Length or chunked
# encoding simply ends at EOF.
#
#   download(url, path, ...) -> bytes in the file; follows redirects, resumes with Range
#   upload(url, path, ...)   -> HTTP status; PUT the file as the body, or POST it as
#                               multipart/form-data
#
# Both raise HttpError(message, status or None); HttpBadResponse, a subclass, when the
# answer is not well-formed HTTP. URL, address cache and TLS set-up are shared
# with the WebSocket handshake (firmware/net.py, compat.tls_context): https verifies the server
# against `cafile`; without one CPython uses the system store and MicroPython refuses.
import binascii
import os

from firmware import compat
from firmware.compat import asyncio, const

BORROWED = ("firmware.net",)  # given back when this module is unloaded (compat.unload)
compat.borrow_all(BORROWED, __name__)
from firmware import net

_CHUNK = const(1024)
_MAX_HEADERS = const(48)
_MAX_LINE = const(2048)
_SCHEMES = (("http://", False, 80), ("https://", True, 443))
_REDIRECTS = (301, 302, 303, 307, 308)
_UPLOAD_REDIRECTS = const(5)  # 307/308 only: the file is sent again to the new place


class HttpError(Exception):
    """args: (message, HTTP status or None when there was no usable answer)."""

    def __init__(self, message, status=None):
        super().__init__(message, status)

    @property
    def status(self):
        return self.args[1]

    def __str__(self):
        return self.args[0]


class HttpBadResponse(HttpError):
    """The server's answer is not well-formed HTTP (a protocol mismatch, not a refusal)."""


class HttpTooLarge(HttpError):
    """The body is larger than the caller allows (max_bytes): retrying will not help."""


# ---------------------------------------------------------------- URL
def _unquote(s):
    """Percent-decoding of the user:pass part of a URL."""
    if "%" not in s:
        return s
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 37 and i + 2 < len(b):
            try:
                out.append(int(b[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    return bytes(out).decode()


def parse(url):
    """(secure, host, port, path, "Basic ..." or None) of an http:// or https:// URL."""
    auth = None
    k = url.find("://")
    if k > 0:
        end = len(url)
        for c in "/?#":  # the authority ends at the path, the query or the fragment
            i = url.find(c, k + 3)
            if 0 <= i < end:
                end = i
        authority = url[k + 3:end]
        at = authority.rfind("@")
        if at >= 0:
            cred = authority[:at]
            url = url[:k + 3] + url[k + 4 + at:]
            j = cred.find(":")
            user, pw = (cred, "") if j < 0 else (cred[:j], cred[j + 1:])
            auth = "Basic " + binascii.b2a_base64(
                (_unquote(user) + ":" + _unquote(pw)).encode()).strip().decode()
    try:
        secure, host, port, path = net.split_url(url, _SCHEMES)
    except ValueError as e:
        raise HttpError(str(e))
    return secure, host, port, path, auth


def _join(base, location):
    """Absolute URL of a redirect target (absolute, scheme-relative, absolute-path or
    relative to the current path). A redirect from https to http is refused: it would send
    the file (or fetch the firmware) in clear text."""
    if "://" in location:
        if base.startswith("https:") and not location.startswith("https:"):
            raise HttpError("redirect from https to %s refused" % location.split(":", 1)[0])
        return location
    k = base.find("://")
    end = base.find("/", k + 3)
    origin = base if end < 0 else base[:end]
    if location.startswith("//"):
        return base[:k + 1] + location
    if location.startswith("/"):
        return origin + location
    path = "/" if end < 0 else base[end:].split("?", 1)[0]
    return origin + path[:path.rfind("/") + 1] + location


# ---------------------------------------------------------------- connection
class _Conn:
    """One request/response on one connection; every read and write under timeout_ms.

    The timeout is one watchdog task per connection that cancels the transfer when a read or
    write has waited timeout_ms, rather than wait_for around every read: on MicroPython that
    allocates about 1 KB (two tasks and their closures) per 1 KB chunk."""

    def __init__(self, reader, writer, timeout_ms):
        self.r = reader
        self.w = writer
        self.t = timeout_ms
        self.status = 0
        self.reason = ""
        self.headers = {}
        self.interim = 0
        self._owner = None   # the task doing the transfer
        self._dog = None
        self._since = 0      # ticks when the pending read or write began
        self._busy = False
        self._fired = False

    def _begin(self):
        self._since = compat.ticks_ms()
        if self._dog is None:
            self._owner = asyncio.current_task()
            self._dog = asyncio.create_task(self._watch())
        self._busy = True

    def _timed_out(self, what):
        """The HttpError for a CancelledError, when it is the watchdog's; else None."""
        if not self._fired:
            return None
        un = getattr(self._owner, "uncancel", None)  # CPython 3.11+: the cancel is handled
        if un is not None:
            un()
        return HttpError("%s timed out after %d ms" % (what, self.t))

    async def _io(self, aw, what):
        self._begin()
        try:
            return await aw
        except compat.CancelledError:
            e = self._timed_out(what)
            if e is None:
                raise
            raise e
        finally:
            self._busy = False

    async def _watch(self):
        while True:
            left = self.t - compat.ticks_diff(compat.ticks_ms(), self._since)
            if left > 0 or not self._busy:
                await compat.sleep_ms(left if left > 0 else self.t)
                continue
            self._fired = True
            self._dog = None
            self._owner.cancel()
            return

    async def send(self, data):
        self.w.write(data if compat.MICROPYTHON else bytes(data))
        await self._io(self.w.drain(), "sending")

    async def line(self):
        ln = await self._io(self.r.readline(), "waiting for the server")
        if len(ln) > _MAX_LINE:
            raise HttpBadResponse("HTTP header line too long")
        return ln

    async def read_into(self, mv):
        """Bytes read into memoryview mv (0 at EOF). The hot path: _io inlined."""
        self._begin()
        try:
            if compat.MICROPYTHON:
                n = None
                while n is None:
                    n = await self.r.readinto(mv)
                return n
            b = await self.r.read(len(mv))
            mv[:len(b)] = b
            return len(b)
        except compat.CancelledError:
            e = self._timed_out("reading the body")
            if e is None:
                raise
            raise e
        finally:
            self._busy = False

    async def response(self):
        """Status line and headers (names lower-case; repeated ones joined with ", ")."""
        ln = await self.line()
        while ln in (b"\r\n", b"\n"):  # tolerated before the status line (RFC 9112 2.2)
            ln = await self.line()
        if not ln:
            raise HttpError("server closed the connection without an answer")
        parts = ln.decode().split(" ", 2)
        try:
            if not parts[0].startswith("HTTP/"):
                raise ValueError
            self.status = int(parts[1])
        except (IndexError, ValueError):
            raise HttpBadResponse("not an HTTP response: %r" % (ln[:80],))
        self.reason = parts[2].strip() if len(parts) > 2 else ""
        why = await net.read_headers(self.line, self.headers)
        if why:
            raise HttpBadResponse(why, self.status)
        if 100 <= self.status < 200:  # interim (100 Continue): the real answer follows
            self.interim += 1
            if self.interim > 4:
                raise HttpBadResponse("endless interim responses", self.status)
            self.headers = {}
            return await self.response()
        return self.status

    def close(self):
        d, self._dog = self._dog, None
        if d is not None:
            d.cancel()
        compat.abort_stream(self.w)


async def _open(secure, host, port, cafile, timeout_ms):
    ctx = None
    if secure:
        try:
            ctx = compat.tls_context(cafile)
        except (OSError, ValueError) as e:
            raise HttpError("TLS setup failed: %s" % compat.exc_text(e))
    try:
        reader, writer, addr = await compat.wait_for_ms(
            net.open_stream(host, port, ctx), timeout_ms)
    except compat.TimeoutError:
        compat.resolve_result(host, False)
        raise HttpError("connecting to %s:%d timed out after %d ms" % (host, port, timeout_ms))
    except net.OpenFailed as e:
        raise HttpError(net.connect_failure(secure, host, port, e.addr, e.exc, "http://")[1])
    return _Conn(reader, writer, timeout_ms), addr


async def _request(url, method, extra, cafile, timeout_ms, body=None):
    """Open a connection, send the request head (and `body`, an async callable taking the
    connection, if given), read the response head. Returns the connection."""
    secure, host, port, path, auth = parse(url)
    conn, addr = await _open(secure, host, port, cafile, timeout_ms)
    try:
        head = ["%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: ocpp-station\r\n"
                % (method, path, net.host_header(host, port, secure))]
        if auth:
            head.append("Authorization: %s\r\n" % auth)
        head.append(extra)
        head.append("\r\n")
        try:
            # MicroPython connects without blocking: a refused connection surfaces here
            await conn.send("".join(head).encode())
        except HttpError:
            raise
        except MemoryError:
            raise
        except Exception as e:
            raise HttpError(net.connect_failure(secure, host, port, addr, e, "http://")[1])
        if body is not None:
            try:
                await body(conn)
            except HttpError:
                raise
            except MemoryError:
                raise
            except Exception as e:
                # a server may answer (413, 500 ...) and close before taking the whole body
                try:
                    await conn.response()
                except Exception:
                    raise HttpError("sending to %s:%d failed: %s" % (host, port, compat.exc_text(e)))
                return conn
        try:
            await conn.response()
        except HttpError:
            raise
        except MemoryError:
            raise
        except Exception as e:
            kind, msg = net.connect_failure(secure, host, port, addr, e, "http://")
            if kind == net.FAIL_OTHER:
                msg = "reading from %s:%d failed: %s" % (host, port, compat.exc_text(e))
            raise HttpError(msg)
        compat.resolve_result(host, True)
        return conn
    except BaseException:
        conn.close()
        raise


# ---------------------------------------------------------------- download
def _file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _range_total(cr):
    """The complete length of a 206's Content-Range "bytes a-b/c", or None ("*" or bad)."""
    i = cr.rfind("/")
    t = cr[i + 1:].strip() if i >= 0 else ""
    return int(t) if t.isdigit() else None


def _read_meta(p):
    try:
        with open(p) as f:
            total, _, validator = f.read().partition("\n")
        return (int(total) if total.isdigit() else None), validator.strip() or None
    except (OSError, ValueError):
        return None


def _write_meta(p, total, validator):
    """What the server said of the file a download starts: its length and its ETag (or
    Last-Modified), so that a resume can tell whether it is still the same file."""
    try:
        with open(p, "w") as f:
            f.write("%s\n%s" % ("" if total is None else total, (validator or "")[:200]))
    except OSError:
        pass  # resuming without a check, as without a validator from the server


def _remove_file(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _range_start(cr):
    """First byte of a 206's Content-Range "bytes a-b/c", or -1."""
    cr = cr.strip()
    if not cr.startswith("bytes "):
        return -1
    try:
        return int(cr[6:].split("-", 1)[0])
    except ValueError:
        return -1


async def download(url, path, cafile=None, resume=True, timeout_ms=30000, max_redirects=5,
                   progress=None, max_bytes=None):
    """GET `url` into the file `path`; returns the bytes in the file. With `resume` and a
    partial `path` from an earlier attempt, asks for the rest (Range) and appends on 206,
    restarts on 200. A truncated body raises HttpError and leaves what arrived in the file
    for the next attempt. A file that is or would grow larger than max_bytes raises
    HttpTooLarge (after at most one chunk): a download must not fill the flash."""
    if max_bytes is not None:
        user = progress

        def progress(got, total):
            if got > max_bytes or (total is not None and total > max_bytes):
                raise HttpTooLarge("larger than the %d bytes there is room for" % max_bytes, None)
            if user is not None:
                user(got, total)
    redirects = 0
    meta_path = path + ".v"
    while True:
        have = _file_size(path) if resume else -1
        extra = "Range: bytes=%d-\r\n" % have if have > 0 else ""
        meta = _read_meta(meta_path) if have > 0 else None  # (total, validator) of that file
        if meta is not None and meta[1]:
            extra += "If-Range: %s\r\n" % meta[1]  # changed on the server: all again (200)
        conn = await _request(url, "GET", extra, cafile, timeout_ms)
        try:
            st = conn.status
            if st in _REDIRECTS:
                loc = conn.headers.get("location")
                if not loc:
                    raise HttpError("redirect without Location", st)
                redirects += 1
                if redirects > max_redirects:
                    raise HttpError("more than %d redirects" % max_redirects, st)
                url = _join(url, loc)
                continue
            if st == 416 and have > 0:
                # nothing after `have`: complete when the server's length says so
                cr = conn.headers.get("content-range", "")
                if cr.startswith("bytes */") and cr[8:].strip() == str(have):
                    _remove_file(meta_path)
                    return have
                raise HttpError("HTTP 416 %s for bytes %d-" % (conn.reason, have), st)
            if not 200 <= st < 300:
                raise HttpError("HTTP %d %s" % (st, conn.reason), st)
            append = False
            h = conn.headers
            if st == 206:
                cr = h.get("content-range", "")
                if have <= 0 or _range_start(cr) != have:
                    raise HttpBadResponse("unexpected partial content: %s" % cr, st)
                total = _range_total(cr)
                if meta is not None and meta[0] is not None and total is not None \
                        and total != meta[0]:
                    # the file on the server is not the one the first part came from (its
                    # length changed): joined, the two would fail the signature check
                    _remove_file(path)
                    _remove_file(meta_path)
                    continue
                append = True
            else:
                length = h.get("content-length")
                _write_meta(meta_path, int(length) if length and length.isdigit() else None,
                            h.get("etag") or h.get("last-modified"))
            got = await _body_to_file(conn, path, append, have if append else 0, progress)
            _remove_file(meta_path)
            return got
        finally:
            conn.close()


async def _body_to_file(conn, path, append, start, progress):
    h = conn.headers
    chunked = "chunked" in h.get("transfer-encoding", "").lower()
    length = None
    if not chunked and "content-length" in h:
        try:
            length = int(h["content-length"])
        except ValueError:
            raise HttpBadResponse("bad Content-Length: %r" % h["content-length"], conn.status)
    total = None if length is None else start + length
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    got = start
    with open(path, "ab" if append else "wb") as f:
        if chunked:
            while True:
                ln = await conn.line()
                hexs = ln.split(b";", 1)[0].strip()
                try:
                    if not hexs or hexs.strip(b"0123456789abcdefABCDEF"):
                        raise ValueError  # not plain hex digits (a sign, 0x, spaces)
                    size = int(hexs, 16)
                except ValueError:
                    raise HttpBadResponse("bad chunk size line: %r" % (ln[:40],), conn.status)
                if size == 0:
                    break
                got = await _copy(conn, f, mv, size, got, total, progress)
                if await conn.line() not in (b"\r\n", b"\n"):
                    raise HttpBadResponse("bad chunk end", conn.status)
            for _ in range(_MAX_HEADERS):  # trailers
                ln = await conn.line()
                if ln in (b"\r\n", b"\n"):
                    break
                if not ln:
                    raise HttpError("body truncated in the trailers", conn.status)
        else:
            got = await _copy(conn, f, mv, length, got, total, progress)
    return got


async def _copy(conn, f, mv, n, got, total, progress):
    """n bytes (None: up to EOF) from the connection to file f through mv."""
    left = n
    while left is None or left > 0:
        want = _CHUNK if left is None else min(_CHUNK, left)
        k = await conn.read_into(mv[:want])
        if not k:
            if left is None:
                break
            f.flush()
            raise HttpError("body truncated after %d bytes" % got, conn.status)
        f.write(mv[:k])
        got += k
        if left is not None:
            left -= k
        if progress is not None:
            progress(got, total)
        await asyncio.sleep(0)  # a loopback server keeps the buffer full: let others run
    return got


# ---------------------------------------------------------------- upload
def _quote_param(s):
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


async def upload(url, path, cafile=None, method="PUT", field="file", filename=None,
                 timeout_ms=30000):
    """Send the file `path`: PUT as the request body, or POST as the one part (named
    `field`, with `filename`, by default the file's name) of a multipart/form-data body.
    Returns the HTTP status (2xx); anything else raises HttpError. 307/308 redirects are
    followed (the file is sent again); other statuses, 3xx included, are errors."""
    method = method.upper()
    if method not in ("PUT", "POST"):
        raise HttpError("upload method must be PUT or POST, not %r" % method)
    size = _file_size(path)
    if size < 0:
        raise HttpError("no file %s" % path)
    pre = post = b""
    if method == "POST":
        boundary = "----ocpp" + binascii.hexlify(compat.random_bytes(12)).decode()
        name = filename or path.rsplit("/", 1)[-1]
        pre = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
               'Content-Type: application/octet-stream\r\n\r\n'
               % (boundary, _quote_param(field), _quote_param(name))).encode()
        post = ("\r\n--%s--\r\n" % boundary).encode()
        ctype = "multipart/form-data; boundary=" + boundary
    else:
        ctype = "application/octet-stream"
    extra = "Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(pre) + size + len(post))

    async def body(conn):
        if pre:
            await conn.send(pre)
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        sent = 0
        with open(path, "rb") as f:
            while sent < size:
                k = f.readinto(mv[:min(_CHUNK, size - sent)])
                if not k:
                    raise HttpError("%s shrank while it was sent" % path)
                await conn.send(mv[:k])
                sent += k
                await asyncio.sleep(0)
        if post:
            await conn.send(post)

    for _ in range(_UPLOAD_REDIRECTS + 1):
        conn = await _request(url, method, extra, cafile, timeout_ms, body)
        try:
            st = conn.status
            if st in (307, 308) and conn.headers.get("location"):
                url = _join(url, conn.headers["location"])
                continue
            if not 200 <= st < 300:
                raise HttpError("HTTP %d %s" % (st, conn.reason), st)
            return st
        finally:
            conn.close()
    raise HttpError("more than %d redirects" % _UPLOAD_REDIRECTS, st)
