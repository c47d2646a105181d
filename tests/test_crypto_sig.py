"""ECDSA and RSA in firmware/ against signatures and keys made by `cryptography` (CPython;
the micropython run is in test_crypto_micropython.py)."""
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from firmware import ecdsa, rsa, x509
from tests import pki_build as pb

MSG = b"the tbsCertificate, or any message"


def _flip(b, i):
    b = bytearray(b)
    b[i % len(b)] ^= 0x01
    return bytes(b)


def _point(k):
    return k.public_key().public_bytes(serialization.Encoding.X962,
                                       serialization.PublicFormat.UncompressedPoint)


@pytest.mark.parametrize("kind,curve,hash_name", [("p256", "P-256", "sha256"),
                                                  ("p256", "P-256", "sha384"),
                                                  ("p384", "P-384", "sha384"),
                                                  ("p384", "P-384", "sha256")])
def test_ecdsa_verify_good_and_tampered(kind, curve, hash_name):
    k = pb.key(kind)
    other = pb.key(kind)
    pub = _point(k)
    for _ in range(3):
        sig = k.sign(MSG, ec.ECDSA(pb.HASHES[hash_name]()))
        dig = hashlib.new(hash_name, MSG).digest()
        assert ecdsa.verify(pub, dig, sig, curve)
        assert not ecdsa.verify(pub, hashlib.new(hash_name, _flip(MSG, 3)).digest(), sig, curve)
        assert not ecdsa.verify(pub, _flip(dig, 0), sig, curve)
        assert not ecdsa.verify(_point(other), dig, sig, curve)
        for i in range(4, len(sig), 7):       # inside r and s, not only the header
            assert not ecdsa.verify(pub, dig, _flip(sig, i), curve)
        assert not ecdsa.verify(pub, dig, sig + b"\x00", curve)
        assert not ecdsa.verify(pub, dig, sig[:-1], curve)


def test_ecdsa_rejects_bad_points_and_out_of_range_scalars():
    k = pb.key("p256")
    pub = _point(k)
    dig = hashlib.sha256(MSG).digest()
    sig = k.sign(MSG, ec.ECDSA(pb.HASHES["sha256"]()))
    assert not ecdsa.verify(_flip(pub, 40), dig, sig)            # off the curve
    assert not ecdsa.verify(pub[:-1], dig, sig)
    assert not ecdsa.verify(b"", dig, sig)
    assert not ecdsa.verify(pub, dig, sig, "P-521")
    n = ecdsa.P256.n
    r, s = ecdsa.decode_sig(sig)
    from firmware import asn1
    for rr, ss in [(0, s), (r, 0), (r + n, s), (r, s + n), (n, s)]:
        assert not ecdsa.verify(pub, dig, asn1.seq(asn1.integer(rr), asn1.integer(ss)))
    # a compressed point is accepted too
    comp = k.public_key().public_bytes(serialization.Encoding.X962,
                                       serialization.PublicFormat.CompressedPoint)
    assert ecdsa.verify(comp, dig, sig)


@pytest.mark.parametrize("curve,kind,hash_name", [("P-256", "p256", "sha256"),
                                                  ("P-384", "p384", "sha384")])
def test_ecdsa_sign_verified_by_cryptography(curve, kind, hash_name):
    k = pb.key(kind)
    d = k.private_numbers().private_value
    assert ecdsa.public_key(d, curve) == _point(k)
    dig = hashlib.new(hash_name, MSG).digest()
    sigs = set()
    for _ in range(3):
        sig = ecdsa.sign(d, dig, curve)
        k.public_key().verify(sig, MSG, ec.ECDSA(pb.HASHES[hash_name]()))
        with pytest.raises(InvalidSignature):
            k.public_key().verify(sig, _flip(MSG, 0), ec.ECDSA(pb.HASHES[hash_name]()))
        sigs.add(sig)
    assert len(sigs) == 3             # a fresh nonce each time


@pytest.mark.parametrize("curve,kind,hash_name", [("P-256", "p256", "sha256"),
                                                  ("P-256", "p256", "sha512"),
                                                  ("P-384", "p384", "sha384"),
                                                  ("P-384", "p384", "sha256")])
def test_ecdsa_rfc6979_nonce_equals_cryptography_deterministic_signing(curve, kind, hash_name):
    # without the hedge (extra=b"") the signature is RFC 6979's, byte for byte
    k = pb.key(kind)
    d = k.private_numbers().private_value
    for msg in (b"sample", b"test", MSG):
        want = k.sign(msg, ec.ECDSA(pb.HASHES[hash_name](), deterministic_signing=True))
        assert ecdsa.sign(d, hashlib.new(hash_name, msg).digest(), curve, extra=b"") == want


def test_ecdsa_sign_refuses_bad_inputs():
    dig = hashlib.sha256(MSG).digest()
    for d in (0, ecdsa.P256.n, -1):
        with pytest.raises(ValueError):
            ecdsa.sign(d, dig)
        with pytest.raises(ValueError):
            ecdsa.public_key(d)
    with pytest.raises(ValueError):
        ecdsa.sign(5, dig[:20])


def test_generate_p256_key_is_what_cryptography_derives():
    seen = set()
    for _ in range(3):
        d, pub = ecdsa.generate_p256()
        assert 0 < d < ecdsa.P256.n and len(pub) == 65 and pub[0] == 4
        assert _point(ec.derive_private_key(d, ec.SECP256R1())) == pub
        seen.add(d)
    assert len(seen) == 3
    k = serialization.load_der_private_key(ecdsa.private_key_der(d), None)
    assert k.private_numbers().private_value == d
    spki = ecdsa.spki(pub)
    assert serialization.load_der_public_key(spki).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) == pub


@pytest.mark.parametrize("kind", ["rsa2048", "rsa3072", "rsa4096"])
@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_rsa_pkcs1v15_verify_good_and_tampered(kind, hash_name):
    k = pb.key(kind)
    kb = k.public_key().public_bytes(pb.DER, serialization.PublicFormat.PKCS1)
    other = pb.key(kind).public_key().public_bytes(pb.DER, serialization.PublicFormat.PKCS1)
    H = hash_name.upper()
    sig = k.sign(MSG, padding.PKCS1v15(), pb.HASHES[hash_name]())
    dig = hashlib.new(hash_name, MSG).digest()
    assert rsa.verify(kb, H, dig, sig)
    assert not rsa.verify(kb, H, hashlib.new(hash_name, _flip(MSG, 1)).digest(), sig)
    assert not rsa.verify(other, H, dig, sig)
    for i in (0, 1, len(sig) // 2, len(sig) - 1):
        assert not rsa.verify(kb, H, dig, _flip(sig, i))
    assert not rsa.verify(kb, H, dig, b"\x00" + sig)
    assert not rsa.verify(kb, H, dig, sig[1:])
    wrong = "SHA512" if H != "SHA512" else "SHA384"
    assert not rsa.verify(kb, wrong, hashlib.new(wrong, MSG).digest(), sig)


def test_rsa_rejects_forged_padding_shapes():
    """Encoded messages that a lax parser would accept: raw m**e forgeries with e = 3
    cannot be made here, so the check is that verify compares the whole block: an
    encoding made with the right key but wrong padding bytes is refused."""
    k = pb.key("rsa2048")
    nums = k.private_numbers()
    n, d = nums.public_numbers.n, nums.d
    kb = k.public_key().public_bytes(pb.DER, serialization.PublicFormat.PKCS1)
    dig = hashlib.sha256(MSG).digest()
    t = rsa.digest_info("SHA256", dig)
    good = b"\x00\x01" + b"\xff" * (256 - 3 - len(t)) + b"\x00" + t
    variants = [good[:10] + b"\xfe" + good[11:],                    # a padding byte not ff
                b"\x00\x02" + good[2:],                             # block type 2
                good[:-len(t) - 1] + b"\x01" + t,                   # no 00 separator
                b"\x00\x01" + b"\xff" * (256 - 3 - len(t) - 2) + b"\x00" + t + b"\x00\x00",
                b"\x00\x01" + b"\xff" * (256 - 3 - len(t) - 2) + b"\x00" + t[:-32] + dig +
                b"ab"]
    assert rsa.verify(kb, "SHA256", dig, pow(int.from_bytes(good, "big"), d, n).to_bytes(256,
                                                                                        "big"))
    for em in variants:
        assert len(em) == 256
        sig = pow(int.from_bytes(em, "big"), d, n).to_bytes(256, "big")
        assert not rsa.verify(kb, "SHA256", dig, sig)


def test_rsa_refuses_small_keys_and_bad_exponents():
    from firmware import asn1
    assert not rsa.verify(asn1.seq(asn1.integer((1 << 1023) + 1), asn1.integer(65537)),
                          "SHA256", b"\x00" * 32, b"\x01" * 128)
    with pytest.raises(ValueError):
        rsa.public_key(asn1.seq(asn1.integer((1 << 2047) + 1), asn1.integer(65536)))
    with pytest.raises(ValueError):
        rsa.public_key(asn1.seq(asn1.integer((1 << 2047) + 1), asn1.integer(1 << 40)))


@pytest.mark.parametrize("issuer_kind,hash_name", [("p256", "sha256"), ("p384", "sha384"),
                                                   ("rsa2048", "sha256"), ("rsa2048", "sha512"),
                                                   ("rsa3072", "sha384")])
def test_verify_signed_by_dispatches_on_algorithm(issuer_kind, hash_name):
    root = pb.issue("Root", key_kind=issuer_kind, ca=True)
    other = pb.issue("Root", key_kind=issuer_kind, ca=True)
    leaf = pb.issue("Leaf", root, hash_name=hash_name)
    r, o, lf = x509.Cert(root.der), x509.Cert(other.der), x509.Cert(leaf.der)
    assert x509.verify_signed_by(lf, r) is True
    with pytest.raises(x509.Invalid, match="bad signature"):
        x509.verify_signed_by(lf, o)
    with pytest.raises(x509.Invalid):
        x509.verify_signed_by(lf, lf if issuer_kind.startswith("rsa") else
                              x509.Cert(pb.issue("R", key_kind="rsa2048", ca=True).der))
