"""WebSocket client (firmware/ws.py) against real loopback servers, on CPython and under
the micropython executable. The client side of each scenario is tests/ws_helpers.py."""
import asyncio
import base64
import hashlib
import json
import os
import ssl
import struct
import subprocess

import pytest
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from firmware import ws as wsmod
from tests import ws_helpers
from tests.harness import ROOT, micropython_exe

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MP_BOOT = "import sys; sys.path.append('tests'); import ws_helpers; ws_helpers.main()"


# ------------------------------------------------------------------ running the client
async def client(target, args):
    """Run one client scenario on `target`; returns the list of emitted dicts."""
    if target == "cpython":
        events = []
        await asyncio.wait_for(ws_helpers.run(args, events.append), 20)
        return events
    proc = await asyncio.create_subprocess_exec(
        micropython_exe(), "-c", MP_BOOT, cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(
            proc.communicate((json.dumps(args, ensure_ascii=False) + "\n").encode()), 20)
    except asyncio.TimeoutError:
        proc.kill()
        raise
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode == 0, err.decode()
    assert not any("crash" in e for e in events), (events, err.decode())
    return events


def closing(events):
    return [e for e in events if "closed" in e][-1]


# ------------------------------------------------------------------ websockets servers
def ws_url(server, path="/CS01", scheme="ws", host="127.0.0.1"):
    port = server.sockets[0].getsockname()[1]
    return "%s://%s:%d%s" % (scheme, host, port, path)


async def echo_handler(conn):
    async for msg in conn:
        if isinstance(msg, bytes) and len(msg) > 60000:
            await conn.send("len=%d" % len(msg))
        else:
            await conn.send(msg)


def serve_ocpp(handler, **kw):
    kw.setdefault("subprotocols", ["ocpp2.0.1"])
    kw.setdefault("compression", None)
    return serve(handler, "127.0.0.1", 0, **kw)


def server_close_code(conn):
    rcvd = conn.protocol.close_rcvd
    return None if rcvd is None else rcvd.code


# ------------------------------------------------------------------ tests: handshake + data
def test_handshake_echo_text_binary_and_client_close(target):
    """Handshake with subprotocol ocpp2.0.1, text/binary echo incl. 16- and 64-bit lengths,
    client-initiated close seen by the server as 1000."""
    seen = {}

    async def handler(conn):
        seen["subprotocol"] = conn.subprotocol
        await echo_handler(conn)
        seen["close"] = server_close_code(conn)

    async def main():
        async with serve_ocpp(handler) as srv:
            big = "x" * 3000
            ev = await client(target, {
                "scenario": "echo", "url": ws_url(srv),
                "send": ["hello", "Grüße €😀", big,
                         {"hex": "00ff10"}, {"hex": "00010203", "repeat": 17500}],
                "close": [1000, "bye"]})
            await asyncio.sleep(0.05)
        assert ev[0]["connected"] and ev[0]["subprotocol"] == "ocpp2.0.1"
        assert ev[0]["deflate"] is False
        assert ev[1] == {"type": "text", "len": 5, "data": "hello", "same": True}
        assert ev[2]["data"] == "Grüße €😀" and ev[2]["same"]
        assert ev[3]["len"] == 3000 and ev[3]["same"]
        assert ev[4] == {"type": "binary", "len": 3, "hex": "00ff10", "same": True}
        assert ev[5]["data"] == "len=70000"
        assert ev[6] == {"closed": True, "code": 1000}
        assert seen == {"subprotocol": "ocpp2.0.1", "close": 1000}
    asyncio.run(main())


def test_subprotocol_not_selected_is_handshake_error(target):
    async def main():
        async with serve_ocpp(echo_handler, subprotocols=None) as srv:
            ev = await client(target, {"scenario": "connect", "url": ws_url(srv)})
        assert ev == [{"error": "WsHandshakeError",
                       "msg": "server did not select subprotocol ocpp2.0.1"}]
    asyncio.run(main())


def _basic_auth_checker(user, password, seen):
    expected = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def process_request(conn, request):
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != expected:
            return Response(401, "Unauthorized",
                            Headers([("WWW-Authenticate", 'Basic realm="ocpp"'),
                                     ("Content-Length", "0")]))
        return None
    return process_request


def _connect_with_basic_auth(target, server_password, client_password):
    """Connect as CS01 with client_password to a server expecting server_password; the
    client's events and the Authorization headers the server saw."""
    seen = []

    async def main():
        pr = _basic_auth_checker("CS01", server_password, seen)
        async with serve_ocpp(echo_handler, process_request=pr) as srv:
            return await client(target, {"scenario": "connect", "url": ws_url(srv),
                                         "username": "CS01", "password": client_password})
    return asyncio.run(main()), seen


def test_basic_auth_security_profile_1_accepted(target):
    """Security profile 1 Basic auth: user = identity, password = BasicAuthPassword."""
    ev, seen = _connect_with_basic_auth(target, "s3cret:pass-0123456789", "s3cret:pass-0123456789")
    assert ev[0]["connected"] and ev[-1] == {"closed": True, "code": 1000}
    assert seen == ["Basic " + base64.b64encode(b"CS01:s3cret:pass-0123456789").decode()]


def test_basic_auth_rejected_401_is_clear_error(target):
    ev, seen = _connect_with_basic_auth(target, "right-password", "wrong-password")
    assert len(seen) == 1 and seen[0].startswith("Basic ")
    assert ev[0]["error"] == "WsAuthError"  # a WsHandshakeError the station can tell apart
    assert "401" in ev[0]["msg"] and "Basic auth" in ev[0]["msg"]


def test_percent_encoded_identity_in_path(target):
    identity = "CS 01/ä+#?%"
    seen = []

    async def handler(conn):
        seen.append(conn.request.path)
        await conn.send(conn.request.path)
        await conn.wait_closed()

    async def main():
        path = "/ocpp/" + wsmod.quote_identity(identity)
        async with serve_ocpp(handler) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": ws_url(srv, path),
                                       "close_after_first": True})
        assert seen == ["/ocpp/CS%2001%2F%C3%A4%2B%23%3F%25"]
        assert ev[1]["data"] == seen[0]
    asyncio.run(main())


def test_quote_identity_unreserved_untouched():
    assert wsmod.quote_identity("Az09-._~") == "Az09-._~"
    assert wsmod.quote_identity("a b") == "a%20b"
    assert wsmod.quote_identity("€") == "%E2%82%AC"


def test_fragmented_messages_and_server_ping_and_close_4000(target):
    """websockets sends fragments for iterables; server ping must be answered; server
    close 4000 reaches the client as WsClosed(4000, reason)."""
    result = {}

    async def handler(conn):
        await conn.send(["Hel", "lo ", "wörld"])
        await conn.send([b"\x01\x02", b"\x03"])
        waiter = await conn.ping(b"srv-ping")
        try:
            await asyncio.wait_for(waiter, 3)
            result["pong"] = True
        except asyncio.TimeoutError:
            result["pong"] = False
        await conn.send("after-ping")
        await conn.close(4000, "going away now")

    async def main():
        async with serve_ocpp(handler) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": ws_url(srv)})
        assert ev[1]["data"] == "Hello wörld"
        assert ev[2]["hex"] == "010203"
        assert ev[3]["data"] == "after-ping"
        assert ev[4] == {"closed": 4000, "reason": "going away now", "flag": True}
        assert result == {"pong": True}
    asyncio.run(main())


@pytest.mark.parametrize("code", [1000, 4000])
def test_server_close_code_reaches_client(target, code):
    observed = {}

    async def handler(conn):
        await conn.close(code, "bye")
        observed["echo"] = server_close_code(conn)

    async def main():
        async with serve_ocpp(handler) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": ws_url(srv)})
        assert closing(ev) == {"closed": code, "reason": "bye", "flag": True}
        assert observed["echo"] == code  # the client echoed the close frame
    asyncio.run(main())


def test_oversize_message_closes_1009(target):
    observed = {}

    async def handler(conn):
        await conn.send("y" * 5000)
        await conn.wait_closed()
        observed["code"] = server_close_code(conn)

    async def main():
        async with serve_ocpp(handler) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": ws_url(srv),
                                       "max_size": 1000})
        assert closing(ev)["closed"] == 1009
        assert observed["code"] == 1009
    asyncio.run(main())


# ------------------------------------------------------------------ permessage-deflate
def test_permessage_deflate_roundtrip(target):
    seen = {}

    async def handler(conn):
        seen["ext"] = conn.request.headers.get("Sec-WebSocket-Extensions")
        seen["resp"] = conn.response.headers.get("Sec-WebSocket-Extensions")
        await echo_handler(conn)

    async def main():
        async with serve_ocpp(handler, compression="deflate") as srv:
            msg = json.dumps([2, "id-1", "BootNotification",
                              {"reason": "PowerUp", "pad": "abc" * 500}])
            ev = await client(target, {"scenario": "echo", "url": ws_url(srv), "deflate": True,
                                       "send": [msg, "short", {"hex": "41" * 300}]})
        assert ev[0]["deflate"] is True
        assert "server_max_window_bits=10" in seen["ext"]
        assert "server_no_context_takeover" in seen["resp"]
        assert all(e["same"] for e in ev[1:4])
        assert ev[4] == {"closed": True, "code": 1000}
    asyncio.run(main())


def test_permessage_deflate_zip_bomb_closes_1009(target):
    observed = {}

    async def handler(conn):
        await conn.send("a" * 300000)  # compresses to well under 1 KB
        await conn.wait_closed()
        observed["code"] = server_close_code(conn)

    async def main():
        async with serve_ocpp(handler, compression="deflate") as srv:
            ev = await client(target, {"scenario": "recv_all", "url": ws_url(srv),
                                       "deflate": True, "max_size": 65536})
        assert closing(ev)["closed"] == 1009
        assert observed["code"] == 1009
    asyncio.run(main())


# ------------------------------------------------------------------ raw server (protocol errors)
def frame(op, payload=b"", fin=True, rsv=0, mask=False, ext127=False):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if ext127:
        hdr = struct.pack(">BBQ", b0, mbit | 127, n)
    elif n < 126:
        hdr = struct.pack(">BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack(">BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack(">BBQ", b0, mbit | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        hdr += key
    return hdr + payload


async def read_client_frame(r):
    b0, b1 = await r.readexactly(2)
    assert b1 & 0x80, "client frames must be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await r.readexactly(8))[0]
    key = await r.readexactly(4)
    data = await r.readexactly(n)
    return b0 & 0x0F, bytes(c ^ key[i % 4] for i, c in enumerate(data))


class RawServer:
    """Minimal WebSocket server: answers the upgrade, then runs `script(reader, writer, log)`."""

    def __init__(self, script, answer=True, extra_headers=b""):
        self.script = script
        self.answer = answer
        self.extra = extra_headers
        self.log = []

    async def _handle(self, r, w):
        try:
            req = await r.readuntil(b"\r\n\r\n")
            if not self.answer:
                await asyncio.sleep(5)
                return
            key = [ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n")
                   if ln.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Protocol: ocpp2.0.1\r\n"
                    + self.extra + b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.log.append(("request", req))
            await w.drain()
            await self.script(r, w, self.log)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.log.append(("eof",))
        finally:
            w.close()

    async def __aenter__(self):
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/CS01" % self.srv.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.srv.close()


async def read_until_close(r, log):
    while True:
        op, data = await read_client_frame(r)
        log.append((op, data))
        if op == 8:
            return struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None


def test_control_frames_interleaved_in_fragments(target):
    """Ping and unsolicited pong between continuation frames; UTF-8 split across frames;
    non-minimal 64-bit length accepted; close without status -> 1005."""
    async def script(r, w, log):
        euro = "€".encode()
        w.write(frame(1, b"Hel" + euro[:1], fin=False) + frame(9, b"p1")
                + frame(0, euro[1:] + b"lo", fin=False) + frame(10, b"x")
                + frame(0, b" world"))
        w.write(frame(2, b"\xde\xad", ext127=True))
        w.write(frame(8))
        await w.drain()
        log.append(("close", await read_until_close(r, log)))

    async def main():
        async with RawServer(script) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": srv.url})
            await asyncio.sleep(0.05)
        assert ev[1]["data"] == "Hel€lo world"
        assert ev[2]["hex"] == "dead"
        assert ev[3]["closed"] == 1005
        assert (10, b"p1") in srv.log            # ping answered with the same payload
        assert srv.log[-1] == ("close", None)    # empty close echoed
    asyncio.run(main())


PROTOCOL_ERRORS = [
    ("rsv1_without_extension", frame(1, b"hi", rsv=0x40), 1002),
    ("rsv2_set", frame(2, b"hi", rsv=0x20), 1002),
    ("masked_server_frame", frame(1, b"hi", mask=True), 1002),
    ("fragmented_ping", frame(9, b"p", fin=False), 1002),
    ("control_payload_over_125", frame(9, b"p" * 126), 1002),
    ("reserved_opcode_3", frame(3, b"x"), 1002),
    ("reserved_opcode_11", frame(11, b"x"), 1002),
    ("continuation_without_start", frame(0, b"x"), 1002),
    ("new_message_inside_fragmented", frame(1, b"a", fin=False) + frame(1, b"b"), 1002),
    ("close_one_byte_payload", frame(8, b"\x03"), 1002),
    ("close_code_1005_on_wire", frame(8, struct.pack(">H", 1005)), 1002),
    ("invalid_utf8", frame(1, b"ok\xff"), 1007),
    ("truncated_utf8", frame(1, b"\xe2\x82"), 1007),
    ("overlong_utf8", frame(1, b"\xc0\xaf"), 1007),
    ("surrogate_utf8", frame(1, b"\xed\xa0\x80"), 1007),
    ("above_u10ffff", frame(1, b"\xf4\x90\x80\x80"), 1007),
    ("oversize_64bit_length", struct.pack(">BBQ", 0x82, 127, 1 << 40), 1009),
]


@pytest.mark.parametrize("name,raw,code", PROTOCOL_ERRORS, ids=[p[0] for p in PROTOCOL_ERRORS])
def test_protocol_error_fails_connection(target, name, raw, code):
    async def script(r, w, log):
        w.write(raw)
        await w.drain()
        log.append(("close", await read_until_close(r, log)))

    async def main():
        async with RawServer(script) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": srv.url})
            await asyncio.sleep(0.05)
        assert closing(ev)["closed"] == code
        assert ("close", code) in srv.log
    asyncio.run(main())


def test_keepalive_detects_missing_pong(target):
    async def script(r, w, log):
        while True:
            op, data = await read_client_frame(r)
            log.append(op)

    async def main():
        async with RawServer(script) as srv:
            ev = await client(target, {"scenario": "keepalive", "url": srv.url,
                                       "interval_s": 0.2})
        c = closing(ev)
        assert c["closed"] == 1006 and "pong" in c["reason"]
        # one interval to send the ping, one to miss the pong; the upper bound leaves room for
        # a stall of the loaded test machine (a client that never notices hangs instead)
        assert 350 <= c["ms"] <= 5000, c
        assert srv.log.count(9) == 1  # one ping sent, never answered, then abort
        assert ev[-1] == {"keepalive_done": True}
    asyncio.run(main())


def test_keepalive_with_pongs_keeps_connection(target):
    async def script(r, w, log):
        for _ in range(3):
            op, data = await read_client_frame(r)
            log.append(op)
            w.write(frame(10, data))
            await w.drain()
        w.write(frame(1, b"still here") + frame(8, struct.pack(">H", 1000)))
        await w.drain()
        await read_until_close(r, log)

    async def main():
        async with RawServer(script) as srv:
            ev = await client(target, {"scenario": "keepalive", "url": srv.url,
                                       "interval_s": 0.1})
        assert ev[1]["data"] == "still here"
        assert closing(ev)["closed"] == 1000
        assert [e for e in srv.log if e == 9] == [9, 9, 9]
    asyncio.run(main())


def test_handshake_timeout(target):
    async def main():
        async with RawServer(None, answer=False) as srv:
            ev = await client(target, {"scenario": "connect", "url": srv.url,
                                       "timeout_ms": 300})
        assert ev[0]["error"] == "WsError" and "timed out" in ev[0]["msg"]
    asyncio.run(main())


def test_connection_refused_and_dns_failure(target):
    async def main():
        s = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = s.sockets[0].getsockname()[1]
        s.close()
        await s.wait_closed()
        ev = await client(target, {"scenario": "connect", "url": "ws://127.0.0.1:%d/x" % port})
        assert ev[0]["error"] == "WsError" and "cannot connect to 127.0.0.1:%d" % port in ev[0]["msg"]
        ev = await client(target, {"scenario": "connect", "url": "ws://no-such-host.invalid/x",
                                   "timeout_ms": 5000})
        assert ev[0]["error"] == "WsError"
        assert "no-such-host.invalid" in ev[0]["msg"]
    asyncio.run(main())


# ------------------------------------------------------------------ TLS (security profile 2)


def _server_tls(pki, cert="cert"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert], pki["key"])
    return ctx


@pytest.mark.parametrize("host,cafile", [("localhost", "ca"), ("127.0.0.1", "bundle")])
def test_wss_trusted_ca_connects(target, pki, host, cafile):
    """Server certificate checked against the CSMS root (by DNS name and by IP SAN; a
    PEM bundle whose second certificate is the root)."""
    async def main():
        async with serve_ocpp(echo_handler, ssl=_server_tls(pki)) as srv:
            ev = await client(target, {
                "scenario": "echo", "url": ws_url(srv, scheme="wss", host=host),
                "cafile": pki[cafile], "send": ["over tls", "z" * 5000]})
        assert ev[0]["connected"] is True
        assert ev[1]["data"] == "over tls" and ev[2]["same"]
        assert ev[3] == {"closed": True, "code": 1000}
    asyncio.run(main())


@pytest.mark.parametrize("case", ["untrusted_ca", "hostname_mismatch"])
def test_wss_verification_failure_is_handshake_error(target, pki, case):
    cafile, cert = ("other_ca", "cert") if case == "untrusted_ca" else ("ca", "wrong_name")

    async def main():
        async with serve_ocpp(echo_handler, ssl=_server_tls(pki, cert)) as srv:
            ev = await client(target, {
                "scenario": "connect", "url": ws_url(srv, scheme="wss", host="localhost"),
                "cafile": pki[cafile]})
        assert ev[0]["error"] == "WsCertError", ev  # a WsHandshakeError subclass
        assert ev[0]["msg"].startswith("TLS certificate verification failed"), ev
    asyncio.run(main())


def test_close_while_another_task_receives(target):
    """close() from one task while another is blocked in recv(): the server sees 1000, the
    reader gets WsClosed, later send()/recv() raise WsClosed."""
    observed = {}

    async def handler(conn):
        await conn.wait_closed()
        observed["code"] = server_close_code(conn)

    async def main():
        async with serve_ocpp(handler) as srv:
            ev = await client(target, {"scenario": "close_while_receiving", "url": ws_url(srv)})
        byk = {k: e for e in ev for k in e}
        assert byk["reader_closed"]["reader_closed"] == 1000
        # close() returned on the server's echo, not by waiting out its close timeout
        assert byk["closed"]["closed"] == 1000 and byk["closed"]["close_ms"] < wsmod._CLOSE_WAIT_MS
        assert byk["late_send"] == {"late_send": "WsClosed", "code": 1000}
        assert byk["late_recv"] == {"late_recv": "WsClosed", "code": 1000}
        assert byk["reader_done"] == {"reader_done": True}
        assert observed["code"] == 1000
    asyncio.run(main())


def test_permessage_deflate_frames_on_the_wire(target):
    """Compressed fragmented message (RSV1 on the first frame only), a message ending in a
    BFINAL block, and the client's own frames: RSV1 + raw deflate where the runtime can
    compress, plain frames where it cannot (both legal per RFC 7692)."""
    import zlib
    text = json.dumps([3, "m1", {"status": "Accepted", "pad": "0123456789" * 40}])

    def sync_deflate(data):
        c = zlib.compressobj(6, zlib.DEFLATED, -10)
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def final_deflate(data):
        c = zlib.compressobj(6, zlib.DEFLATED, -10)
        return c.compress(data) + c.flush(zlib.Z_FINISH)

    async def script(r, w, log):
        z = sync_deflate(text.encode())
        half = len(z) // 2
        w.write(frame(1, z[:half], fin=False, rsv=0x40) + frame(0, z[half:]))
        w.write(frame(2, final_deflate(b"\x00" * 2000), rsv=0x40))
        await w.drain()
        b0, b1 = await r.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await r.readexactly(2))[0]
        key = await r.readexactly(4)
        data = bytes(c ^ key[i % 4] for i, c in enumerate(await r.readexactly(n)))
        if b0 & 0x40:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        log.append(("client_frame", b0 & 0x40, data))
        w.write(frame(8, struct.pack(">H", 1000)))
        await w.drain()
        await read_until_close(r, log)

    ext = (b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
           b"client_no_context_takeover; server_max_window_bits=10\r\n")

    async def main():
        async with RawServer(script, extra_headers=ext) as srv:
            ev = await client(target, {"scenario": "recv_all", "url": srv.url, "deflate": True,
                                       "hello": "x" * 300})
        assert ev[0]["deflate"] is True
        assert ev[1]["type"] == "text" and ev[1]["len"] == len(text)
        assert ev[2] == {"type": "binary", "len": 2000, "hex": None}
        assert closing(ev)["closed"] == 1000
        frames = [e for e in srv.log if e[0] == "client_frame"]
        assert frames[0][2] == b"x" * 300
        assert bool(frames[0][1]) == ev[0]["can_deflate"]
        if target == "cpython":
            assert frames[0][1]  # CPython always has zlib
    asyncio.run(main())


def test_permessage_deflate_unoffered_parameter_rejected(target):
    """The server may not add client_max_window_bits the client did not offer."""
    ext = (b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
           b"client_max_window_bits=9\r\n")

    async def main():
        async with RawServer(lambda r, w, log: asyncio.sleep(0), extra_headers=ext) as srv:
            ev = await client(target, {"scenario": "connect", "url": srv.url, "deflate": True})
        assert ev[0]["error"] == "WsHandshakeError" and "client_max_window_bits" in ev[0]["msg"]
    asyncio.run(main())


# ------------------------------------------------------------------ handshake module lifetime
# The handshake (firmware.ws_handshake) and firmware.net are on the heap only while a
# connection is being opened; net is shared with the HTTP client, so it stays (the same
# module object, never a second copy) while a download has it, and goes with the last user.
SHARED_NET = r"""
import sys, json
from firmware import compat, ws
from firmware.compat import asyncio
PORT = int(sys.argv[1])
WATCH = ("firmware.ws_handshake", "firmware.net", "firmware.http_client")
out = []
def mods():
    return [m for m in WATCH if m in sys.modules]
async def main():
    global go, srv_got
    go = asyncio.Event()
    srv_got = []
    async def handler(r, w):
        await r.readline()
        srv_got.append(1)
        await go.wait()   # the upgrade stays unanswered until the client side looked
        w.close()
        await w.wait_closed()
    srv = await asyncio.start_server(handler, "127.0.0.1", PORT)
    out.append(["idle", mods()])
    for first in ("download", "connect"):
        go = asyncio.Event()
        srv_got = []
        if first == "download":
            from firmware import http_client
        t = asyncio.create_task(ws.connect("ws://127.0.0.1:%d/CS" % PORT, timeout_ms=20000))
        for _ in range(1000):  # until the upgrade request has reached the server
            if srv_got:
                break
            await compat.sleep_ms(10)
        if first == "connect":
            from firmware import http_client
        out.append([first + " first, during", mods(), http_client.net is sys.modules["firmware.net"]])
        go.set()
        try:
            await t
            out.append(["connected?"])
        except ws.WsError:
            out.append(["failed"])  # the server hung up: the attempt failed
        out.append([first + " first, after", mods(), http_client.net is sys.modules.get("firmware.net")])
        compat.unload("firmware.http_client")
        http_client = None
        out.append(["download over", mods()])
    srv.close()
asyncio.run(main())
print(json.dumps(out))
"""


def test_handshake_module_and_net_unloaded_after_connect_and_shared_with_http(target):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    exe = [micropython_exe()] if target == "micropython" else [os.sys.executable]
    p = subprocess.run(exe + ["-c", SHARED_NET, str(port)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    during = ["firmware.ws_handshake", "firmware.net", "firmware.http_client"]
    assert out == [
        ["idle", []],
        ["download first, during", during, True],
        ["failed"],
        ["download first, after", ["firmware.net", "firmware.http_client"], True],
        ["download over", []],
        ["connect first, during", during, True],
        ["failed"],
        ["connect first, after", ["firmware.net", "firmware.http_client"], True],
        ["download over", []],
    ], p.stderr


# GetLog (firmware.get_log, an on-demand block) and a firmware download (fw_job's download step)
# both borrow the HTTP client: whichever ends first leaves it (and firmware.net) to the other,
# the same module objects, and the last one drops them; a module someone imported for good
# is never dropped by a borrower's release.
SHARED_HTTP = r"""
import sys, json
from firmware import compat
WATCH = ("firmware.get_log", "firmware.http_client", "firmware.net")
out = []
def mods():
    return [m for m in WATCH if m in sys.modules]
for first in ("getlog", "download"):
    if first == "getlog":
        from firmware import get_log
        http = compat.borrow("firmware.http_client")
    else:
        http = compat.borrow("firmware.http_client")
        from firmware import get_log
    same = get_log.http_client is http and http.net is sys.modules["firmware.net"]
    out.append([first + " first, both", mods(), same])
    if first == "getlog":
        compat.unload("firmware.get_log")
    else:
        compat.release("firmware.http_client")
    get_log = None
    out.append([first + " first, one left", mods(), sys.modules.get("firmware.http_client") is http])
    if first == "getlog":
        compat.release("firmware.http_client")
    else:
        compat.unload("firmware.get_log")
    http = None
    out.append([first + " first, both over", mods()])
import firmware.log
mine = compat.borrow("firmware.log")
compat.release("firmware.log")
out.append(["resident kept", "firmware.log" in sys.modules and sys.modules["firmware.log"] is mine])
print(json.dumps(out))
"""


def test_http_client_shared_by_getlog_and_firmware_download_goes_with_the_last(target):
    exe = [micropython_exe()] if target == "micropython" else [os.sys.executable]
    p = subprocess.run(exe + ["-c", SHARED_HTTP], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    both = ["firmware.get_log", "firmware.http_client", "firmware.net"]
    assert out == [
        ["getlog first, both", both, True],
        ["getlog first, one left", ["firmware.http_client", "firmware.net"], True],
        ["getlog first, both over", []],
        ["download first, both", both, True],
        ["download first, one left", both, True],
        ["download first, both over", []],
        ["resident kept", True],
    ], p.stderr
