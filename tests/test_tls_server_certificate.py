"""Security profile 2, the CSMS's server certificate (A00), station on CPython and under
micropython against a TLS CSMS on loopback (certificates from tests/pki.py)."""
import socket
import ssl
import time

import pytest

from tests.helpers import RECONNECT_EVERY_1S_ARGS, booted, extra_csms, stop_extra_csms, wss_url

# the TLS 1.1 CSMS needs the deprecated protocol constants
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_TC_A_04_CS_valid_server_certificate_secured_websocket(tls_csms, station, pki):
    """A00.FR.309/312/313: the station verifies the CSMS certificate against its CSMS root and
    runs OCPP over the secured WebSocket: boot, status, a heartbeat through the tunnel."""
    st = station(url=wss_url(tls_csms), args=["--cafile", pki["ca"]])
    booted(tls_csms, st.identity)
    r = tls_csms.call(st.identity, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert r["status"] == "Accepted"
    tls_csms.wait_for(lambda: tls_csms.csms.calls("Heartbeat", st.identity), 10, "Heartbeat")
    assert st.status()["connected"] and st.status()["csms"].startswith("wss://")
    # what the connect borrowed (the CSMS roots, the station's own certificate) went after it
    mods = st.cmd("modules")["modules"]
    assert "firmware.client_cert" not in mods and "firmware.cert_store" not in mods, mods


def _tls11_context(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        pytest.skip("this OpenSSL cannot serve TLS 1.1: %s" % e)
    return ctx


def _serves_tls11(port):
    """Does the server really complete a TLS 1.1 handshake (OpenSSL builds may refuse)?"""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    try:
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            with c.wrap_socket(s) as t:
                return t.version() == "TLSv1.1"
    except (OSError, ValueError, ssl.SSLError):
        return False


def test_TC_A_06_CS_tls_version_too_low_is_refused(station, pki):
    """A00.FR.314/316: the station uses TLS 1.2 or higher; a CSMS that offers at most TLS 1.1
    gets no connection (the handshake fails, no WebSocket, no BootNotification), and the
    station keeps trying."""
    t = extra_csms(_tls11_context(pki))
    try:
        if not _serves_tls11(t.csms.port):
            pytest.skip("this OpenSSL completes no TLS 1.1 handshake: nothing to refuse")
        st = station(url=wss_url(t), args=RECONNECT_EVERY_1S_ARGS + ["--cafile", pki["ca"]])
        deadline = time.time() + 4
        while time.time() < deadline:
            assert st.identity not in t.csms.sessions, "connected over TLS 1.1"
            time.sleep(0.2)
        s = st.status()
        assert not s["connected"] and s["last_error"], s
        assert not t.csms.calls("BootNotification", st.identity)
    finally:
        stop_extra_csms(t)
