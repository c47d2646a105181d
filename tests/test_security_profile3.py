"""Security profile 3 and the station certificate (A02, A05; TC_A_07/11/14/15/19/21/22/23)
against TLS test CSMSs on loopback that ask for (or require) a client certificate, station on
CPython and under micropython.

The PKI is made here with `cryptography`: the CSMS root `ca` (it also issues the CSMS server
certificate and the station certificates), `other` (a root the station also trusts but the
CSMS does not accept client certificates from) and `rogue` (a root nobody trusts). The CSR
the station sends is checked with cryptography's `load_pem_x509_csr` and signed here."""
import datetime
import os
import ssl
import time

import pytest

from tests.helpers import (RECONNECT_EVERY_1S_ARGS, booted, extra_csms, get_var, set_args,
                           set_var, stop_extra_csms, trigger, wss_url)
from tests.pki import make_cert, server_cert_files, write_pem

ORG = "Test CSO"
SIGN = "SignChargingStationCertificate"


class Pki:
    def __init__(self, directory):
        self.dir = str(directory)
        self.ca_key, self.ca = make_cert("CSMS Root", kind="ec")
        self.other_key, self.other = make_cert("Other Root")
        self.rogue_key, self.rogue = make_cert("Rogue Root")
        self.ca_file = write_pem(os.path.join(self.dir, "ca.pem"), self.ca)
        # what the station trusts for the CSO hierarchy (its --cafile)
        self.trusted = write_pem(os.path.join(self.dir, "trusted.pem"), self.ca, self.other)
        self.server = server_cert_files(directory, "csms", self.ca, self.ca_key)

    def context(self, client_cert):
        """Server context; client_cert: None, ssl.CERT_OPTIONAL or ssl.CERT_REQUIRED (client
        certificates from `ca` only)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.server)
        if client_cert is not None:
            ctx.load_verify_locations(self.ca_file)
            ctx.verify_mode = client_cert
        return ctx

    def sign(self, csr_pem, issuer="ca", days=60, start_days=-1, key=None, cn=None,
             start_seconds=0):
        """PEM certificate for the CSR's subject and key (or `key`, or subject CN `cn`)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        ca, ca_key = {"ca": (self.ca, self.ca_key), "other": (self.other, self.other_key),
                      "rogue": (self.rogue, self.rogue_key)}[issuer]
        subject = csr.subject
        if cn is not None:
            subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                                 x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = datetime.datetime.now(datetime.timezone.utc)
        start = now + datetime.timedelta(days=start_days, seconds=start_seconds)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
                .public_key(key.public_key() if key is not None else csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                             False), critical=True)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def p3pki(tmp_path):
    return Pki(tmp_path)


@pytest.fixture
def csms_p2(p3pki):
    """TLS CSMS that accepts stations without a client certificate and checks one that is
    presented against `ca` (profile 2 stations connect; profile 3 ones show theirs)."""
    t = extra_csms(p3pki.context(ssl.CERT_OPTIONAL))
    yield t
    stop_extra_csms(t)


@pytest.fixture
def csms_p3(p3pki):
    """TLS CSMS that requires a client certificate from `ca` (security profile 3)."""
    t = extra_csms(p3pki.context(ssl.CERT_REQUIRED))
    yield t
    stop_extra_csms(t)


def profile(url, sp):
    return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
            "messageTimeout": 10, "securityProfile": sp, "ocppInterface": "Wired0"}


def start(station, tls, p3pki, *sets, cafile=None):
    st = station(url=wss_url(tls), args=["--cafile", cafile or p3pki.trusted]
                 + RECONNECT_EVERY_1S_ARGS + set_args("SecurityCtrlr.OrganizationName=" + ORG, *sets))
    booted(tls, st.identity)
    return st


def client_cn(peercert):
    if not peercert:
        return None
    for rdn in peercert["subject"]:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def csrs(tls, cp):
    return [p["csr"] for p in tls.csms.calls("SignCertificate", cp)]


def request_csr(tls, cp, n=1):
    """TriggerMessage(SignChargingStationCertificate); the n-th CSR the station sent."""
    r, _ = trigger(tls, cp, SIGN)
    assert r["status"] == "Accepted", r
    return tls.wait_for(lambda: csrs(tls, cp)[n - 1:], 20, "SignCertificateRequest %d" % n)[0]


def certificate_signed(tls, cp, chain):
    return tls.call(cp, "CertificateSigned", {"certificateChain": chain,
                                              "certificateType": "ChargingStationCertificate"})


def key_files(st):
    return [f for f in os.listdir(st.data_dir) if f.startswith("cs_key.")]


def renew(tls, st, p3pki):
    """Reusable state RenewChargingStationCertificate: trigger, CSR, sign, Accepted, and the
    station back on `tls` presenting the new certificate. Returns the certificate PEM."""
    cp = st.identity
    n = len(csrs(tls, cp))
    csr = request_csr(tls, cp, n + 1)
    conns = len(tls.csms.peercerts)
    cert = p3pki.sign(csr)
    assert certificate_signed(tls, cp, cert)["status"] == "Accepted"
    # A02.FR.08: a new TLS connection with the new certificate
    tls.wait_for(lambda: [1 for c, pc, _ in tls.csms.peercerts[conns:] if c == cp and client_cn(pc) == cp],
                 20, "reconnect with the client certificate")
    st.wait_status(lambda s: s["connected"], 15, "connected")
    return cert


# ------------------------------------------------------------------ A02
def test_TC_A_11_CS_update_station_certificate_and_TC_A_07_CS_client_certificate(
        station, csms_p2, p3pki):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    assert client_cn(csms_p2.csms.peercerts[-1][1]) is None  # no certificate yet
    csr_pem = request_csr(csms_p2, cp)
    # A02.FR.03: RFC 2986, PEM; signed with the key it carries; O and CN (A00.FR.509/511)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cp
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORG
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    assert csr.public_key().curve.name == "secp256r1"  # A00.FR.503: >= 224 bits
    assert csms_p2.csms.calls("SignCertificate", cp)[0]["certificateType"] == "ChargingStationCertificate"
    conns = len(csms_p2.csms.peercerts)
    cert_pem = p3pki.sign(csr_pem)
    assert certificate_signed(csms_p2, cp, cert_pem)["status"] == "Accepted"
    # A02.FR.08 / TC_A_07: the station reconnects presenting the new certificate, CN = identity
    peer = csms_p2.wait_for(lambda: [pc for c, pc, _ in csms_p2.csms.peercerts[conns:]
                                     if c == cp and pc], 20, "client certificate")[0]
    assert client_cn(peer) == cp
    serial = x509.load_pem_x509_certificate(cert_pem.encode()).serial_number
    assert int(peer["serialNumber"], 16) == serial
    st.wait_status(lambda s: s["connected"], 15, "connected")
    # A02.FR.05: the private key stays in the data directory: not in the log, not on the
    # console, not in any frame
    keys = key_files(st)
    assert len(keys) == 1
    with open(os.path.join(st.data_dir, keys[0])) as f:
        body = "".join(line.strip() for line in f if not line.startswith("-----"))
    assert len(body) > 60
    probe = body[10:50]
    st.cmd("trace on")
    st.cmd("status")
    texts = [st.log_tail(100000)] + [str(m["frame"]) for m in csms_p2.csms.messages]
    for cmd in ("log 200", "status", "seclog 100", "modules"):
        texts.append(str(st.cmd(cmd)))
    assert not [t for t in texts if probe in t]
    assert [r for r in st.cmd("seclog 50")["records"] if r[1] == "ReconfigurationOfSecurityParameters"]


def test_TC_A_14_CS_invalid_station_certificates_rejected(station, csms_p2, p3pki):
    from tests.pki import new_key
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    bad = [
        (p3pki.sign(csr, days=5, start_days=-10), "certificate expired"),
        (p3pki.sign(csr, issuer="rogue"), "no trusted issuer"),
        (p3pki.sign(csr, key=new_key()), "not for the station's pending key"),
        (p3pki.sign(csr, cn="SOMEONE-ELSE"), "not the station identity"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "bad DER"),
    ]
    for chain, why in bad:
        r = certificate_signed(csms_p2, cp, chain)
        # A02.FR.07: Rejected, discarded, InvalidChargingStationCertificate
        assert r["status"] == "Rejected", (why, r)
        assert r["statusInfo"]["reasonCode"] == "InvalidCertificate"
        assert why in r["statusInfo"]["additionalInfo"], r
        lines = st.cmd("log 10")["lines"]
        assert [x for x in lines if "CertificateSigned rejected" in x and why in x], lines
    csms_p2.wait_for(lambda: len([p for p in csms_p2.csms.calls("SecurityEventNotification", cp)
                                  if p["type"] == "InvalidChargingStationCertificate"]) == len(bad),
                     15, "one security event per rejected certificate")
    assert not [f for f in os.listdir(st.data_dir) if f.startswith("cs_cert.") and f.endswith(".pem")]
    assert not [pc for c, pc, _ in csms_p2.csms.peercerts if c == cp and pc]
    # the pending key is still there: the right certificate is accepted afterwards
    assert certificate_signed(csms_p2, cp, p3pki.sign(csr))["status"] == "Accepted"


def test_A02_FR_06_hostile_chains_rejected_station_stays_up(station, csms_p2, p3pki):
    import base64
    import random
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    good = p3pki.sign(csr)
    body = "".join(good.splitlines()[1:-1])
    der = bytearray(base64.b64decode(body))
    rng = random.Random(7)

    def pem(b):
        return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % \
            base64.b64encode(bytes(b)).decode()
    hostile = [good[:len(good) // 2], pem(der[:-40]), pem(b"\x30\x84\x7f\xff\xff\xff" + der[6:]),
               pem(b"\x30\x80" * 200), "no pem at all", good.replace("CERTIFICATE-----", "CERT-----"),
               good * 9]
    for _ in range(6):
        m = bytearray(der)
        for _ in range(3):
            m[rng.randrange(len(m))] = rng.randrange(256)
        hostile.append(pem(m))
    for chain in hostile:
        r = certificate_signed(csms_p2, cp, chain[:10000])
        assert r["status"] == "Rejected", chain[:80]
    assert st.status()["connected"]
    assert certificate_signed(csms_p2, cp, good)["status"] == "Accepted"


def test_A02_pending_key_survives_a_power_cut(station, csms_p2, p3pki):
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    st.kill()  # SIGKILL between SignCertificate and CertificateSigned
    st2 = station(url=wss_url(csms_p2), identity=cp, data_dir=st.data_dir,
                  args=["--cafile", p3pki.trusted] + RECONNECT_EVERY_1S_ARGS
                  + set_args("SecurityCtrlr.OrganizationName=" + ORG))
    booted(csms_p2, cp, 2)
    conns = len(csms_p2.csms.peercerts)
    assert certificate_signed(csms_p2, cp, p3pki.sign(csr))["status"] == "Accepted"
    csms_p2.wait_for(lambda: [1 for c, pc, _ in csms_p2.csms.peercerts[conns:]
                              if c == cp and client_cn(pc) == cp], 20, "reconnect with it")
    assert len(key_files(st2)) == 1


def test_TC_A_15_CS_sign_certificate_rejected(station, csms_p2, p3pki):
    st = start(station, csms_p2, p3pki, "SecurityCtrlr.CertSigningWaitMinimum=1",
               "SecurityCtrlr.CertSigningRepeatTimes=2")
    cp = st.identity
    csms_p2.csms.responders["SignCertificate"] = lambda c, p: {"status": "Rejected"}
    request_csr(csms_p2, cp)
    # no resend after a Rejected: the first resend would come after 1 s
    time.sleep(2.5)
    assert len(csrs(csms_p2, cp)) == 1
    assert st.status()["connected"]


def test_TC_A_23_CS_certificate_signed_timeout_resends_csr(station, csms_p2, p3pki):
    st = start(station, csms_p2, p3pki, "SecurityCtrlr.CertSigningWaitMinimum=1",
               "SecurityCtrlr.CertSigningRepeatTimes=1")
    cp = st.identity
    first = request_csr(csms_p2, cp)
    # the resend code is imported while the CSR waits (1 s, then 2 s) ...
    csms_p2.wait_for(lambda: "firmware.csr_resend" in st.cmd("modules")["modules"], 3,
                     "resend code loaded")
    # A02.FR.17/18: resent after 1 s, then after 2 s more; A02.FR.19: then no more
    csms_p2.wait_for(lambda: len(csrs(csms_p2, cp)) >= 3, 15, "two resends")
    times = [m["t"] for m in csms_p2.csms.messages if m["cp"] == cp and m["dir"] == "in"
             and m["frame"][0] == 2 and m["frame"][2] == "SignCertificate"]
    assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 1.9  # lower bounds only
    time.sleep(5)
    assert csrs(csms_p2, cp) == [first] * 3  # the same CSR (same key) every time
    # ... and gone once the resends ended
    assert "firmware.csr_resend" not in st.cmd("modules")["modules"]
    # the certificate for the CSR of the first request is accepted
    assert certificate_signed(csms_p2, cp, p3pki.sign(first))["status"] == "Accepted"


def test_A02_FR_10_falls_back_to_previous_certificate(station, csms_p2, p3pki):
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    good = renew(csms_p2, st, p3pki)
    # a certificate the station can verify (issued by `other`, which it trusts) but the
    # CSMS does not accept client certificates from
    csr = request_csr(csms_p2, cp, 2)
    conns = len(csms_p2.csms.peercerts)
    assert certificate_signed(csms_p2, cp, p3pki.sign(csr, issuer="other"))["status"] == "Accepted"
    csms_p2.wait_for(lambda: [1 for c, pc, _ in csms_p2.csms.peercerts[conns:] if c == cp and pc],
                     30, "reconnect with the previous certificate")
    from cryptography import x509
    serial = x509.load_pem_x509_certificate(good.encode()).serial_number
    assert int(csms_p2.csms.peercerts[-1][1]["serialNumber"], 16) == serial
    csms_p2.wait_for(lambda: [p for p in csms_p2.csms.calls("SecurityEventNotification", cp)
                              if p["type"] == "InvalidChargingStationCertificate"], 15, "event")
    lines = st.cmd("log 40")["lines"]
    assert [x for x in lines if "trying the previous station certificate" in x], lines
    assert len(key_files(st)) == 1  # the refused key is gone


def test_station_cert_block_and_crypto_loaded_on_demand_and_dropped(station, csms_p2, p3pki):
    crypto = ["firmware." + m for m in ("station_cert", "ecdsa", "x509", "asn1")]

    def loaded():
        return [m for m in crypto if m in st.cmd("modules")["modules"]]
    st = start(station, csms_p2, p3pki)
    assert loaded() == []
    renew(csms_p2, st, p3pki)
    # dropped ON_DEMAND_LINGER_MS after the CertificateSigned; the client certificate is
    # used for every connection without them
    csms_p2.wait_for(lambda: loaded() == [], 20, "station_cert and the crypto core dropped")
    conns = len(csms_p2.csms.peercerts)
    csms_p2.run(csms_p2.csms.disconnect(st.identity))
    csms_p2.wait_for(lambda: [1 for c, pc, _ in csms_p2.csms.peercerts[conns:]
                              if c == st.identity and client_cn(pc) == st.identity], 20, "reconnect")
    assert loaded() == []


def test_A02_FR_08_certificate_valid_later_is_used_from_its_not_before(station, csms_p2, p3pki):
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    cert = p3pki.sign(csr, start_days=0, start_seconds=4)
    from cryptography import x509
    nb = x509.load_pem_x509_certificate(cert.encode()).not_valid_before_utc.timestamp()
    assert certificate_signed(csms_p2, cp, cert)["status"] == "Accepted"
    peer = csms_p2.wait_for(lambda: [(pc, t) for c, pc, t in csms_p2.csms.peercerts
                                     if c == cp and pc], 30, "reconnect with it")[0]
    assert client_cn(peer[0]) == cp
    # opened once it was valid, not before (the station's clock, taken from this CSMS at
    # boot, can only lag; 0.2 s for the TLS handshake before the server records it)
    assert peer[1] >= nb - 0.2, (peer[1], nb)
    lines = st.cmd("log 60")["lines"]
    assert [x for x in lines if "reconnecting with the new station certificate" in x], lines


def test_A03_FR_02_station_renews_a_certificate_expiring_within_a_month(station, csms_p2, p3pki):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    assert certificate_signed(csms_p2, cp, p3pki.sign(csr, days=20))["status"] == "Accepted"
    # no TriggerMessage: the station sends a new CSR, for a new key, by itself
    second = csms_p2.wait_for(lambda: csrs(csms_p2, cp)[1:], 20, "A03 SignCertificateRequest")[0]
    new = x509.load_pem_x509_csr(second.encode())
    assert new.is_signature_valid
    assert new.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cp
    assert new.public_key() != x509.load_pem_x509_csr(csr.encode()).public_key()
    assert len([m for m in csms_p2.csms.messages if m["cp"] == cp and m["dir"] == "out"
                and m["frame"][0] == 2 and m["frame"][2] == "TriggerMessage"]) == 1


def test_M04_FR_06_station_certificate_cannot_be_deleted(station, csms_p2, p3pki):
    from cryptography import x509
    from tests.pki import expected_hash_data
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    cert = x509.load_pem_x509_certificate(renew(csms_p2, st, p3pki).encode())
    hd = expected_hash_data(cert, p3pki.ca)
    r = csms_p2.call(cp, "DeleteCertificate", {"certificateHashData": hd})
    assert r["status"] == "Failed", r
    # still there and in use
    conns = len(csms_p2.csms.peercerts)
    csms_p2.run(csms_p2.csms.disconnect(cp))
    csms_p2.wait_for(lambda: [1 for c, pc, _ in csms_p2.csms.peercerts[conns:]
                              if c == cp and client_cn(pc) == cp], 20, "reconnect with it")


# ------------------------------------------------------------------ A05
def test_TC_A_21_CS_profile_3_without_station_certificate_rejected(station, csms_p2, csms_p3, p3pki):
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    assert set_profile(csms_p2, cp, 2, profile(wss_url(csms_p3), 3))["status"] == "Accepted"
    r = set_var(csms_p2, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")
    assert r["attributeStatus"] == "Rejected"  # A05.FR.03
    assert get_var(csms_p2, cp, "SecurityCtrlr", "SecurityProfile") == "2"


def test_TC_A_19_CS_upgrade_to_profile_3_and_TC_A_22_CS_no_downgrade(
        station, csms_p2, csms_p3, p3pki):
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    assert get_var(csms_p2, cp, "SecurityCtrlr", "SecurityProfile") == "2"
    renew(csms_p2, st, p3pki)  # memory state RenewChargingStationCertificate
    assert set_profile(csms_p2, cp, 2, profile(wss_url(csms_p3), 3))["status"] == "Accepted"
    r = set_var(csms_p2, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")
    assert r["attributeStatus"] in ("Accepted", "RebootRequired")  # A05.FR.04
    assert csms_p2.call(cp, "Reset", {"type": "OnIdle"})["status"] == "Accepted"
    # A05.FR.05/06: mutual TLS to the profile-3 CSMS, SecurityProfile 3, lower slots gone
    booted(csms_p3, cp)
    assert client_cn(csms_p3.csms.peercerts[-1][1]) == cp
    assert get_var(csms_p3, cp, "SecurityCtrlr", "SecurityProfile") == "3"
    assert get_var(csms_p3, cp, "OCPPCommCtrlr", "NetworkConfigurationPriority") == "2"
    # TC_A_22 / B09.FR.04: no way back to profile 2 through OCPP
    r = set_profile(csms_p3, cp, 1, profile(wss_url(csms_p2), 2))
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "ValueTooLow"
    recs = st.cmd("seclog 50")["records"]
    assert [x for x in recs if x[1] == "ReconfigurationOfSecurityParameters"
            and x[2] == "SecurityProfile raised to 3"]


def set_profile(csms, cp, slot, data):
    return csms.call(cp, "SetNetworkProfile", {"configurationSlot": slot, "connectionData": data})


def _station_with_new_cert(tmp_path, monkeypatch, fail_new, fail_old=None):
    """An in-process station whose index names a new certificate (2) not yet connected and
    the previous one (1); ws.connect fails with `fail_new` for 2 and `fail_old` for 1."""
    import asyncio
    from firmware import client_cert
    from firmware import ws as wsmod
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "wss://127.0.0.1:9", "A02FR10")
    for g in (1, 2):
        client_cert.write(st.store, client_cert.key_name(g), "key %d" % g)
        client_cert.write(st.store, client_cert.cert_name(g), "cert %d" % g)
    st.store.save(client_cert.INDEX, {"next": 3, "cur": 2, "old": 1, "pending": None,
                                      "from": 0, "until": 2 ** 31})
    used = []

    async def connect(url, certfile=None, **kw):
        used.append(certfile.rsplit("/", 1)[-1])
        err = fail_new if certfile.endswith("cs_cert.2.pem") else fail_old
        if err is not None:
            raise err
        return "ws"
    monkeypatch.setattr(wsmod, "connect", connect)

    def attempt():
        try:
            return asyncio.run(st._connect_once({"ocppCsmsUrl": "wss://127.0.0.1:9"}))
        except wsmod.WsError as e:
            return e
    return st, used, attempt


def test_A02_FR_10_unreachable_csms_keeps_the_new_certificate(tmp_path, monkeypatch):
    """A CSMS that cannot be reached (or times out) says nothing about the certificate: the
    new one stays current and the previous one is not tried (it used to be, and to replace
    the new one when the network came back between the two attempts)."""
    from firmware import client_cert
    from firmware import ws as wsmod
    st, used, attempt = _station_with_new_cert(
        tmp_path, monkeypatch, wsmod.WsError("cannot connect to 127.0.0.1:9: 111"))
    assert isinstance(attempt(), wsmod.WsError)
    assert used == ["cs_cert.2.pem"]
    idx = client_cert.load(st.store)
    assert (idx["cur"], idx["old"], idx["until"]) == (2, 1, 2 ** 31)


def test_A02_FR_10_refused_new_certificate_falls_back(tmp_path, monkeypatch):
    from firmware import client_cert
    from firmware import ws as wsmod
    st, used, attempt = _station_with_new_cert(
        tmp_path, monkeypatch, wsmod.WsRefused("server closed the connection during the handshake"))
    assert attempt() == "ws"
    assert used == ["cs_cert.2.pem", "cs_cert.1.pem"]
    idx = client_cert.load(st.store)
    assert (idx["cur"], idx["old"]) == (1, None)
    assert not st.store.exists(client_cert.cert_name(2))


def _renewal_requests(tmp_path, monkeypatch, asked_ago):
    """CSRs the A03 renewal loop makes within 0.3 s for a certificate expiring in 20 days and
    a pending CSR made `asked_ago` seconds ago."""
    import asyncio
    from firmware import client_cert, compat, station_cert
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "wss://127.0.0.1:9", "A03RENEW")
    st.dm.set("SecurityCtrlr", "OrganizationName", ORG)
    now = compat.now()
    st.store.save(client_cert.INDEX, {"next": 3, "cur": 1, "old": None, "pending": 2,
                                      "asked": now - asked_ago, "from": 0,
                                      "until": now + 20 * 86400})
    made = []

    async def request(self):
        made.append(1)
    monkeypatch.setattr(station_cert.Block, "request", request)

    async def run():
        try:
            await asyncio.wait_for(st.blocks["security"]._renew_loop(), 0.3)
        except asyncio.TimeoutError:
            pass
    asyncio.run(run())
    return made


def test_A03_FR_02_unanswered_csr_holds_renewal_back_a_day_not_forever(tmp_path, monkeypatch):
    """A CSR the CSMS never answered used to stop the renewal until the certificate expired."""
    assert _renewal_requests(tmp_path / "fresh", monkeypatch, 3600) == []
    assert _renewal_requests(tmp_path / "stale", monkeypatch, 86400 + 60) == [1]


def test_A03_renewal_out_of_memory_waits_a_day_instead_of_rebooting(tmp_path, monkeypatch):
    """A key generation that does not fit used to reach the task guard, which reboots; the
    renewal after the boot then rebooted again, every boot."""
    import asyncio
    from firmware import client_cert, compat, station_cert
    from firmware.station import Station
    from host.sim_board import SimBoard
    board = SimBoard(1, str(tmp_path))
    st = Station(board, "wss://127.0.0.1:9", "A03OOM")
    st.linger_ms = 0
    st.dm.set("SecurityCtrlr", "OrganizationName", ORG)
    st.store.save(client_cert.INDEX, {"next": 2, "cur": 1, "old": None, "pending": None,
                                      "from": 0, "until": compat.now() + 20 * 86400})
    tries = []

    async def request(self):
        tries.append(1)
        raise MemoryError("keygen")
    monkeypatch.setattr(station_cert.Block, "request", request)

    async def run():
        st.running = True
        st.blocks["security"]._renew_watch()
        await asyncio.sleep(0.3)
        await st.stop()
    asyncio.run(run())
    assert tries == [1] and not board.reboot_requested and "station_cert" not in st.blocks


def test_A02_FR_08_future_dated_certificate_still_switched_to_after_a_power_cut(
        station, csms_p2, p3pki):
    """The timer that reconnects once the new certificate is valid lived only in RAM: after
    a reboot the station stayed on the old certificate until some other reconnection."""
    from cryptography import x509
    st = start(station, csms_p2, p3pki)
    cp = st.identity
    csr = request_csr(csms_p2, cp)
    cert = p3pki.sign(csr, start_days=0, start_seconds=10)
    nb = x509.load_pem_x509_certificate(cert.encode()).not_valid_before_utc.timestamp()
    assert certificate_signed(csms_p2, cp, cert)["status"] == "Accepted"
    st.kill()
    station(url=wss_url(csms_p2), identity=cp, data_dir=st.data_dir,
            args=["--cafile", p3pki.trusted] + RECONNECT_EVERY_1S_ARGS
            + set_args("SecurityCtrlr.OrganizationName=" + ORG))
    booted(csms_p2, cp, 2)
    peer = csms_p2.wait_for(lambda: [(pc, t) for c, pc, t in csms_p2.csms.peercerts
                                     if c == cp and pc], 40, "reconnect with it")[0]
    assert client_cn(peer[0]) == cp and peer[1] >= nb - 0.2, (peer[1], nb)
