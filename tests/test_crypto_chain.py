"""x509.verify_chain: path building to an installed root, validity against the station
clock, CA / keyCertSign / pathLen on issuers, bounded depth (RFC 5280 6.1, as A02/A03
CertificateSigned and M05 installation rely on it)."""
import pytest
from cryptography import x509 as cx

from firmware import x509
from tests import pki_build as pb

NOW = pb.unix(pb.NOW)


def _c(node):
    return x509.Cert(node.der)


def _verify(leaf, inters, roots, now=NOW):
    x509.verify_chain(_c(leaf), [_c(i) for i in inters], [_c(r) for r in roots], now)


@pytest.mark.parametrize("root_kind,inter_kind,leaf_kind", [
    ("p256", "p256", "p256"), ("rsa2048", "p256", "p256"), ("p384", "rsa2048", "p256"),
    ("rsa4096", "rsa3072", "rsa2048")])
def test_good_chain_any_key_mix(root_kind, inter_kind, leaf_kind):
    root, inters, leaf = pb.chain(1, root_kind, inter_kind, leaf_kind)
    _verify(leaf, inters, [root])
    # DER bytes work as well as parsed certificates, and intermediates in any order
    x509.verify_chain(leaf.der, [i.der for i in inters], [root.der], NOW)


def test_chain_of_three_intermediates_in_shuffled_order_and_extra_roots():
    root, inters, leaf = pb.chain(3)
    unrelated = pb.issue("Root CA", ca=True)      # same name, other key: tried, skipped
    _verify(leaf, [inters[1], inters[2], inters[0]], [unrelated, root])


def test_root_itself_and_leaf_directly_under_root():
    root = pb.issue("Root CA", ca=True)
    _verify(root, [], [root])
    leaf = pb.issue("CS001", root)
    _verify(leaf, [], [root])


def test_wrong_issuer_is_refused():
    root, inters, leaf = pb.chain(1)
    other, _, _ = pb.chain(1)
    with pytest.raises(x509.Invalid, match="no trusted issuer"):
        _verify(leaf, inters, [other])
    with pytest.raises(x509.Invalid, match="no trusted issuer"):
        _verify(leaf, [], [root])                   # intermediate missing


def test_forged_signature_with_matching_names_is_refused():
    root, inters, leaf = pb.chain(1)
    impostor = pb.issue("Sub CA 1", root, ca=True)  # same subject, its own key
    forged = pb.issue("CS001", impostor)
    with pytest.raises(x509.Invalid, match="no trusted issuer"):
        _verify(forged, inters, [root])


@pytest.mark.parametrize("who", ["leaf", "intermediate", "root"])
def test_expired_and_not_yet_valid(who):
    def build(before, after):
        kw = dict(before_days=before, after_days=after)
        root = pb.issue("Root CA", ca=True, **(kw if who == "root" else {}))
        inter = pb.issue("Sub CA", root, ca=True, **(kw if who == "intermediate" else {}))
        leaf = pb.issue("CS001", inter, **(kw if who == "leaf" else {}))
        return root, inter, leaf
    root, inter, leaf = build(-10, -1)
    with pytest.raises(x509.Invalid, match="expired"):
        _verify(leaf, [inter], [root])
    root, inter, leaf = build(1, 10)
    with pytest.raises(x509.Invalid, match="not yet valid"):
        _verify(leaf, [inter], [root])
    # the same chain is fine at a station clock inside every window
    _verify(leaf, [inter], [root], NOW + 2 * 86400)


def test_validity_bounds_are_inclusive():
    root = pb.issue("Root CA", ca=True)
    leaf = pb.issue("CS001", root, before_days=0, after_days=1)
    c = _c(leaf)
    _verify(leaf, [], [root], c.not_before)
    _verify(leaf, [], [root], c.not_after)
    with pytest.raises(x509.Invalid):
        _verify(leaf, [], [root], c.not_after + 1)
    with pytest.raises(x509.Invalid):
        _verify(leaf, [], [root], c.not_before - 1)


@pytest.mark.parametrize("ca", [False, None])
def test_non_ca_intermediate_is_refused(ca):
    root = pb.issue("Root CA", ca=True)
    inter = pb.issue("Sub CA", root, ca=ca, key_usage={"key_cert_sign": True})
    leaf = pb.issue("CS001", inter)
    with pytest.raises(x509.Invalid, match="not a CA"):
        _verify(leaf, [inter], [root])


def test_non_ca_root_is_refused():
    root = pb.issue("Root CA", ca=False, key_usage={"key_cert_sign": True})
    leaf = pb.issue("CS001", root)
    with pytest.raises(x509.Invalid, match="not a CA"):
        _verify(leaf, [], [root])


def test_missing_key_cert_sign_is_refused_absent_key_usage_is_not():
    root = pb.issue("Root CA", ca=True)
    inter = pb.issue("Sub CA", root, ca=True, key_usage={"crl_sign": True,
                                                         "digital_signature": True})
    leaf = pb.issue("CS001", inter)
    with pytest.raises(x509.Invalid, match="keyCertSign"):
        _verify(leaf, [inter], [root])
    inter = pb.issue("Sub CA", root, ca=True, key_usage=None)
    leaf = pb.issue("CS001", inter)
    _verify(leaf, [inter], [root])


def test_path_length_constraint():
    root = pb.issue("Root CA", ca=True, path_len=1)
    i1 = pb.issue("Sub CA 1", root, ca=True, path_len=0)
    i2 = pb.issue("Sub CA 2", i1, ca=True)
    _verify(pb.issue("CS001", i1), [i1], [root])
    with pytest.raises(x509.Invalid, match="path length"):
        _verify(pb.issue("CS001", i2), [i2, i1], [root])      # i1 allows none below it
    root0 = pb.issue("Root CA", ca=True, path_len=0)
    j1 = pb.issue("Sub CA 1", root0, ca=True)
    with pytest.raises(x509.Invalid, match="path length"):
        _verify(pb.issue("CS001", j1), [j1], [root0])
    _verify(pb.issue("CS001", root0), [], [root0])


def test_too_deep_is_refused():
    ok_root, ok_inters, ok_leaf = pb.chain(x509.MAX_PATH - 2)
    _verify(ok_leaf, ok_inters, [ok_root])
    root, inters, leaf = pb.chain(x509.MAX_PATH - 1)
    with pytest.raises(x509.Invalid, match="too long"):
        _verify(leaf, inters, [root])


def test_issuer_loop_terminates():
    # two CAs that sign each other's names: the path must not go round forever
    a_key, b_key = pb.key(), pb.key()
    a = pb.issue("A", ca=True, subject_key=a_key)
    b = pb.issue("B", a, ca=True, subject_key=b_key)
    a_by_b = pb.issue("A", b, ca=True, subject_key=a_key)
    leaf = pb.issue("CS001", b)
    root = pb.issue("Root CA", ca=True)
    with pytest.raises(x509.Invalid):
        _verify(leaf, [b, a_by_b], [root])


def test_unknown_critical_extension_is_refused():
    ext = cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    root = pb.issue("Root CA", ca=True)
    leaf = pb.issue("CS001", root, extensions=[(ext, True)])
    with pytest.raises(x509.Invalid, match="critical"):
        _verify(leaf, [], [root])
    leaf = pb.issue("CS001", root, extensions=[(ext, False)])
    _verify(leaf, [], [root])
