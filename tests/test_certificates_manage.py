"""Certificate management (M03 GetInstalledCertificateIds, M04 DeleteCertificate, M05
InstallCertificate) against the test CSMS over loopback, station on CPython and under
micropython. Certificates are made here with `cryptography`; the hash data the station reports
is compared with values computed here by hashlib (tests/pki.expected_hash_data)."""
import pytest

from tests.helpers import booted, get_var
from tests.pki import expected_hash_data, make_cert, pem_text

ROOT_TYPES = ("CSMSRootCertificate", "ManufacturerRootCertificate", "MORootCertificate",
              "V2GRootCertificate")


def install(csms, cp, ctype, cert):
    text = cert if isinstance(cert, str) else pem_text(cert)
    return csms.call(cp, "InstallCertificate", {"certificateType": ctype, "certificate": text})


def installed(csms, cp, types=None):
    req = {"certificateType": list(types)} if types else {}
    return csms.call(cp, "GetInstalledCertificateIds", req)


def chain_of(r):
    """[(certificateType, certificateHashData)] of a GetInstalledCertificateIdsResponse."""
    return [(c["certificateType"], c["certificateHashData"])
            for c in r.get("certificateHashDataChain", [])]


def delete(csms, cp, hash_data):
    return csms.call(cp, "DeleteCertificate", {"certificateHashData": hash_data})


def _station(csms, station, args=()):
    st = station(args=list(args))
    booted(csms, st.identity)
    return st


def test_TC_M_01_CS_install_csms_root_certificate(csms, station):
    st = _station(csms, station)
    cp = st.identity
    _, root = make_cert("CSMS Root 2")
    assert install(csms, cp, "CSMSRootCertificate", root) == {"status": "Accepted"}
    r = installed(csms, cp, ["CSMSRootCertificate"])
    assert r["status"] == "Accepted"
    assert chain_of(r) == [("CSMSRootCertificate", expected_hash_data(root, root))]
    assert get_var(csms, cp, "SecurityCtrlr", "CertificateEntries") == "1"
    # a CA root is a security parameter: recorded in the security log
    recs = st.cmd("seclog 20")["records"]
    assert [x for x in recs if x[1] == "ReconfigurationOfSecurityParameters"
            and "CSMSRootCertificate installed" in (x[2] or "")]


@pytest.mark.parametrize("kind", ["ec", "ec384", "rsa"])
def test_TC_M_02_CS_install_manufacturer_root_certificate(csms, station, kind):
    st = _station(csms, station)
    cp = st.identity
    _, root = make_cert("Manufacturer Root", kind=kind)
    assert install(csms, cp, "ManufacturerRootCertificate", root)["status"] == "Accepted"
    r = installed(csms, cp, ["ManufacturerRootCertificate"])
    assert chain_of(r) == [("ManufacturerRootCertificate", expected_hash_data(root, root))]


def test_M05_intermediate_ca_needs_its_issuer_installed(csms, station):
    st = _station(csms, station)
    cp = st.identity
    root_key, root = make_cert("MO Root", kind="rsa")
    _, sub = make_cert("MO Sub-CA", issuer=root, issuer_key=root_key)
    r = install(csms, cp, "MORootCertificate", sub)
    assert r["status"] == "Rejected"  # issuerKeyHash needs the issuer's key
    assert install(csms, cp, "MORootCertificate", root)["status"] == "Accepted"
    assert install(csms, cp, "MORootCertificate", sub)["status"] == "Accepted"
    assert sorted(chain_of(installed(csms, cp, ["MORootCertificate"])), key=str) == sorted(
        [("MORootCertificate", expected_hash_data(root, root)),
         ("MORootCertificate", expected_hash_data(sub, root))], key=str)
    # a sub-CA naming an installed issuer but signed by another key is refused
    other_key, _ = make_cert("Other", kind="rsa")
    _, forged = make_cert("MO Sub-CA 2", issuer=root, issuer_key=other_key)
    assert install(csms, cp, "MORootCertificate", forged)["status"] == "Rejected"


def _big_root(target_len=5400):
    """An RSA-4096 / SHA-512 root padded with subjectAltNames to just under the 5500
    characters InstallCertificateRequest allows."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    from tests.pki import new_key
    key = new_key("rsa4096")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Big Root")])
    now = datetime.datetime.now(datetime.timezone.utc)
    n = 10
    while True:
        c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.SubjectAlternativeName(
                 [x509.DNSName("host%03d.example" % i) for i in range(n)]), critical=False)
             .sign(key, hashes.SHA512()))
        if len(pem_text(c)) > target_len:
            return c
        n += 10


def test_M05_largest_certificate_the_schema_allows(csms, station):
    st = _station(csms, station)
    cp = st.identity
    root = _big_root()
    assert 5000 < len(pem_text(root)) <= 5500
    assert install(csms, cp, "CSMSRootCertificate", root)["status"] == "Accepted"
    assert chain_of(installed(csms, cp)) == [("CSMSRootCertificate", expected_hash_data(root, root))]
    import os
    with open(os.path.join(st.data_dir, "csms_root.pem")) as f:
        assert pem_text(root).strip() in f.read()  # the TLS bundle holds it whole


def _invalid_certificates():
    """(what, PEM text) pairs the station must refuse (M05.FR.07)."""
    _, expired = make_cert("Expired Root", valid_from_days=-40, valid_days=30)
    _, future = make_cert("Future Root", valid_from_days=2, valid_days=30)
    _, leaf = make_cert("Not A CA", ca=False, key_usage="leaf")
    _, no_ca_ext = make_cert("No basicConstraints", ca=None)
    _, wrong_ku = make_cert("No keyCertSign", key_usage="leaf")
    # self-issued (subject == issuer) but signed by another key
    other_key, _ = make_cert("Other")
    _, forged = make_cert("Forged Root", issuer_key=other_key)
    good = pem_text(make_cert("Good")[1])
    return [
        ("expired", pem_text(expired)),
        ("not yet valid", pem_text(future)),
        ("end-entity certificate", pem_text(leaf)),
        ("no basicConstraints", pem_text(no_ca_ext)),
        ("keyUsage without keyCertSign", pem_text(wrong_ku)),
        ("bad self-signature", pem_text(forged)),
        ("garbage", "not a certificate at all"),
        ("bad base64", "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n"),
        ("truncated DER", good[:len(good) // 2].rsplit("\n", 2)[0] + "\n-----END CERTIFICATE-----\n"),
        ("two certificates", good + good),
    ]


def test_TC_M_07_CS_install_invalid_certificate_rejected(csms, station):
    st = _station(csms, station)
    cp = st.identity
    for what, text in _invalid_certificates():
        r = install(csms, cp, "CSMSRootCertificate", text)
        assert r["status"] == "Rejected", what
        assert r["statusInfo"]["reasonCode"] == "InvalidCertificate", what
    # nothing was installed
    assert installed(csms, cp, ["CSMSRootCertificate"]) == {"status": "NotFound"}
    assert get_var(csms, cp, "SecurityCtrlr", "CertificateEntries") == "0"


def test_TC_M_12_13_17_CS_retrieve_certificates_by_type(csms, station):
    st = _station(csms, station)
    cp = st.identity
    _, csms_root = make_cert("CSMS Root")
    _, mf_root = make_cert("Manufacturer Root")
    assert install(csms, cp, "CSMSRootCertificate", csms_root)["status"] == "Accepted"
    assert install(csms, cp, "ManufacturerRootCertificate", mf_root)["status"] == "Accepted"
    csms_hd = ("CSMSRootCertificate", expected_hash_data(csms_root, csms_root))
    mf_hd = ("ManufacturerRootCertificate", expected_hash_data(mf_root, mf_root))
    # TC_M_12: CSMS roots only; TC_M_13: manufacturer roots only; TC_M_17: both
    assert chain_of(installed(csms, cp, ["CSMSRootCertificate"])) == [csms_hd]
    assert chain_of(installed(csms, cp, ["ManufacturerRootCertificate"])) == [mf_hd]
    both = installed(csms, cp, ["CSMSRootCertificate", "ManufacturerRootCertificate"])
    assert sorted(chain_of(both), key=str) == sorted([csms_hd, mf_hd], key=str)


def test_TC_M_18_CS_retrieve_all_certificate_types(csms, station):
    st = _station(csms, station)
    cp = st.identity
    want = []
    for i, t in enumerate(ROOT_TYPES):
        _, root = make_cert("Root %d" % i, kind="ec384" if i % 2 else "ec")
        assert install(csms, cp, t, root)["status"] == "Accepted", t  # TC_M_03/04 too
        want.append((t, expected_hash_data(root, root)))
    r = installed(csms, cp)  # certificateType omitted: every type
    assert r["status"] == "Accepted"
    assert sorted(chain_of(r), key=str) == sorted(want, key=str)
    assert get_var(csms, cp, "SecurityCtrlr", "CertificateEntries") == "4"


def test_TC_M_19_CS_retrieve_certificates_none_found(csms, station):
    st = _station(csms, station)
    cp = st.identity
    assert installed(csms, cp, ["V2GRootCertificate"]) == {"status": "NotFound"}
    _, root = make_cert("CSMS Root")
    assert install(csms, cp, "CSMSRootCertificate", root)["status"] == "Accepted"
    # M03.FR.02: nothing of the types asked for
    assert installed(csms, cp, ["V2GRootCertificate", "MORootCertificate"]) == {"status": "NotFound"}
    assert installed(csms, cp, ["V2GCertificateChain"]) == {"status": "NotFound"}


def test_TC_M_20_CS_delete_certificate(csms, station):
    st = _station(csms, station)
    cp = st.identity
    _, r1 = make_cert("CSMS Root 1")
    _, r2 = make_cert("CSMS Root 2")
    for r in (r1, r2):
        assert install(csms, cp, "CSMSRootCertificate", r)["status"] == "Accepted"
    listed = chain_of(installed(csms, cp, ["CSMSRootCertificate"]))
    hd = expected_hash_data(r2, r2)
    assert ("CSMSRootCertificate", hd) in listed
    # the CSMS sends back the hash data it was given, in any letter case
    assert delete(csms, cp, dict(hd, issuerKeyHash=hd["issuerKeyHash"].upper())) == {"status": "Accepted"}
    assert chain_of(installed(csms, cp, ["CSMSRootCertificate"])) == \
        [("CSMSRootCertificate", expected_hash_data(r1, r1))]
    assert get_var(csms, cp, "SecurityCtrlr", "CertificateEntries") == "1"
    # profile 1 (ws://): the last CSMS root is not in use for TLS and may go too
    assert delete(csms, cp, expected_hash_data(r1, r1)) == {"status": "Accepted"}
    assert installed(csms, cp, ["CSMSRootCertificate"]) == {"status": "NotFound"}
    recs = st.cmd("seclog 20")["records"]
    assert len([x for x in recs if "CSMSRootCertificate deleted" in (x[2] or "")]) == 2


def test_M04_FR_07_delete_with_sha384_and_sha512_hash_data(csms, station):
    st = _station(csms, station)
    cp = st.identity
    k1, r1 = make_cert("MO Root", kind="rsa")
    _, sub = make_cert("MO Sub-CA", issuer=r1, issuer_key=k1)
    _, r2 = make_cert("V2G Root", kind="ec384")
    assert install(csms, cp, "MORootCertificate", r1)["status"] == "Accepted"
    assert install(csms, cp, "MORootCertificate", sub)["status"] == "Accepted"
    assert install(csms, cp, "V2GRootCertificate", r2)["status"] == "Accepted"
    # a hash of the right certificate with the wrong algorithm label matches nothing
    wrong = dict(expected_hash_data(sub, r1, "SHA384"), hashAlgorithm="SHA512")
    assert delete(csms, cp, wrong) == {"status": "NotFound"}
    assert delete(csms, cp, expected_hash_data(sub, r1, "SHA384")) == {"status": "Accepted"}
    assert delete(csms, cp, expected_hash_data(r2, r2, "SHA512")) == {"status": "Accepted"}
    assert chain_of(installed(csms, cp)) == [("MORootCertificate", expected_hash_data(r1, r1))]


def test_TC_M_22_CS_delete_certificate_not_found(csms, station):
    st = _station(csms, station)
    cp = st.identity
    _, root = make_cert("CSMS Root")
    _, unknown = make_cert("Never Installed")
    assert install(csms, cp, "CSMSRootCertificate", root)["status"] == "Accepted"
    assert delete(csms, cp, expected_hash_data(unknown, unknown)) == {"status": "NotFound"}
    # the right serial with another issuer is another certificate
    hd = dict(expected_hash_data(root, root), issuerKeyHash=expected_hash_data(unknown, unknown)["issuerKeyHash"])
    assert delete(csms, cp, hd) == {"status": "NotFound"}
    assert len(chain_of(installed(csms, cp))) == 1


def test_M05_FR_06_FR_17_entries_limit_and_reinstall(csms, station):
    st = _station(csms, station)
    cp = st.identity
    r = csms.call(cp, "GetVariables", {"getVariableData": [
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "CertificateEntries"}}]})
    assert r["getVariableResult"][0]["attributeStatus"] == "Accepted"
    limit = 8  # SecurityCtrlr.CertificateEntries maxLimit in the device model
    roots = [make_cert("Root %d" % i)[1] for i in range(limit)]
    for c in roots:
        assert install(csms, cp, "MORootCertificate", c)["status"] == "Accepted"
    # M05.FR.17: the same certificate again replaces itself, the count stays
    assert install(csms, cp, "MORootCertificate", roots[3])["status"] == "Accepted"
    assert get_var(csms, cp, "SecurityCtrlr", "CertificateEntries") == str(limit)
    # M05.FR.06: one more would exceed CertificateEntries maxLimit
    r = install(csms, cp, "MORootCertificate", make_cert("One Too Many")[1])
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "OutOfStorage"
    assert len(chain_of(installed(csms, cp))) == limit
    # the store stays bounded on flash: one file per certificate and the index
    import os
    pems = [n for n in os.listdir(st.data_dir) if n.startswith("cert") and n.endswith(".pem")]
    assert len(pems) == limit, pems


def test_M05_certificates_survive_a_restart(csms, station, tmp_path):
    data = str(tmp_path / "keep")
    st = station(data_dir=data)
    cp = st.identity
    booted(csms, cp)
    _, csms_root = make_cert("CSMS Root", kind="ec384")
    _, mf_root = make_cert("Manufacturer Root")
    assert install(csms, cp, "CSMSRootCertificate", csms_root)["status"] == "Accepted"
    assert install(csms, cp, "ManufacturerRootCertificate", mf_root)["status"] == "Accepted"
    assert delete(csms, cp, expected_hash_data(mf_root, mf_root))["status"] == "Accepted"
    before = chain_of(installed(csms, cp))
    st.kill()  # a power cut, not a shutdown
    st2 = station(identity=cp, data_dir=data)
    booted(csms, cp, n=2)
    assert chain_of(installed(csms, cp)) == before == \
        [("CSMSRootCertificate", expected_hash_data(csms_root, csms_root))]
    st2.quit()


def test_certificates_block_loads_on_demand_and_is_dropped(csms, station):
    st = _station(csms, station)
    cp = st.identity
    assert not [m for m in st.cmd("modules")["modules"]
                if m in ("firmware.certificates", "firmware.x509", "firmware.asn1")]
    assert install(csms, cp, "CSMSRootCertificate", make_cert("Root")[1])["status"] == "Accepted"
    assert "firmware.certificates" in st.cmd("modules")["modules"]
    csms.wait_for(lambda: not [m for m in st.cmd("modules")["modules"]
                               if m in ("firmware.certificates", "firmware.cert_store", "firmware.x509", "firmware.asn1",
                                        "firmware.ecdsa", "firmware.sha512")],
                  20, "certificate modules dropped")


def test_M05_FR_07_mutated_certificates_rejected_cleanly(csms, station):
    """Hostile input over the wire: a valid root with one byte changed (DER header, length,
    field or signature), truncated, or padded; each gets Rejected and the station stays up."""
    import base64
    import random
    st = _station(csms, station)
    cp = st.identity
    from cryptography.hazmat.primitives import serialization
    der = make_cert("Fuzz Root")[1].public_bytes(serialization.Encoding.DER)
    rng = random.Random(12)

    def as_pem(b):
        return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % \
            base64.encodebytes(bytes(b)).decode().strip()
    cases = [der[:n] for n in (1, 2, 4, len(der) // 2, len(der) - 1)]
    cases.append(der + b"\x00")
    cases.append(b"\x30\x84\xff\xff\xff\xff" + der[4:])
    for _ in range(40):
        b = bytearray(der)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        cases.append(bytes(b))
    for b in cases:
        r = install(csms, cp, "CSMSRootCertificate", as_pem(b))
        assert r["status"] == "Rejected", b.hex()
    assert installed(csms, cp) == {"status": "NotFound"}
    assert st.status()["connected"]
