"""The certificate store survives a power cut at any file operation (DESIGN: persistence):
install, delete, a CSMS root replaced under AdditionalRootCertificateCheck (fallback kept)
and the fallback dropped, recorded on the littlefs power-cut double (tests/cutfs.py); the
directory a cut before every operation leaves is checked: the index is the state before or
after the interrupted request, every indexed certificate is on flash, and the TLS bundles
read back hold exactly the index's CSMS roots (a stale one is rebuilt on read).

In-process on CPython: the double replaces builtins.open, which the micropython port does not
allow; the store code is the same on both (the protocol tests run it under micropython)."""
import os

from firmware import cert_store, x509
from firmware.certificates import Block
from firmware.storage import Store
from tests import cutfs, cutpoints
from tests.pki import make_cert, pem_text


class _Dm:
    def __init__(self):
        self.vals = {"AdditionalRootCertificateCheck": False, "SecurityProfile": 1}

    def get(self, component, variable, **kw):
        return self.vals.get(variable)

    def max_limit(self, component, variable, **kw):
        return 8


class _Rpc:
    def register(self, action, fn):
        pass


class _Station:
    def __init__(self, d):
        self.store = Store(d)
        self.dm = _Dm()
        self.rpc = _Rpc()
        self.cafile = None
        self.events = []
        self.blocks = {}

    def security_event(self, kind, info=None):
        self.events.append((kind, info))


def _state(d):
    idx = cert_store.load(Store(d))
    return sorted((e[1], tuple(e[2]), bool(e[3])) for e in idx["certs"])


def _ders(path):
    if path is None:
        return []
    with open(path) as f:
        return sorted(x509.pem_blocks(f.read()))


def _check_dir(d):
    store = Store(d)
    store.recover_tmp(cert_store.INDEX)
    idx = cert_store.load(store)
    for e in idx["certs"]:
        text = cert_store.read_file(store, cert_store.cert_name(e[0]))
        assert text, "certificate %d of the index is missing" % e[0]
        x509.Cert(x509.pem_blocks(text)[0])
    want = {}
    for fb in (False, True):
        want[fb] = sorted(x509.pem_blocks(cert_store.read_file(store, cert_store.cert_name(e[0])))[0]
                          for e in idx["certs"] if e[1] == "CSMSRootCertificate" and bool(e[3]) == fb)
    assert _ders(cert_store.csms_roots_pem_path(d)) == want[False]
    assert _ders(cert_store.csms_fallback_pem_path(d)) == want[True]
    # bounded: no certificate file beyond the index, the ones still to be removed and the
    # one(s) an interrupted install wrote under the next ids
    ids = set(e[0] for e in idx["certs"]) | set(idx.get("gone") or [])
    for n in os.listdir(d):
        if n.startswith("cert") and n.endswith(".pem"):
            i = int(n[4:-4])
            assert i in ids or i >= idx["next"], (n, idx)


def test_certificate_store_power_cut_at_every_operation(tmp_path):
    d = str(tmp_path / "data")
    os.makedirs(d)
    trace = str(tmp_path / "trace")
    ka, a = make_cert("Root A")
    _, m = make_cert("Manufacturer Root", kind="rsa")
    kb, b = make_cert("Root B")
    _, c = make_cert("Root C", issuer=b, issuer_key=kb)  # signed by B: replaces it
    st = _Station(d)
    blk = Block(st)

    def inst(t, cert):
        assert blk.install({"certificateType": t, "certificate": pem_text(cert)})["status"] == "Accepted"

    def dele(cert):
        hd = x509.hash_data(x509.Cert(cert.public_bytes(_der())), x509.Cert(cert.public_bytes(_der())))
        assert blk.delete({"certificateHashData": hd})["status"] == "Accepted"

    def check_on():
        st.dm.vals["AdditionalRootCertificateCheck"] = True
        inst("CSMSRootCertificate", c)

    steps = [lambda: inst("CSMSRootCertificate", a), lambda: inst("ManufacturerRootCertificate", m),
             lambda: inst("CSMSRootCertificate", b), lambda: dele(a), check_on,
             lambda: cert_store.drop_fallback(d)]
    states = [_state(d)]
    bounds = [0]
    cutfs.install_fs(d, trace)
    try:
        for s in steps:
            s()
            bounds.append(cutfs._count[0])
            states.append(_state(d))
    finally:
        cutfs.uninstall_fs()
    assert len(set(map(tuple, states))) == len(states)  # every step changed the store
    assert [x[2] for x in states[5] if x[0] == "CSMSRootCertificate"].count(True) == 1
    tr = cutpoints.Trace(trace)
    for n in range(bounds[-1] + 1):
        k = max(i for i, b0 in enumerate(bounds) if b0 <= n)
        cut = str(tmp_path / ("cut%d" % n))
        cutpoints.write_files(tr.snapshot(n), cut)
        got = _state(cut)
        ok = [states[k]] + ([states[k + 1]] if k + 1 < len(states) else [])
        assert got in ok, (n, cutpoints.describe(tr, n))
        _check_dir(cut)


def _der():
    from cryptography.hazmat.primitives import serialization
    return serialization.Encoding.DER


def test_M04_FR_06_station_certificate_is_not_deleted(tmp_path):
    """The Charging Station certificate (firmware.client_cert's current one): DeleteCertificate
    answers Failed for it, NotFound for anything else unknown."""
    from firmware import client_cert
    st = _Station(str(tmp_path))
    _, own = make_cert("CS001", ca=False, key_usage="leaf")
    der = own.public_bytes(_der())
    own_hd = x509.hash_data(x509.Cert(der), x509.Cert(der))
    blk = Block(st)
    assert blk.delete({"certificateHashData": own_hd})["status"] == "NotFound"
    client_cert.write(st.store, client_cert.cert_name(1), pem_text(own))
    client_cert.write(st.store, client_cert.key_name(1), "key")
    client_cert.save(st.store, {"next": 2, "cur": 1, "old": None, "pending": None})
    r = blk.delete({"certificateHashData": own_hd})
    assert r["status"] == "Failed"
    _, other = make_cert("Other")
    d2 = other.public_bytes(_der())
    assert blk.delete({"certificateHashData": x509.hash_data(x509.Cert(d2), x509.Cert(d2))}) == \
        {"status": "NotFound"}
