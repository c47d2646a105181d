# Opening a WebSocket (RFC 6455 section 4): URL splitting, the TCP/TLS stream, the HTTP
# Upgrade request with Basic auth and the permessage-deflate offer (RFC 7692), and checking
# the server's 101 answer. Only imported while a connection is being opened (ws.connect
# loads it and drops it again, and with it firmware.net unless the HTTP client still uses
# it): the frame loop that runs for the connection's life is firmware.ws.
import binascii
import hashlib

from firmware import compat
from firmware.compat import const
from firmware.ws import (WebSocket, WsAuthError, WsCertError, WsError, WsHandshakeError,
                         WsRefused)

BORROWED = ("firmware.net",)  # given back when this module is unloaded (compat.unload)
compat.borrow_all(BORROWED, __name__)
from firmware import net

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFAULT_WBITS = const(10)  # 1 KB inflate window on the device

_exc_text = compat.exc_text
_SCHEMES = (("ws://", False, 80), ("wss://", True, 443))


def _b64(b):
    return binascii.b2a_base64(b).strip()


def split_url(url):
    """(secure, host, port, path) of a ws:// or wss:// URL; WsError says what is wrong."""
    try:
        return net.split_url(url, _SCHEMES)
    except ValueError as e:
        raise WsError(str(e))


def _parse_extension(value, offered_bits):
    """Server's permessage-deflate answer -> inflate window bits; raises on anything
    we did not offer."""
    if offered_bits == 0 or "," in value:
        raise WsHandshakeError("server selected an extension that was not offered: " + value)
    parts = [p.strip() for p in value.split(";")]
    if parts[0] != "permessage-deflate":
        raise WsHandshakeError("server selected an extension that was not offered: " + value)
    bits = offered_bits
    server_nct = False
    for p in parts[1:]:
        if p == "server_no_context_takeover":
            server_nct = True
        elif p == "client_no_context_takeover":
            pass
        elif p.startswith("server_max_window_bits="):
            try:
                bits = int(p[23:].strip('"'))
            except ValueError:
                bits = 0
            if not 8 <= bits <= offered_bits:
                raise WsHandshakeError("bad permessage-deflate parameter: " + p)
        else:
            raise WsHandshakeError("bad permessage-deflate parameter: " + p)
    if not server_nct:
        raise WsHandshakeError("server refused server_no_context_takeover")
    return bits


async def connect(url, subprotocol="ocpp2.0.1", username=None, password=None,
                  cafile=None, max_size=65536, deflate=False, timeout_ms=10000,
                  certfile=None, keyfile=None):
    """ws.connect's work (see there)."""
    secure, host, port, path = split_url(url)
    wbits = 0
    if deflate:
        wbits = _DEFAULT_WBITS if deflate is True else int(deflate)
        if not 9 <= wbits <= 15:
            raise ValueError("deflate window bits must be 9..15")
    try:
        return await compat.wait_for_ms(
            _handshake(secure, host, port, path, subprotocol, username, password,
                       cafile, certfile, keyfile, max_size, wbits), timeout_ms)
    except compat.TimeoutError:
        compat.resolve_result(host, False)
        raise WsError("handshake with %s:%d timed out after %d ms" % (host, port, timeout_ms))


async def _handshake(secure, host, port, path, subprotocol, username, password,
                     cafile, certfile, keyfile, max_size, wbits):
    ctx = None
    if secure:
        try:
            ctx = compat.tls_context(cafile, certfile, keyfile)
        except (OSError, ValueError) as e:
            raise WsHandshakeError("TLS setup failed: %s" % _exc_text(e))
    try:
        reader, writer, addr = await net.open_stream(host, port, ctx)
    except net.OpenFailed as e:
        raise _connect_error(secure, host, port, e.addr, e.exc)
    ok = False
    try:
        ws = await _upgrade(reader, writer, host, port, secure, path, subprotocol,
                            username, password, max_size, wbits)
        ok = True
        compat.resolve_result(host, True)
        return ws
    except WsError:
        raise
    except Exception as e:
        # MicroPython connects without blocking, so a refused connection surfaces here.
        raise _connect_error(secure, host, port, addr, e)
    finally:
        if not ok:
            compat.abort_stream(writer)


def _connect_error(secure, host, port, addr, e):
    """The WsError for a failure before the server answered; the address is marked bad."""
    if isinstance(e, MemoryError):  # the station's to handle (Station.out_of_memory)
        return e
    kind, msg = net.connect_failure(secure, host, port, addr, e, "ws://")
    if kind == net.FAIL_CERT:
        return WsCertError(msg)
    if kind == net.FAIL_TLS:
        return WsRefused(msg)
    return WsError(msg)


async def _upgrade(reader, writer, host, port, secure, path, subprotocol,
                   username, password, max_size, wbits):
    key = _b64(compat.random_bytes(16))
    hosthdr = net.host_header(host, port, secure)
    req = ["GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           % (path, hosthdr, key.decode())]
    if subprotocol:
        req.append("Sec-WebSocket-Protocol: %s\r\n" % subprotocol)
    if username is not None:
        pw = password if password is not None else ""
        if isinstance(pw, str):
            pw = pw.encode()
        cred = _b64(username.encode() + b":" + pw).decode()
        req.append("Authorization: Basic %s\r\n" % cred)
    if wbits:
        req.append("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover;"
                   " server_no_context_takeover; server_max_window_bits=%d\r\n" % wbits)
    req.append("\r\n")
    writer.write("".join(req).encode())
    await writer.drain()

    line = await reader.readline()
    if not line:
        raise WsRefused("server closed the connection during the handshake")
    parts = line.decode().split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise WsHandshakeError("not an HTTP response: %r" % (line[:80],))
    text = parts[2].strip() if len(parts) > 2 else ""
    headers = {}
    why = await net.read_headers(reader.readline, headers)
    if why:
        raise WsHandshakeError(why)

    if status != 101:
        if status == 401:
            raise WsAuthError("server refused the connection: HTTP 401 %s"
                              " (Basic auth credentials rejected)" % text)
        raise WsHandshakeError("server refused the WebSocket upgrade: HTTP %d %s" % (status, text))
    if headers.get("upgrade", "").lower() != "websocket" or \
            "upgrade" not in headers.get("connection", "").lower():
        raise WsHandshakeError("server did not upgrade to WebSocket")
    expect = _b64(hashlib.sha1(key + _GUID).digest()).decode()
    if headers.get("sec-websocket-accept") != expect:
        raise WsHandshakeError("bad Sec-WebSocket-Accept from server")
    selected = headers.get("sec-websocket-protocol")
    if subprotocol and selected != subprotocol:
        raise WsHandshakeError("server did not select subprotocol %s" % subprotocol)
    inflate_bits = 0
    ext = headers.get("sec-websocket-extensions")
    if ext:
        inflate_bits = _parse_extension(ext, wbits)
    return WebSocket(reader, writer, selected, max_size, inflate_bits)
