"""Network connection profiles and security profile upgrade (B09, B10, A05) against test
CSMSs over loopback (plain and TLS), station on CPython and under micropython."""
import socket

import pytest

from tests.helpers import (RECONNECT_EVERY_1S_ARGS, booted, extra_csms, get_var,
                           set_var, stop_extra_csms, wss_url)


@pytest.fixture
def csms2():
    """A second (plain) CSMS to migrate to."""
    t = extra_csms()
    yield t
    stop_extra_csms(t)


def dead_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "ws://127.0.0.1:%d" % port


def profile(url, sp=1, **kw):
    d = {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
         "messageTimeout": 10, "securityProfile": sp, "ocppInterface": "Wired0"}
    d.update(kw)
    return d


def set_profile(csms, cp, slot, data):
    return csms.call(cp, "SetNetworkProfile", {"configurationSlot": slot, "connectionData": data})


# ------------------------------------------------------------------ B09
def test_TC_B_43_CS_set_network_profile_rejected(csms, station):
    st = station()
    cp = st.identity
    booted(csms, cp)
    url = csms.csms.url()
    bad = [
        (9, profile(url)),                                    # B09.FR.05: slot not in valuesList
        (2, profile(url, ocppTransport="SOAP")),              # only OCPP-J
        (2, profile(url, ocppVersion="OCPP16")),
        (2, profile(url, sp=2)),                              # profile 2 needs wss://
        (2, profile("wss://127.0.0.1:1", sp=1)),              # profile 1 is ws://
        (2, profile(url, sp=3)),                              # profile 3 needs wss://
        (2, profile("http://127.0.0.1:1")),
        (2, profile(url, apn={"apn": "internet", "apnAuthentication": "NONE"})),
    ]
    for slot, data in bad:
        r = set_profile(csms, cp, slot, data)
        assert r["status"] == "Rejected", (slot, data, r)
        assert r["statusInfo"]["reasonCode"]
    # B10.FR.02: a priority naming a slot without a valid profile is rejected.
    r = set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")
    assert r["attributeStatus"] == "Rejected"
    # B09.FR.01: a valid profile is stored; the current connection is untouched.
    assert set_profile(csms, cp, 2, profile(url))["status"] == "Accepted"
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")["attributeStatus"] \
        == "Accepted"
    assert get_var(csms, cp, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
    assert st.status()["connected"] and len(csms.csms.calls("BootNotification", cp)) == 1


# ------------------------------------------------------------------ B10
def test_TC_B_45_CS_migrate_to_new_connection_profile(csms, csms2, station):
    st = station(args=RECONNECT_EVERY_1S_ARGS)
    cp = st.identity
    booted(csms, cp)
    assert set_profile(csms, cp, 2, profile(csms2.csms.url()))["status"] == "Accepted"
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")["attributeStatus"] \
        in ("Accepted", "RebootRequired")  # B10.FR.01
    assert csms.call(cp, "Reset", {"type": "OnIdle"})["status"] == "Accepted"
    # B10.FR.04/06: after the reboot the station connects to the first entry: CSMS 2, with
    # a BootNotification.
    booted(csms2, cp)
    assert csms2.csms.calls("BootNotification", cp)[0]["reason"] == "RemoteReset"
    assert get_var(csms2, cp, "OCPPCommCtrlr", "ActiveNetworkProfile") == "2"
    assert get_var(csms2, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "2,1"
    assert st.status()["slot"] == 2
    assert cp not in csms.csms.sessions


def test_TC_B_46_CS_fallback_after_connection_attempts(csms, station):
    st = station(args=RECONNECT_EVERY_1S_ARGS + ["--set", "OCPPCommCtrlr.NetworkProfileConnectionAttempts=2"])
    cp = st.identity
    booted(csms, cp)
    assert set_profile(csms, cp, 2, profile(dead_url()))["status"] == "Accepted"
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")["attributeStatus"] \
        == "Accepted"
    n_conn = csms.csms.connections
    assert csms.call(cp, "Reset", {"type": "OnIdle"})["status"] == "Accepted"
    # B10.FR.03: NetworkProfileConnectionAttempts on slot 2, then slot 1 (same CSMS), which
    # gets a new BootNotification.
    booted(csms, cp, 2)
    assert csms.csms.connections == n_conn + 1
    assert get_var(csms, cp, "OCPPCommCtrlr", "ActiveNetworkProfile") == "1"
    assert st.status()["slot"] == 1
    lines = st.cmd("log 40")["lines"]
    assert len([x for x in lines if "connect to ws://127.0.0.1" in x and "failed" in x]) == 2, lines


# ------------------------------------------------------------------ A05
def test_TC_A_19_CS_upgrade_security_profile(csms, tls_csms, station, pki):
    st = station(args=RECONNECT_EVERY_1S_ARGS + ["--cafile", pki["ca"]])
    cp = st.identity
    booted(csms, cp)
    assert get_var(csms, cp, "SecurityCtrlr", "SecurityProfile") == "1"
    assert set_profile(csms, cp, 2, profile(wss_url(tls_csms), sp=2))["status"] == "Accepted"
    # A05.FR.04: a priority with an equal or higher profile whose prerequisites are met.
    assert set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")["attributeStatus"] \
        == "Accepted"
    assert csms.call(cp, "Reset", {"type": "OnIdle"})["status"] == "Accepted"
    # A05.FR.05/06: connected over TLS; SecurityProfile 2; the profile-1 slot is gone.
    booted(tls_csms, cp)
    assert get_var(tls_csms, cp, "SecurityCtrlr", "SecurityProfile") == "2"
    assert get_var(tls_csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "2"
    # ...and the station will not go back to profile 1 (A05.FR.07 / B09.FR.04).
    r = set_profile(tls_csms, cp, 1, profile(csms.csms.url(), sp=1))
    assert r["status"] == "Rejected"
    recs = st.cmd("seclog 50")["records"]
    assert [r for r in recs if r[1] == "ReconfigurationOfSecurityParameters" and r[2] == "SecurityProfile raised to 2"]


def test_TC_A_20_CS_upgrade_without_csms_root_certificate_rejected(csms, station):
    st = station()
    cp = st.identity
    booted(csms, cp)
    assert set_profile(csms, cp, 2, profile("wss://127.0.0.1:1", sp=2))["status"] == "Accepted"
    # A05.FR.02: no CSMS root certificate -> Rejected, nothing changes.
    r = set_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")
    assert r["attributeStatus"] == "Rejected"
    assert get_var(csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "1"
    assert get_var(csms, cp, "SecurityCtrlr", "SecurityProfile") == "1"


def test_TC_A_22_CS_downgrade_security_profile_rejected(tls_csms, station, pki):
    st = station(url=wss_url(tls_csms), args=["--cafile", pki["ca"]])
    cp = st.identity
    booted(tls_csms, cp)
    assert get_var(tls_csms, cp, "SecurityCtrlr", "SecurityProfile") == "2"
    # B09.FR.04: a profile with a lower securityProfile is rejected.
    r = set_profile(tls_csms, cp, 2, profile("ws://127.0.0.1:1", sp=1))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "ValueTooLow"
    # The same security profile is fine.
    assert set_profile(tls_csms, cp, 2, profile(wss_url(tls_csms), sp=2))["status"] == "Accepted"
    assert set_var(tls_csms, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")["attributeStatus"] \
        == "Accepted"


def test_B09_profile_that_could_not_be_stored_is_not_saved_later(tmp_path):
    """SetNetworkProfile answered Failed/OutOfStorage: the refused profile must not stay in
    the slots in RAM, where the next save of netprof.json (a connection) wrote it anyway."""
    from firmware.provisioning import NETDOC
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "NP1",
                 blocks=("security", "provisioning"))
    st.linger_ms = 0  # no event loop here: the block is dropped at release
    net = st.net
    before = dict(net.doc["slots"])
    save = st.store.save

    def full(name, obj):
        if name == NETDOC:
            raise OSError(28, "ENOSPC")
        save(name, obj)

    st.store.save = full
    blk = st.borrow("network_profile")
    try:
        r = blk.set_network_profile({"configurationSlot": 2,
                                     "connectionData": profile("ws://127.0.0.1:9002")})
    finally:
        st.release("network_profile")
    assert r == {"status": "Failed", "statusInfo": {"reasonCode": "OutOfStorage"}}
    assert net.doc["slots"] == before and net.profile(2) is None
    st.store.save = save
    net.connected(1, net.profile(1))  # a successful connection saves the document
    assert "127.0.0.1:9002" not in str(st.store.load(NETDOC))
