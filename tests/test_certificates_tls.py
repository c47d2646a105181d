"""The CSMS root for wss:// comes from the installed CSMSRootCertificates (M05, issue item 4),
AdditionalRootCertificateCheck (TC_M_09/30/31: M05.FR.10..14) and the last CSMS root in use
(M04.FR.03), against a TLS test CSMS over loopback, station on CPython and under micropython.

The TLS CSMS can change its server certificate between connections (an SNI callback swaps
the context; it runs for clients that send no server name too), so the station reconnects to
the same URL while the CSMS presents a certificate from another root."""
import os
import ssl

import pytest

from tests.helpers import RECONNECT_EVERY_1S_ARGS, booted, extra_csms, get_var, set_args, \
    set_var, stop_extra_csms, wss_url
from tests.pki import expected_hash_data, make_cert, pem_text, server_cert_files, write_pem

CHECK_ARGS = set_args("SecurityCtrlr.AdditionalRootCertificateCheck=true")


class Roots:
    """r1: the CSMS root the station starts with; r2: its successor, signed by r1
    (M05.FR.10); solo: an unrelated self-signed RSA root. Server certificates for each."""

    def __init__(self, directory):
        self.k1, self.r1 = make_cert("CSMS Root 1")
        self.k2, self.r2 = make_cert("CSMS Root 2", issuer=self.r1, issuer_key=self.k1)
        self.ks, self.solo = make_cert("Solo Root", kind="rsa")
        self.r1_file = write_pem(os.path.join(str(directory), "r1.pem"), self.r1)
        self.contexts = {}
        for name, ca, key in (("r1", self.r1, self.k1), ("r2", self.r2, self.k2),
                              ("solo", self.solo, self.ks)):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*server_cert_files(directory, "server-" + name, ca, key))
            self.contexts[name] = ctx
        self.current = "r1"

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*server_cert_files(os.path.dirname(self.r1_file), "server-main",
                                               self.r1, self.k1))

        def pick(sock, server_name, _ctx):
            sock.context = self.contexts[self.current]
        ctx.sni_callback = pick
        return ctx


@pytest.fixture
def roots(tmp_path):
    return Roots(tmp_path)


@pytest.fixture
def tls(roots):
    t = extra_csms(roots.server_context())
    yield t
    stop_extra_csms(t)


def install(csms, cp, cert):
    return csms.call(cp, "InstallCertificate", {"certificateType": "CSMSRootCertificate",
                                                "certificate": pem_text(cert)})


def csms_roots(csms, cp):
    r = csms.call(cp, "GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]})
    return [c["certificateHashData"] for c in r.get("certificateHashDataChain", [])]


def reset(csms, cp):
    assert csms.call(cp, "Reset", {"type": "OnIdle"})["status"] == "Accepted"


def profile(url, sp):
    return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
            "messageTimeout": 10, "securityProfile": sp, "ocppInterface": "Wired0"}


def test_M05_installed_csms_root_is_the_tls_trust_anchor(csms, tls, roots, station):
    # no --cafile: the only root the station can know is the one the CSMS installs
    st = station(args=RECONNECT_EVERY_1S_ARGS)
    cp = st.identity
    booted(csms, cp)
    roots.current = "solo"
    r = csms.call(cp, "SetNetworkProfile", {"configurationSlot": 2,
                                            "connectionData": profile(wss_url(tls), 2)})
    assert r["status"] == "Accepted"
    # A05.FR.02: without a CSMS root the upgrade is refused
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")[
        "attributeStatus"] == "Rejected"
    assert install(csms, cp, roots.solo)["status"] == "Accepted"
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")[
        "attributeStatus"] == "Accepted"
    reset(csms, cp)
    booted(tls, cp)
    assert get_var(tls, cp, "SecurityCtrlr", "SecurityProfile") == "2"
    # M04.FR.03: the last CSMS root of a station on TLS is not deleted
    hd = expected_hash_data(roots.solo, roots.solo)
    r = tls.call(cp, "DeleteCertificate", {"certificateHashData": hd})
    assert r["status"] == "Failed"
    assert csms_roots(tls, cp) == [hd]


def test_M05_installed_root_replaces_the_installer_cafile(tls, roots, station):
    st = station(url=wss_url(tls), args=RECONNECT_EVERY_1S_ARGS + ["--cafile", roots.r1_file])
    cp = st.identity
    booted(tls, cp)
    assert install(tls, cp, roots.solo)["status"] == "Accepted"
    # from now on the CSMS must present a certificate from the installed root: the
    # installer's r1 is no longer trusted, the installed one is
    roots.current = "solo"
    reset(tls, cp)
    booted(tls, cp, n=2)
    roots.current = "r1"
    tls.call(cp, "Reset", {"type": "Immediate"})
    tls.wait_for(lambda: [x for x in st.cmd("seclog 50")["records"]
                          if x[1] == "InvalidCsmsCertificate"], 20, "r1 server refused")
    assert len(tls.csms.calls("BootNotification", cp)) == 2


def test_TC_M_09_CS_additional_root_check_rejects_unsigned_root(tls, roots, station):
    st = station(url=wss_url(tls), args=CHECK_ARGS + ["--cafile", roots.r1_file])
    cp = st.identity
    booted(tls, cp)
    assert get_var(tls, cp, "SecurityCtrlr", "AdditionalRootCertificateCheck") == "true"
    assert install(tls, cp, roots.r1)["status"] == "Accepted"  # the root in use, installed
    # M05.FR.11: not signed by the CSMS root in use
    r = install(tls, cp, roots.solo)
    assert r["status"] == "Rejected"
    assert csms_roots(tls, cp) == [expected_hash_data(roots.r1, roots.r1)]


def test_TC_M_30_CS_reconnect_with_new_csms_root(tls, roots, station):
    st = station(url=wss_url(tls), args=RECONNECT_EVERY_1S_ARGS + CHECK_ARGS + ["--cafile", roots.r1_file])
    cp = st.identity
    booted(tls, cp)
    assert install(tls, cp, roots.r1)["status"] == "Accepted"
    assert install(tls, cp, roots.r2)["status"] == "Accepted"  # M05.FR.12
    old = expected_hash_data(roots.r1, roots.r1)
    new = expected_hash_data(roots.r2, roots.r1)  # r2's issuer is r1
    assert sorted(csms_roots(tls, cp), key=str) == sorted([old, new], key=str)
    roots.current = "r2"
    reset(tls, cp)
    booted(tls, cp, n=2)
    # M05.FR.13: connected with the new root, the old one is removed
    assert csms_roots(tls, cp) == [new]
    recs = st.cmd("seclog 50")["records"]
    assert [x for x in recs if "previous CSMS root removed" in (x[2] or "")]


def test_TC_M_31_CS_reconnect_falls_back_to_old_csms_root(tls, roots, station):
    # the root in use is the installer's --cafile: it is kept in the store as the fallback
    st = station(url=wss_url(tls), args=RECONNECT_EVERY_1S_ARGS + CHECK_ARGS + ["--cafile", roots.r1_file])
    cp = st.identity
    booted(tls, cp)
    assert install(tls, cp, roots.r2)["status"] == "Accepted"
    old = expected_hash_data(roots.r1, roots.r1)
    new = expected_hash_data(roots.r2, roots.r1)
    assert sorted(csms_roots(tls, cp), key=str) == sorted([old, new], key=str)
    # the CSMS still presents a certificate from r1: r2 refuses it, the fallback accepts it
    reset(tls, cp)
    booted(tls, cp, n=2)
    assert old in csms_roots(tls, cp)  # M05.FR.14: still there, still needed
    assert [x for x in st.cmd("log 80")["lines"] if "trying the previous CSMS root" in x]


def test_M05_FR_15_fallback_root_only_for_the_last_connected_csms_also_after_a_reboot(tmp_path):
    """The guard compared configuration slots, and the slot is unknown (None) after a boot,
    so the first connection after every reboot used the fallback root even for another CSMS."""
    from firmware.station import Station
    from host.sim_board import SimBoard

    def station():
        return Station(SimBoard(1, str(tmp_path)), "wss://127.0.0.1:9/ocpp", "M05FR15")
    st = station()
    here = {"ocppCsmsUrl": "wss://127.0.0.1:9/ocpp/"}
    there = {"ocppCsmsUrl": "wss://127.0.0.1:7/other"}
    assert st._same_csms(there)              # never connected: nothing to migrate from
    st.net.connected(1, here)
    st = station()                           # a reboot: slot None again
    assert st.slot is None
    assert st._same_csms(here) and not st._same_csms(there)


def test_TC_B_50_CS_migrate_to_a_new_csms_with_a_new_csms_root(tls, roots, station):
    """B10 + M05.FR.13: on TLS with the CSMS root r1 installed, the CSMS installs the new
    CSMS's root (unrelated to r1), a network profile for the new CSMS's URL in the other
    slot, puts that slot first and resets; the station validates the new CSMS's certificate
    with the new root and boots there."""
    new = extra_csms(roots.contexts["solo"])
    try:
        st = station(url=wss_url(tls), args=RECONNECT_EVERY_1S_ARGS + ["--cafile", roots.r1_file])
        cp = st.identity
        booted(tls, cp)
        assert install(tls, cp, roots.r1)["status"] == "Accepted"
        assert install(tls, cp, roots.solo)["status"] == "Accepted"
        r = tls.call(cp, "SetNetworkProfile", {"configurationSlot": 2,
                                               "connectionData": profile(wss_url(new), 2)})
        assert r["status"] == "Accepted", r
        assert set_var(tls, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")[
            "attributeStatus"] in ("Accepted", "RebootRequired")
        reset(tls, cp)
        booted(new, cp)
        assert new.csms.calls("BootNotification", cp)[0]["reason"] == "RemoteReset"
        assert get_var(new, cp, "OCPPCommCtrlr", "ActiveNetworkProfile") == "2"
        assert get_var(new, cp, "SecurityCtrlr", "SecurityProfile") == "2"
        assert st.status()["csms"] == wss_url(new)
    finally:
        stop_extra_csms(new)
