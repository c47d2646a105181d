"""firmware.x509 and firmware.asn1 against `cryptography`'s view of the same certificates
(CPython; the micropython run is in test_crypto_micropython.py)."""
import datetime
import hashlib

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import serialization

from firmware import asn1, sha512, x509
from tests import pki_build as pb

CASES = [("p256", "sha256"), ("p384", "sha384"), ("p256", "sha384"), ("rsa2048", "sha256"),
         ("rsa3072", "sha384"), ("rsa2048", "sha512")]


def _curve(kind):
    return {"p256": "P-256", "p384": "P-384"}.get(kind)


@pytest.mark.parametrize("kind,hash_name", CASES)
def test_fields_match_cryptography(kind, hash_name):
    root = pb.issue("Root", key_kind=kind, org="Org & Co", ca=True, path_len=2,
                    hash_name=hash_name)
    c = x509.Cert(root.der)
    ref = root.cert
    assert c.der == root.der
    assert c.tbs == ref.tbs_certificate_bytes
    assert c.sig == ref.signature
    assert c.subject == ref.subject.public_bytes() and c.issuer == ref.issuer.public_bytes()
    assert int.from_bytes(c.serial, "big") == ref.serial_number
    assert c.not_before == pb.unix(ref.not_valid_before_utc)
    assert c.not_after == pb.unix(ref.not_valid_after_utc)
    assert c.ca is True and c.path_len == 2
    assert c.key_usage == x509.KU_KEY_CERT_SIGN | x509.KU_CRL_SIGN
    assert c.spki == ref.public_key().public_bytes(
        pb.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert c.key_bits == pb.key_bits(ref)
    assert c.key_alg == ("rsa" if kind.startswith("rsa") else "ec")
    assert c.curve == _curve(kind)
    assert c.sig_alg == ("rsa-" if kind.startswith("rsa") else "ecdsa-") + hash_name
    assert c.subject_cn() == "Root" and c.subject_org() == "Org & Co"
    assert c.self_issued()


def test_leaf_without_extensions_and_generalized_time():
    # after 2049 cryptography writes GeneralizedTime (RFC 5280 4.1.2.5)
    root = pb.issue("Root", ca=True)
    leaf = pb.issue("Leaf", root, ca=None, key_usage=None, after_days=365 * 40)
    c = x509.Cert(leaf.der)
    assert leaf.der.count(b"\x18\x0f") == 1          # one GeneralizedTime
    assert c.not_after == pb.unix(leaf.cert.not_valid_after_utc)
    assert c.not_after > pb.unix(datetime.datetime(2050, 1, 1, tzinfo=datetime.timezone.utc))
    assert c.ca is False and c.path_len is None and c.key_usage is None
    assert c.subject_org() is None and c.subject_cn() == "Leaf" and not c.self_issued()


def test_key_usage_bits_use_rfc5280_numbers():
    root = pb.issue("Root", ca=True)
    leaf = pb.issue("Leaf", root, key_usage={"digital_signature": True,
                                             "key_agreement": True, "decipher_only": True})
    assert x509.Cert(leaf.der).key_usage == (1 << 0) | (1 << 4) | (1 << 8)


@pytest.mark.parametrize("serial,expected", [(1, "1"), (0x80, "80"), (0x0100, "100"),
                                              ((1 << 158) + 5, "4" + "0" * 38 + "5")])
def test_serial_hex_has_no_leading_zeroes(serial, expected):
    # INTEGER content 00 80 for 0x80: the spec's "without leading zeroes" drops the 00
    root = pb.issue("Root", ca=True, serial=serial)
    c = x509.Cert(root.der)
    assert x509.serial_hex(c.serial) == expected == "%x" % serial


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_hash_data_matches_ocsp_certid_from_cryptography(kind, hash_name):
    root = pb.issue("Root", key_kind=kind, ca=True)
    leaf = pb.issue("Leaf", root)
    want = pb.ocsp_hash_data(leaf.cert, root.cert, hash_name)
    got = x509.hash_data(x509.Cert(leaf.der), x509.Cert(root.der), hash_name.upper())
    assert got == want
    # the issuer given by its key bits instead of its certificate
    assert x509.hash_data(x509.Cert(leaf.der), pb.key_bits(root.cert), hash_name) == want
    # a root is its own issuer
    assert x509.hash_data(x509.Cert(root.der), x509.Cert(root.der), hash_name) == \
        pb.ocsp_hash_data(root.cert, root.cert, hash_name)


def test_hash_data_refuses_unknown_algorithm():
    root = x509.Cert(pb.issue("Root", ca=True).der)
    with pytest.raises(x509.Invalid):
        x509.hash_data(root, root, "MD5")


def test_pem_blocks_chain_and_other_blocks():
    root, inters, leaf = pb.chain(2)
    key_pem = leaf.key.private_bytes(pb.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    text = b"comment\n" + leaf.pem + key_pem + inters[1].pem + inters[0].pem + b"trailer"
    assert x509.pem_blocks(text) == [leaf.der, inters[1].der, inters[0].der]
    assert x509.pem_blocks(text.decode()) == [leaf.der, inters[1].der, inters[0].der]
    assert len(x509.pem_blocks(key_pem, "PRIVATE KEY")) == 1
    assert x509.pem(leaf.der) == leaf.pem.decode()


@pytest.mark.parametrize("text", [
    b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n",
    b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMII*AAAA\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",     # trailing none
    b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\n" + b"QUFB" * 4000 + b"\n-----END CERTIFICATE-----\n",
])
def test_pem_garbage_is_invalid(text):
    try:
        blocks = x509.pem_blocks(text)
    except x509.Invalid:
        return
    # well-formed DER that is not a certificate: Cert() must refuse it
    with pytest.raises(x509.Invalid):
        [x509.Cert(b) for b in blocks]


def test_pem_too_many_blocks():
    root = pb.issue("Root", ca=True)
    with pytest.raises(x509.Invalid, match="too many"):
        x509.pem_blocks(root.pem * (x509.MAX_BLOCKS + 1))
    assert len(x509.pem_blocks(root.pem * x509.MAX_BLOCKS)) == x509.MAX_BLOCKS


def test_unknown_critical_extension_is_kept_for_the_chain_check():
    ext = cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    root = pb.issue("Root", ca=True, extensions=[(ext, True)])
    assert x509.Cert(root.der).unknown_critical == ["1.3.6.1.4.1.99999.1"]
    root = pb.issue("Root", ca=True, extensions=[(ext, False)])
    assert x509.Cert(root.der).unknown_critical == []


def test_der_writer_round_trips_through_reader():
    blob = asn1.seq(asn1.integer(0), asn1.integer(127), asn1.integer(128),
                    asn1.integer(1 << 2047), asn1.oid("1.2.840.113549.1.1.11"),
                    asn1.set_of(asn1.utf8("zé"), asn1.printable("A")), asn1.null(),
                    asn1.bit_string(b"\x01\x02"), asn1.octet_string(b"x" * 300),
                    asn1.context(0, asn1.integer(2)), asn1.context(1, b"ab", False))
    r = asn1.Reader(blob).enter()
    assert [r.unsigned(), r.unsigned(), r.unsigned(), r.unsigned(300)] == [0, 127, 128, 1 << 2047]
    assert asn1.oid_str(r.value(asn1.OID)) == "1.2.840.113549.1.1.11"
    s = r.enter(asn1.SET)
    assert sorted([s.value(), s.value()]) == sorted([b"A", "zé".encode()])
    r.next(asn1.NULL)
    s0, s1 = r.bit_string()
    assert blob[s0:s1] == b"\x01\x02"
    assert r.value(asn1.OCTET_STRING) == b"x" * 300
    c = r.enter(asn1.ctx(0))
    assert c.unsigned() == 2
    assert r.value(asn1.ctx(1, False)) == b"ab"
    r.done()
    # cryptography decodes the same writer output (a Name) identically
    name = asn1.seq(asn1.set_of(asn1.seq(asn1.oid("2.5.4.3"), asn1.utf8("CS001"))),
                    asn1.set_of(asn1.seq(asn1.oid("2.5.4.10"), asn1.utf8("Org"))))
    assert cx.Name.from_rfc4514_string("O=Org,CN=CS001").public_bytes() == name


def test_der_writer_matches_cryptography_for_integers_and_oids():
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    for r, s in [(1, 2), (127, 128), (255, 256), ((1 << 255) + 1, (1 << 256) - 1)]:
        assert asn1.seq(asn1.integer(r), asn1.integer(s)) == encode_dss_signature(r, s)
    root = pb.issue("Root", ca=True)
    assert asn1.oid("1.2.840.10045.4.3.2") in root.der


def test_sha384_sha512_fallback_matches_hashlib():
    data = bytes(range(256)) * 5
    for n in (0, 1, 55, 111, 112, 127, 128, 129, 239, 240, 256, 1280):
        assert sha512.SHA512(data[:n], 64).digest() == hashlib.sha512(data[:n]).digest()
        assert sha512.SHA512(data[:n], 48).digest() == hashlib.sha384(data[:n]).digest()
    h = sha512.SHA512(None, 64)
    for i in range(0, 1280, 37):
        h.update(data[i:i + 37])
    assert h.digest() == hashlib.sha512(data).digest()
    assert h.digest() == hashlib.sha512(data).digest()      # digest() does not finalise


def test_csr_built_with_the_writer_is_valid_for_cryptography():
    """What the station's SignCertificate needs (A02/A03): a PKCS#10 request from the DER
    writer, make_name and ecdsa, signed on the device with its P-256 key."""
    from firmware import ecdsa
    d, pub = ecdsa.generate_p256()
    subject = x509.make_name(cn="CS001", org="Test CSO ü", country="NL")
    info = asn1.seq(asn1.integer(0), subject, ecdsa.spki(pub), asn1.context(0, b""))
    alg = asn1.seq(asn1.oid("1.2.840.10045.4.3.2"))
    csr_der = asn1.seq(info, alg,
                       asn1.bit_string(ecdsa.sign(d, hashlib.sha256(info).digest())))
    csr = cx.load_der_x509_csr(csr_der)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=CS001,O=Test CSO ü,C=NL"
    assert csr.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) == pub
    # and the Name parses back through the reader
    assert x509._name_value(subject, x509.OID_O) == "Test CSO ü"


def test_unsupported_algorithms_parse_but_never_verify():
    """A root on a curve or with a signature scheme the station cannot check can still be
    listed (hash data) but verifies nothing."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
    k521 = ec.generate_private_key(ec.SECP521R1())
    r521 = pb.issue("Root 521", ca=True, subject_key=k521, hash_name="sha512")
    c = x509.Cert(r521.der)
    assert c.key_alg == "ec" and c.curve is None and c.sig_alg == "ecdsa-sha512"
    assert x509.hash_data(c, c)["issuerKeyHash"] == pb.ocsp_hash_data(
        r521.cert, r521.cert)["issuerKeyHash"]
    with pytest.raises(x509.Invalid, match="P-256"):
        x509.verify_signed_by(c, c)
    ed = ed25519.Ed25519PrivateKey.generate()
    subject = pb.name("Ed Root")
    cert = (cx.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(ed.public_key()).serial_number(7)
            .not_valid_before(pb.NOW).not_valid_after(pb.NOW)
            .sign(ed, None))
    c = x509.Cert(cert.public_bytes(pb.DER))
    assert c.key_alg == "1.3.101.112" and c.sig_alg == "1.3.101.112"
    with pytest.raises(x509.Invalid, match="unsupported signature"):
        x509.verify_signed_by(c, c)
    rk = pb.key("rsa2048")
    pss = (cx.CertificateBuilder().subject_name(subject).issuer_name(subject)
           .public_key(rk.public_key()).serial_number(8)
           .not_valid_before(pb.NOW).not_valid_after(pb.NOW)
           .sign(rk, hashes.SHA256(), rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()),
                                                              32)))
    c = x509.Cert(pss.public_bytes(pb.DER))
    assert c.sig_alg == "1.2.840.113549.1.1.10" and c.key_alg == "rsa"
    with pytest.raises(x509.Invalid, match="unsupported signature"):
        x509.verify_signed_by(c, c)
