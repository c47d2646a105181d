"""The crypto core on both targets: tests/mp_crypto_check.py runs under the interpreter
over vectors made here by `cryptography` (certificates, chains, ECDSA/RSA signatures,
hostile blobs); every answer is checked here against cryptography's own view."""
import hashlib
import json
import random
import subprocess

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from firmware import asn1
from tests import pki_build as pb
from tests.harness import ROOT, TARGETS, interpreter, micropython_exe

NOW = pb.unix(pb.NOW)
MSG = b"message signed for the micropython check"


def _point(k):
    return k.public_key().public_bytes(serialization.Encoding.X962,
                                       serialization.PublicFormat.UncompressedPoint)


def _flip(b, i):
    b = bytearray(b)
    b[i % len(b)] ^= 0x10
    return bytes(b)


def make_vectors():
    v = {"certs": [], "chains": [], "ecdsa": [], "rsa": [], "sign": [], "hostile": [],
         "sha": [], "keygen": 2}
    ref = {"certs": [], "chains": [], "ecdsa": [], "rsa": [], "sign": []}
    for kind, hash_name in (("p256", "sha256"), ("p384", "sha384"), ("rsa2048", "sha256"),
                            ("rsa3072", "sha512")):
        root = pb.issue("Root " + kind, key_kind=kind, org="CSO ü", ca=True, path_len=1,
                        hash_name=hash_name)
        leaf = pb.issue("CS001", root, serial=0x80 + len(v["certs"]), after_days=365 * 30)
        for cert, issuer in ((root, root), (leaf, root)):
            v["certs"].append({"der": cert.der.hex(), "issuer": issuer.der.hex()})
            ref["certs"].append((cert, issuer))

    def chain(leaf, inters, roots, expect, now=NOW):
        v["chains"].append({"leaf": leaf.der.hex(), "inters": [i.der.hex() for i in inters],
                            "roots": [r.der.hex() for r in roots], "now": now})
        ref["chains"].append(expect)
    root, inters, leaf = pb.chain(2, "rsa2048", "p384", "p256")
    chain(leaf, inters, [root], "ok")
    chain(leaf, inters[:1], [root], "no trusted issuer")
    chain(leaf, inters, [root], "expired", NOW + 40 * 86400)
    chain(leaf, inters, [root], "not yet valid", NOW - 2 * 86400)
    weak = pb.issue("Sub CA", root, ca=True, key_usage={"crl_sign": True})
    chain(pb.issue("CS001", weak), [weak], [root], "keyCertSign")
    plain = pb.issue("Sub CA", root, ca=False)
    chain(pb.issue("CS001", plain), [plain], [root], "not a CA")
    deep_root, deep_inters, deep_leaf = pb.chain(4)
    chain(deep_leaf, deep_inters, [deep_root], "too long")

    for kind, curve, hash_name in (("p256", "P-256", "sha256"), ("p384", "P-384", "sha384"),
                                   ("p256", "P-256", "sha384")):
        k, other = pb.key(kind), pb.key(kind)
        sig = k.sign(MSG, ec.ECDSA(pb.HASHES[hash_name]()))
        dig = hashlib.new(hash_name, MSG).digest()
        for pub, d, s, want in ((_point(k), dig, sig, True), (_point(other), dig, sig, False),
                                (_point(k), _flip(dig, 5), sig, False),
                                (_point(k), dig, _flip(sig, 12), False)):
            v["ecdsa"].append({"pub": pub.hex(), "digest": d.hex(), "sig": s.hex(),
                               "curve": curve})
            ref["ecdsa"].append(want)
        d = str(k.private_numbers().private_value)
        v["sign"].append({"d": d, "digest": dig.hex(), "curve": curve})
        ref["sign"].append((k, hash_name, None))
        v["sign"].append({"d": d, "digest": dig.hex(), "curve": curve, "extra": ""})
        ref["sign"].append((k, hash_name, k.sign(MSG, ec.ECDSA(pb.HASHES[hash_name](),
                                                               deterministic_signing=True))))
    for kind, hash_name in (("rsa2048", "sha256"), ("rsa3072", "sha384"), ("rsa4096", "sha512")):
        k, other = pb.key(kind), pb.key(kind)
        sig = k.sign(MSG, padding.PKCS1v15(), pb.HASHES[hash_name]())
        dig = hashlib.new(hash_name, MSG).digest()
        kb = k.public_key().public_bytes(pb.DER, serialization.PublicFormat.PKCS1)
        ob = other.public_key().public_bytes(pb.DER, serialization.PublicFormat.PKCS1)
        for key_bits, d, s, want in ((kb, dig, sig, True), (ob, dig, sig, False),
                                     (kb, _flip(dig, 1), sig, False),
                                     (kb, dig, _flip(sig, 100), False)):
            v["rsa"].append({"key_bits": key_bits.hex(), "hash": hash_name.upper(),
                             "digest": d.hex(), "sig": s.hex()})
            ref["rsa"].append(want)

    rnd = random.Random(12)
    der = leaf.der
    hostile = [der[:n] for n in range(0, len(der), 9)]
    for _ in range(150):
        b = bytearray(der)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        hostile.append(bytes(b))
    hostile += [b"\x30\x84\x7f\xff\xff\xff" + bytes(8), b"\x30\x83\xff\xff\xff",
                b"\x30\x80\x00\x00", b"\x30" * 40, b"\x30\x02\x30\x00" * 3, b""]
    nested = asn1.null()
    for _ in range(40):
        nested = asn1.seq(nested)
    hostile.append(nested)
    v["hostile"] = [b.hex() for b in hostile]
    v["sha"] = [bytes(range(256))[:n].hex() for n in (0, 3, 111, 112, 128, 200)]
    rnd = random.Random(7)
    p384 = 2 ** 384 - 2 ** 128 - 2 ** 96 + 2 ** 32 - 1
    v["pow"] = [(0, 5, 7), (3, 0, 7), (5, 3, 1), (10 ** 30, 2, 97), (12345, p384 - 2, p384)] + [
        (rnd.getrandbits(rnd.choice((8, 256, 4096))), rnd.choice((3, 65537, rnd.getrandbits(384))),
         rnd.getrandbits(rnd.choice((16, 384, 4096))) | 1) for _ in range(30)]
    v["pow"] = [("%x" % b, "%x" % e, "%x" % m) for b, e, m in v["pow"]]
    return v, ref


@pytest.fixture(scope="module", params=TARGETS)
def run(request, tmp_path_factory):
    if request.param == "micropython" and micropython_exe() is None:
        pytest.skip("micropython binary not found")
    v, ref = make_vectors()
    path = tmp_path_factory.mktemp("vectors") / "v.json"
    path.write_text(json.dumps(v))
    p = subprocess.run(interpreter(request.param) + ["tests/mp_crypto_check.py", ROOT, str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and lines, p.stdout[-2000:] + p.stderr[-3000:]
    return json.loads(lines[-1][7:]), v, ref


def test_parse_fields_match_cryptography(run):
    out, _, ref = run
    assert len(out["certs"]) == len(ref["certs"]) == 8
    for got, (node, issuer) in zip(out["certs"], ref["certs"]):
        c = node.cert
        assert got["subject"] == c.subject.public_bytes().hex()
        assert got["issuer"] == c.issuer.public_bytes().hex()
        assert got["serial"] == "%x" % c.serial_number
        assert got["not_before"] == pb.unix(c.not_valid_before_utc)
        assert got["not_after"] == pb.unix(c.not_valid_after_utc)
        assert got["tbs"] == c.tbs_certificate_bytes.hex() and got["sig"] == c.signature.hex()
        assert got["key_bits"] == pb.key_bits(c).hex()
        assert got["spki"] == c.public_key().public_bytes(
            pb.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()
        is_root = node is issuer
        assert got["ca"] is is_root and got["path_len"] == (1 if is_root else None)
        assert got["key_usage"] == (96 if is_root else 1)
        assert got["cn"] == c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert got["org"] == ("CSO ü" if is_root else None)
        assert got["signed_by_issuer"] == "ok"
    assert [g["curve"] for g in out["certs"][::2]] == ["P-256", "P-384", None, None]
    assert [g["sig_alg"] for g in out["certs"][::2]] == ["ecdsa-sha256", "ecdsa-sha384",
                                                          "rsa-sha256", "rsa-sha512"]


def test_hash_data_matches_cryptography_ocsp_certid(run):
    out, _, ref = run
    for got, (node, issuer) in zip(out["certs"], ref["certs"]):
        assert got["hash_data"] == [pb.ocsp_hash_data(node.cert, issuer.cert, a)
                                    for a in ("sha256", "sha384", "sha512")]


def test_chain_outcomes(run):
    out, _, ref = run
    for got, want in zip(out["chains"], ref["chains"]):
        if want == "ok":
            assert got == "ok"
        else:
            assert got.startswith("Invalid: ") and want in got, (got, want)


def test_ecdsa_and_rsa_verify(run):
    out, _, ref = run
    assert out["ecdsa"] == ref["ecdsa"] and True in out["ecdsa"] and False in out["ecdsa"]
    assert out["rsa"] == ref["rsa"] and True in out["rsa"] and False in out["rsa"]


def test_ecdsa_sign_verified_by_cryptography(run):
    out, _, ref = run
    assert len(out["sign"]) == len(ref["sign"]) == 6
    for sig, (k, hash_name, deterministic) in zip(out["sign"], ref["sign"]):
        if deterministic is not None:       # RFC 6979 without the hedge
            assert sig == deterministic.hex()
        k.public_key().verify(bytes.fromhex(sig), MSG, ec.ECDSA(pb.HASHES[hash_name]()))
        with pytest.raises(InvalidSignature):
            k.public_key().verify(bytes.fromhex(sig), MSG + b"!",
                                  ec.ECDSA(pb.HASHES[hash_name]()))


def test_p256_keygen_matches_cryptography(run):
    out, _, _ = run
    assert len(out["keygen"]) == 2 and out["keygen"][0][0] != out["keygen"][1][0]
    for d, pub, spki, key_der in out["keygen"]:
        k = ec.derive_private_key(int(d), ec.SECP256R1())
        assert _point(k).hex() == pub
        assert k.public_key().public_bytes(
            pb.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex() == spki
        loaded = serialization.load_der_private_key(bytes.fromhex(key_der), None)
        assert loaded.private_numbers().private_value == int(d)


def test_hostile_input_only_invalid(run):
    out, v, _ = run
    assert len(out["hostile"]) == len(v["hostile"])
    assert all(r in ("Invalid", "ok") for r in out["hostile"]), \
        [r for r in out["hostile"] if r not in ("Invalid", "ok")][:5]
    # every truncation and every crafted blob is refused
    n_trunc = len(range(0, len(bytes.fromhex(v["chains"][0]["leaf"])), 9))
    assert set(out["hostile"][:n_trunc]) == {"Invalid"}
    assert set(out["hostile"][-7:]) == {"Invalid"}


def test_pure_sha384_sha512(run):
    out, v, _ = run
    for (h384, h512), data in zip(out["sha"], v["sha"]):
        assert h384 == hashlib.sha384(bytes.fromhex(data)).hexdigest()
        assert h512 == hashlib.sha512(bytes.fromhex(data)).hexdigest()


def test_pow_mod_matches_pow(run):
    """compat.pow_mod (one bignum step per bytecode under MicroPython, so the GIL is not held
    for a whole exponentiation) gives pow()'s answers, edge cases included."""
    out, v, _ = run
    assert out["pow"] == ["%x" % pow(int(b, 16), int(e, 16), int(m, 16)) for b, e, m in v["pow"]]
