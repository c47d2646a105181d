"""Hostile input to the crypto core: truncated DER, huge lengths, wrong tags, deep nesting,
random mutations of real certificates. Only asn1.DerError / x509.Invalid may escape, and
no input makes a big allocation (CPython, tracemalloc; hypothesis)."""
import tracemalloc

import pytest
from cryptography import x509 as cx

from firmware import asn1, ecdsa, rsa, x509
from tests import pki_build as pb

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

NOW = pb.unix(pb.NOW)
_PKI = {}
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def pki():
    """One EC and one RSA chain, made once per test session."""
    if not _PKI:
        for kind in ("p256", "rsa2048"):
            root = pb.issue("Root CA", key_kind=kind, ca=True)
            leaf = pb.issue("CS001", root, org="Org")
            _PKI[kind] = (x509.Cert(root.der), leaf.der, root, leaf.pem)
    return _PKI


def exercise(der, root=None):
    """Everything a caller does with an untrusted certificate; returns the Cert or None
    when rejected. Only x509.Invalid is an acceptable rejection."""
    try:
        c = x509.Cert(der)
    except x509.Invalid:
        return None
    for f in (c.subject_cn, c.subject_org, c.issuer_cn):
        try:
            v = f()
            assert v is None or isinstance(v, str)
        except x509.Invalid:
            pass
    x509.hash_data(c, c, "SHA256")
    if root is not None:
        try:
            x509.verify_chain(c, [], [root], NOW)
        except x509.Invalid:
            pass
    return c


def tlv_offsets(der, start=0, end=None, depth=0):
    """Offsets of every element header in a DER blob."""
    end = len(der) if end is None else end
    out = []
    pos = start
    while pos < end:
        t, s, e = asn1.header(der, pos, end)
        out.append(pos)
        if t & 0x20 and depth < 8:
            out += tlv_offsets(der, s, e, depth + 1)
        pos = e
    return out


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_every_truncation_is_invalid(kind):
    root, leaf, _, _ = pki()[kind]
    assert exercise(leaf, root) is not None
    for n in range(len(leaf)):
        with pytest.raises(x509.Invalid):
            x509.Cert(leaf[:n])
    with pytest.raises(x509.Invalid):
        x509.Cert(leaf + b"\x00")


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_wrong_tag_at_every_element(kind):
    root, leaf, _, _ = pki()[kind]
    offsets = tlv_offsets(leaf)
    assert len(offsets) > 30
    for off in offsets:
        for tag in (0x00, 0x02, 0x04, 0x05, 0x1F, 0x30, 0x31, 0xA0, 0xA3, 0xFF):
            if leaf[off] == tag:
                continue
            exercise(leaf[:off] + bytes((tag,)) + leaf[off + 1:], root)


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_length_fields_rewritten_at_every_element(kind):
    root, leaf, _, _ = pki()[kind]
    for off in tlv_offsets(leaf):
        for ln in (b"\x00", b"\x7f", b"\x80", b"\x81\x05", b"\x84\x7f\xff\xff\xff",
                   b"\x83\xff\xff\xff", b"\x88" + b"\xff" * 8, b"\x82\x00\x10", b"\xff"):
            _, s, _ = asn1.header(leaf, off, len(leaf))
            exercise(leaf[:off + 1] + ln + leaf[s:], root)


HUGE = [b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 10,          # claims 2 GB
        b"\x30\x83\xff\xff\xff" + b"\x30" * 10,                # claims 16 MB
        b"\x30\x82\xff\xff" + b"\x02\x01\x01",
        b"\x30\x80\x02\x01\x01\x00\x00",                       # indefinite (BER)
        b"\x30\x89" + b"\xff" * 9,
        b"\x30\x81\x05\x02\x01\x01"]


@pytest.mark.parametrize("blob", HUGE)
def test_huge_and_indefinite_lengths_allocate_nothing(blob):
    tracemalloc.start()
    try:
        with pytest.raises(x509.Invalid):
            x509.Cert(blob)
        with pytest.raises(asn1.DerError):
            asn1.check_tree(blob)
        with pytest.raises(asn1.DerError):
            asn1.Reader(blob).enter().next()
        pem = x509.pem(blob)
        with pytest.raises(x509.Invalid):
            x509.pem_blocks(pem)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak


def test_deep_nesting_is_refused_without_recursion_error():
    deep = b""
    for _ in range(5000):
        deep = asn1.seq(deep)
    with pytest.raises(asn1.DerError, match="deep"):
        asn1.check_tree(deep)
    # inside a certificate, as an unknown extension
    ext = cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.99999.7"),
                                   _nested(asn1.MAX_DEPTH + 4))
    root = pb.issue("Root CA", ca=True, extensions=[(ext, False)])
    with pytest.raises(x509.Invalid, match="deep"):
        x509.Cert(root.der)
    ext = cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.99999.7"), _nested(3))
    x509.Cert(pb.issue("Root CA", ca=True, extensions=[(ext, False)]).der)


def _nested(n):
    b = asn1.null()
    for _ in range(n):
        b = asn1.seq(b)
    return b


def test_oversized_input_is_refused_before_parsing():
    with pytest.raises(x509.Invalid, match="too large"):
        x509.Cert(b"\x30\x82\x40\x00" + bytes(0x4000))
    with pytest.raises(x509.Invalid):
        x509.Cert("not bytes")


@FUZZ
@given(st.data())
def test_random_mutations_of_real_certificates(data):
    kind = data.draw(st.sampled_from(["p256", "rsa2048"]))
    root, leaf, _, _ = pki()[kind]
    b = bytearray(leaf)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        i = data.draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            b[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif len(b) > 1:
            del b[i:i + data.draw(st.integers(1, 8))]
    c = exercise(bytes(b), root)
    if c is not None and bytes(b) != leaf:
        # a mutation that still parses must not pass as signed by the root unless only
        # the unsigned outer parts changed (e.g. a bit flip the DER keeps equal)
        try:
            x509.verify_signed_by(c, root)
            assert c.tbs == x509.Cert(leaf).tbs and c.sig == x509.Cert(leaf).sig
        except x509.Invalid:
            pass


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_everywhere(blob):
    for fn in (x509.Cert, asn1.check_tree, lambda b: x509.name_attrs(b),
               lambda b: rsa.public_key(b), lambda b: ecdsa.decode_sig(b)):
        try:
            fn(blob)
        except (x509.Invalid, asn1.DerError):
            pass
        except ValueError as e:
            # rsa.public_key documents ValueError for well-formed but unusable keys
            assert fn is not x509.Cert and "RSA" in str(e), e
    assert ecdsa.verify(blob[:65], b"\x00" * 32, blob[65:]) in (False, True)
    assert rsa.verify(blob[:300], "SHA256", b"\x00" * 32, blob[300:]) is False


@FUZZ
@given(st.lists(st.sampled_from([b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----",
                                 b"\n", b"MII", b"AAAA", b"====", b"\x00", b"*", b" ",
                                 b"MAMCAQE=", b"-----BEGIN X-----"]), max_size=40))
def test_random_pem_text(parts):
    text = b"".join(parts)
    try:
        blocks = x509.pem_blocks(text)
    except x509.Invalid:
        return
    for der in blocks:
        exercise(der)


@FUZZ
@given(st.data())
def test_mutated_pem_of_real_certificate(data):
    _, _, root, leaf_pem = pki()["p256"]
    text = bytearray(root.pem if data.draw(st.booleans()) else leaf_pem)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.sampled_from(b"A/+=-\n \x00\xffQ"))
    try:
        blocks = x509.pem_blocks(bytes(text))
    except x509.Invalid:
        return
    for der in blocks:
        exercise(der)
