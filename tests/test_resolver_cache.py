# The DNS cache (firmware/compat.py resolve): a blocking getaddrinfo stalls every task on
# the board, the safety loop included, so a host name is looked up once and its address
# reused, and looked up again only after a connection to it failed, at most once per
# RESOLVE_RETRY_MS. The fixture-free tests are portable (pytest and, through
# test_portable_under_micropython, the micropython binary) and fake DNS and the clock; the
# others run firmware/ws.py on both runtimes against loopback servers with a fake DNS.
from firmware import compat
from fake_machine import portable

RETRY = compat.RESOLVE_RETRY_MS
HOUR = 3600 * 1000


class FakeNet:
    """Fake compat._lookup and compat.ticks_ms. answers: host -> list of answers, each a list
    of addresses or ("fail", ms the lookup blocks); the last answer repeats."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []
        self.t = 5000
        self.step = 0  # ms the clock moves per reading, for code that waits on it

    def lookup(self, host, port):
        self.calls.append(host)
        ans = self.answers[host]
        a = ans.pop(0) if len(ans) > 1 else ans[0]
        if isinstance(a, tuple):
            self.t += a[1]
            raise OSError("lookup of %s timed out" % host)
        return list(a)

    def ticks(self):
        self.t += self.step
        return self.t

    def __enter__(self):
        self._saved = compat._lookup, compat.ticks_ms
        compat._lookup = self.lookup
        compat.ticks_ms = self.ticks
        compat._dns.clear()
        return self

    def __exit__(self, *exc):
        compat._lookup, compat.ticks_ms = self._saved
        compat._dns.clear()


def test_ip_literals_never_looked_up():
    with FakeNet({}) as net:
        for ip in ("127.0.0.1", "10.1.2.3", "::1", "fe80::1", "2001:db8::5"):
            assert compat.resolve(ip, 443) == ip
            compat.resolve_result(ip, False)
            assert compat.resolve(ip, 443) == ip
        assert net.calls == []
    for name in ("csms.example", "1.2.3", "1.2.3.x", "localhost"):
        assert not compat.is_ip(name)


def test_name_resolved_once_for_repeated_connects():
    with FakeNet({"csms.example": [["192.0.2.10"]]}) as net:
        for _ in range(5):
            assert compat.resolve("csms.example", 443) == "192.0.2.10"
            compat.resolve_result("csms.example", True)
        net.t += 24 * HOUR   # age alone never triggers a lookup
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert net.calls == ["csms.example"]


def test_failed_connect_re_resolves_at_most_once_per_retry_interval():
    with FakeNet({"csms.example": [["192.0.2.10"], ["192.0.2.20"], ["192.0.2.30"]]}) as net:
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        net.t += HOUR
        compat.resolve_result("csms.example", False)
        # the lookup is an hour old: look up again at once
        assert compat.resolve("csms.example", 443) == "192.0.2.20"
        assert len(net.calls) == 2
        # failing again right after that lookup: no new one for RETRY ms
        compat.resolve_result("csms.example", False)
        net.t += RETRY - 1
        assert compat.resolve("csms.example", 443) == "192.0.2.20"
        compat.resolve_result("csms.example", False)
        assert compat.resolve("csms.example", 443) == "192.0.2.20"
        assert len(net.calls) == 2
        net.t += 1
        assert compat.resolve("csms.example", 443) == "192.0.2.30"
        assert len(net.calls) == 3


def test_success_after_a_failure_cancels_the_lookup():
    with FakeNet({"csms.example": [["192.0.2.10"], ["192.0.2.20"]]}) as net:
        compat.resolve("csms.example", 443)
        net.t += 60 * 1000
        compat.resolve_result("csms.example", False)
        compat.resolve("csms.example", 443)
        compat.resolve_result("csms.example", True)  # the server was only restarting
        net.t += RETRY * 3
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert net.calls == ["csms.example"]


def test_failure_moves_to_the_next_address_without_dns():
    with FakeNet({"sim.local": [["::1", "127.0.0.1"]]}) as net:
        assert compat.resolve("sim.local", 80) == "::1"
        compat.resolve_result("sim.local", False)
        assert compat.resolve("sim.local", 80) == "127.0.0.1"
        assert net.calls == ["sim.local"]


def test_failed_re_lookup_keeps_the_old_address():
    with FakeNet({"csms.example": [["192.0.2.10"], ("fail", 5000), ["192.0.2.20"]]}) as net:
        compat.resolve("csms.example", 443)
        net.t += HOUR
        compat.resolve_result("csms.example", False)
        # DNS is down too: the lookup blocks, fails, and the old address is still tried
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        compat.resolve_result("csms.example", False)
        net.t += RETRY - 5000
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert len(net.calls) == 2
        net.t += 5000
        assert compat.resolve("csms.example", 443) == "192.0.2.20"
        assert len(net.calls) == 3


def test_slow_failed_lookup_is_not_repeated_within_the_interval():
    with FakeNet({"csms.example": [("fail", 8000), ["192.0.2.10"]]}) as net:
        portable.raises(OSError, compat.resolve, "csms.example", 443)
        net.t += RETRY - 1   # counted from the end of the failed lookup
        e = portable.raises(OSError, compat.resolve, "csms.example", 443)
        assert "csms.example" in str(e)
        assert len(net.calls) == 1
        net.t += 1
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert len(net.calls) == 2


def test_network_reconnect_forgets_failed_lookups_only():
    # board/net.py Wifi.connect calls resolve_reset: a lookup that timed out while the
    # link was down says nothing about DNS on the new link
    answers = {"csms.example": [["192.0.2.10"]],
               "ntp.example": [("fail", 8000), ["192.0.2.123"]]}
    with FakeNet(answers) as net:
        compat.resolve("csms.example", 443)
        portable.raises(OSError, compat.resolve, "ntp.example", 123)
        compat.resolve_reset()
        assert compat.resolve("ntp.example", 123) == "192.0.2.123"
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert net.calls == ["csms.example", "ntp.example", "ntp.example"]


def test_wifi_connect_resets_failed_lookups(monkeypatch):
    import types
    from board import net

    class WLAN:
        def __init__(self, _):
            self.up = False

        def active(self, on):
            pass

        def isconnected(self):
            return self.up

        def disconnect(self):
            pass

        def connect(self, ssid, pw):
            self.up = True

        def ifconfig(self):
            return ("192.0.2.99",)
    monkeypatch.setitem(__import__("sys").modules, "network",
                        types.SimpleNamespace(STA_IF=0, WLAN=WLAN, hostname=lambda h: None))
    calls = []
    monkeypatch.setattr(compat, "resolve_reset", lambda: calls.append(1))
    assert compat.run(net.Wifi("ssid", "pw", "cs1").connect()) is True
    assert calls == [1]


def test_quick_failed_lookup_may_be_retried():
    # no network yet at boot, or an unknown name: fails at once, costs nothing
    with FakeNet({"csms.example": [("fail", 0), ("fail", 0), ["192.0.2.10"]]}) as net:
        portable.raises(OSError, compat.resolve, "csms.example", 443)
        portable.raises(OSError, compat.resolve, "csms.example", 443)
        assert compat.resolve("csms.example", 443) == "192.0.2.10"
        assert len(net.calls) == 3


def test_ticks_wrap_since_the_lookup_allows_a_re_lookup():
    with FakeNet({"csms.example": [["192.0.2.10"], ["192.0.2.20"]]}) as net:
        compat.resolve("csms.example", 443)
        net.t -= 1000   # the tick counter wrapped: the lookup now looks like the future
        compat.resolve_result("csms.example", False)
        assert compat.resolve("csms.example", 443) == "192.0.2.20"


def test_ntp_sync_uses_the_cache():
    from board import net
    with FakeNet({"ntp.example": [["127.0.0.1"], ["127.0.0.1"]]}) as fake:
        fake.step = 50
        # nothing answers NTP on 127.0.0.1: each sync times out, a failure of the address
        assert compat.run(net.ntp_sync("ntp.example", timeout_ms=200)) is None
        assert compat.run(net.ntp_sync("ntp.example", timeout_ms=200)) is None
        assert fake.calls == ["ntp.example"]
        fake.t += RETRY
        assert compat.run(net.ntp_sync("ntp.example", timeout_ms=200)) is None
        assert compat.run(net.ntp_sync("127.0.0.1", timeout_ms=200)) is None
        assert fake.calls == ["ntp.example"] * 2


def test_real_lookup_of_localhost():
    # the sockaddr format differs: tuples on CPython and the ESP32, raw bytes on unix
    addrs = compat._lookup("localhost", 80)
    assert addrs and ("127.0.0.1" in addrs or "::1" in addrs), addrs
    compat._dns.clear()
    try:
        assert compat.resolve("localhost", 80) in addrs
    finally:
        compat._dns.clear()


def test_portable_under_micropython():
    if portable.MICROPYTHON:
        portable.skip("the driver itself")
    rc, out = portable.run_micropython(["test_resolver_cache"], timeout=60)
    if rc is None:
        portable.skip(out)
    ran = {ln.split()[1].split(".", 1)[1] for ln in out.splitlines() if ln.startswith("PASS ")}
    expected = {n for n, f in globals().items() if n.startswith("test_") and callable(f)
                and f.__code__.co_argcount == 0 and n != "test_portable_under_micropython"}
    assert rc == 0 and expected <= ran, out[-3000:]


# ------------------------------------------------------------------ ws.connect, both runtimes
# One client process per test: connects to each step's URL in turn, with a fake DNS
# (a["dns"]: host -> answers as for FakeNet) and a clock moved by a step's "advance_ms".
CLIENT = r"""
import sys, json
from firmware import compat, ws
from firmware.compat import asyncio
a = json.loads(sys.stdin.readline())
calls = []
skew = [0]
real_ticks = compat.ticks_ms
def lookup(host, port):
    calls.append(host)
    ans = a["dns"][host]
    return ans.pop(0) if len(ans) > 1 else ans[0]
compat._lookup = lookup
compat.ticks_ms = lambda: compat.ticks_add(real_ticks(), skew[0])
async def main():
    for step in a["steps"]:
        skew[0] += step.get("advance_ms", 0)
        r = {}
        try:
            w = await ws.connect(step["url"], cafile=step.get("cafile"), timeout_ms=5000)
            r["ok"] = True
            await w.close()
        except ws.WsError as e:
            r["error"] = type(e).__name__
            r["msg"] = str(e)
        r["lookups"] = len(calls)
        print(json.dumps(r))
asyncio.run(main())
"""


async def run_client(target, args):
    import asyncio
    import json
    import subprocess
    import sys
    from tests.harness import ROOT, micropython_exe
    exe = sys.executable if target == "cpython" else micropython_exe()
    proc = await asyncio.create_subprocess_exec(
        exe, "-c", CLIENT, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(args).encode() + b"\n"), 30)
    except asyncio.TimeoutError:
        proc.kill()
        raise
    assert proc.returncode == 0, err.decode()
    return [json.loads(ln) for ln in out.decode().splitlines() if ln.strip()]


def serve_ws(ssl_ctx=None):
    from websockets.asyncio.server import serve

    async def handler(conn):
        async for _ in conn:
            pass
    return serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"], ssl=ssl_ctx)


def port_of(srv):
    return srv.sockets[0].getsockname()[1]


def run(coro):
    import asyncio
    return asyncio.run(coro)


def test_ws_repeated_connects_resolve_once(target):
    async def main():
        async with serve_ws() as srv:
            url = "ws://csms.example:%d/CS1" % port_of(srv)
            return await run_client(target, {
                "dns": {"csms.example": [["127.0.0.1"]]},
                "steps": [{"url": url}, {"url": url}, {"url": url, "advance_ms": 86400000}]})
    assert run(main()) == [{"ok": True, "lookups": 1}] * 3


def test_ws_ip_literal_url_never_looked_up(target):
    async def main():
        async with serve_ws() as srv:
            dead = await dead_port()
            return await run_client(target, {"dns": {}, "steps": [
                {"url": "ws://127.0.0.1:%d/CS1" % port_of(srv)},
                {"url": "ws://127.0.0.1:%d/CS1" % dead},
                {"url": "ws://127.0.0.1:%d/CS1" % port_of(srv), "advance_ms": RETRY}]})
    ev = run(main())
    assert [e.get("ok") for e in ev] == [True, None, True], ev
    assert ev[1]["error"] == "WsError" and "cannot connect to 127.0.0.1:" in ev[1]["msg"]
    assert [e["lookups"] for e in ev] == [0, 0, 0]


async def dead_port():
    import asyncio
    s = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = s.sockets[0].getsockname()[1]
    s.close()
    await s.wait_closed()
    return port


def test_ws_failed_connect_re_resolves_rate_limited(target):
    """The CSMS moved: its old address (127.0.0.2, nothing listens there) is kept until
    RETRY ms after the lookup, then the name is looked up again."""
    async def main():
        async with serve_ws() as srv:
            url = "ws://csms.example:%d/CS1" % port_of(srv)
            return await run_client(target, {
                "dns": {"csms.example": [["127.0.0.2"], ["127.0.0.1"]]},
                "steps": [{"url": url}, {"url": url, "advance_ms": RETRY - 1000},
                          {"url": url, "advance_ms": 1000}, {"url": url}]})
    ev = run(main())
    assert [e.get("ok") for e in ev] == [None, None, True, True], ev
    assert "cannot connect to csms.example:" in ev[0]["msg"] and "(127.0.0.2)" in ev[0]["msg"]
    assert [e["lookups"] for e in ev] == [1, 1, 2, 2]


def test_ws_failed_connect_tries_the_next_address(target):
    async def main():
        async with serve_ws() as srv:
            url = "ws://csms.example:%d/CS1" % port_of(srv)
            return await run_client(target, {
                "dns": {"csms.example": [["127.0.0.2", "127.0.0.1"]]},
                "steps": [{"url": url}, {"url": url}, {"url": url}]})
    ev = run(main())
    assert [e.get("ok") for e in ev] == [None, True, True], ev
    assert [e["lookups"] for e in ev] == [1, 1, 1]


def _tls_server(pki, cert, sni):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki[cert], pki["key"])
    ctx.sni_callback = lambda sock, name, c: sni.append(name)
    return ctx


def test_wss_connects_to_the_cached_ip_but_verifies_the_name(target, pki):
    """The certificate names only csms.example; the client dials 127.0.0.1 from the cache,
    sends csms.example as SNI and checks the certificate against it."""
    sni = []

    async def main():
        async with serve_ws(_tls_server(pki, "wrong_name", sni)) as srv:
            url = "wss://csms.example:%d/CS1" % port_of(srv)
            return await run_client(target, {
                "dns": {"csms.example": [["127.0.0.1"]]},
                "steps": [{"url": url, "cafile": pki["ca"]}, {"url": url, "cafile": pki["ca"]}]})
    assert run(main()) == [{"ok": True, "lookups": 1}] * 2
    assert sni == ["csms.example"] * 2


def test_wss_certificate_for_the_ip_but_not_the_name_is_refused(target, pki):
    """The server's certificate is valid for 127.0.0.1 (IP SAN) and localhost, the URL
    names csms.example: verifying against the dialled address would wrongly accept it."""
    sni = []

    async def main():
        async with serve_ws(_tls_server(pki, "cert", sni)) as srv:
            url = "wss://csms.example:%d/CS1" % port_of(srv)
            return await run_client(target, {
                "dns": {"csms.example": [["127.0.0.1"]]},
                "steps": [{"url": url, "cafile": pki["ca"]}]})
    ev = run(main())
    assert ev[0]["error"] == "WsCertError", ev
    assert ev[0]["lookups"] == 1
    assert sni == ["csms.example"]


def test_station_reaches_a_wss_csms_by_host_name(tls_csms, station, pki):
    """End to end on both runtimes: the station resolves localhost through the cache and
    verifies the CSMS certificate by that name."""
    from tests.helpers import booted
    st = station(url="wss://localhost:%d" % tls_csms.csms.port, args=["--cafile", pki["ca"]])
    booted(tls_csms, st.identity)
