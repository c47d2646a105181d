# What the WebSocket handshake (ws_handshake.py) and the HTTP client (http_client.py) share:
# URL splitting, opening a TCP or TLS stream to the cached address (compat.resolve), and
# telling apart why a connection failed before the server answered. Only on the heap while
# one of them is: both borrow it (compat.borrow) and the last to be unloaded drops it, so an
# HTTP download and a reconnect during it use one copy.
from firmware import compat
from firmware.compat import asyncio, const

_MAX_HEADERS = const(48)
_MAX_LINE = const(2048)

# why a connection failed (connect_failure)
FAIL_OTHER = 0
FAIL_CERT = 1     # the server's certificate did not verify
FAIL_TLS = 2      # TCP worked, the TLS handshake broke off


def split_url(url, schemes):
    """(secure, host, port, path) of `url`; `schemes` is ((prefix, secure, default port), ...).
    ValueError says what is wrong (the callers turn it into their own error)."""
    for prefix, secure, port in schemes:
        if url.startswith(prefix):
            rest = url[len(prefix):]
            break
    else:
        raise ValueError("not a %s URL: %r" % (" or ".join(s[0] for s in schemes), url))
    for bad in " \r\n\t":
        if bad in rest:
            raise ValueError("URL contains whitespace: %r" % (url,))
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if hostport.startswith("["):
        j = hostport.find("]")
        if j < 0:
            raise ValueError("bad IPv6 host in URL: %r" % (url,))
        host, tail = hostport[1:j], hostport[j + 1:]
    else:
        j = hostport.find(":")
        host, tail = (hostport, "") if j < 0 else (hostport[:j], hostport[j:])
    if tail:
        try:
            if tail[0] != ":":
                raise ValueError
            port = int(tail[1:])
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise ValueError("bad port in URL: %r" % (url,))
    if not host:
        raise ValueError("no host in URL: %r" % (url,))
    return secure, host, port, path


async def read_headers(readline, h):
    """Header lines from `readline()` (a coroutine) up to the blank line into the dict `h`:
    names lower-case, repeated ones joined with ", ". None, or what was wrong (the callers
    raise their own error)."""
    for _ in range(_MAX_HEADERS):
        ln = await readline()
        if len(ln) > _MAX_LINE:
            return "HTTP header line too long"
        if not ln or ln == b"\r\n" or ln == b"\n":
            return None
        i = ln.find(b":")
        if i > 0:
            k = ln[:i].decode().strip().lower()
            v = ln[i + 1:].decode().strip()
            h[k] = (h[k] + ", " + v) if k in h else v
    return "too many HTTP headers"


def host_header(host, port, secure):
    h = ("[%s]" % host) if ":" in host else host
    if port != (443 if secure else 80):
        h = "%s:%d" % (h, port)
    return h


async def open_stream(host, port, ctx):
    """(reader, writer, address) of a connection to `host`, TLS when `ctx` is an SSL context
    (SNI and the certificate check by the name). On failure raises OpenFailed carrying the
    address tried and the original exception."""
    addr = host
    try:
        # the cached address: a DNS lookup here would stall every task (compat.resolve)
        addr = compat.resolve(host, port)
        if ctx is None:
            reader, writer = await asyncio.open_connection(addr, port)
        else:
            reader, writer = await asyncio.open_connection(
                addr, port, ssl=ctx, server_hostname=host)
    except MemoryError:
        raise
    except Exception as e:
        raise OpenFailed(addr, e)
    compat.tcp_nodelay(writer)
    return reader, writer, addr


class OpenFailed(Exception):
    def __init__(self, addr, exc):
        super().__init__(addr, exc)
        self.addr = addr
        self.exc = exc


def _reached(e):
    n = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if n is None and isinstance(e, OSError) and e.args:
        n = e.args[0]
    # ECONNRESET or EPIPE (the server hung up, e.g. after refusing our client certificate,
    # before our HTTP request was written) during the handshake, or an mbedTLS error code
    # (negative, MicroPython)
    if n in (32, 104) or (isinstance(n, int) and n < 0) or type(e).__name__ in (
            "ConnectionResetError", "BrokenPipeError"):
        return True
    return "SSL" in type(e).__name__ or "ssl" in compat.exc_text(e).lower()


def connect_failure(secure, host, port, addr, e, plain_hint):
    """(FAIL_*, message) for a failure before the server answered; the address is marked
    bad. `plain_hint` names the plain URL scheme for the TLS-handshake message."""
    compat.resolve_result(host, False)
    if secure and compat.is_cert_error(e):
        return FAIL_CERT, "TLS certificate verification failed: %s" % compat.exc_text(e)
    if secure and _reached(e):
        # the TCP connection was made and the TLS handshake broke off: most often a plain
        # server behind a TLS URL
        return FAIL_TLS, ("TLS handshake with %s:%d failed: %s (does the server speak TLS? a "
                          "plain server needs a %s URL)" % (host, port, compat.exc_text(e), plain_hint))
    if addr != host:
        return FAIL_OTHER, "cannot connect to %s:%d (%s): %s" % (
            host, port, addr, compat.exc_text(e))
    return FAIL_OTHER, "cannot connect to %s:%d: %s" % (host, port, compat.exc_text(e))
