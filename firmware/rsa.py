# RSA PKCS#1 v1.5 signature verification (RFC 8017 8.2.2, EMSA-PKCS1-v1_5): the whole
# encoded message is rebuilt from the expected digest and compared byte for byte, so no
# part of the decrypted block is parsed (no room for the lax-padding forgeries).
from firmware import asn1, compat

MIN_BITS = 2048
MAX_BITS = 4096
_HASH_OIDS = {"SHA256": ("2.16.840.1.101.3.4.2.1", 32),
              "SHA384": ("2.16.840.1.101.3.4.2.2", 48),
              "SHA512": ("2.16.840.1.101.3.4.2.3", 64)}


def public_key(key_bits):
    """(n, e) of a DER RSAPublicKey (the certificate's subjectPublicKey payload);
    ValueError if malformed, outside 2048..4096 bits, or with an unusable exponent."""
    top = asn1.Reader(key_bits)
    k = top.enter()
    top.done()
    n = k.unsigned(MAX_BITS // 8)
    e = k.unsigned(4)
    k.done()
    bits = len("%x" % n) * 4     # rounded up to 4 bits: enough to bound the size
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError("unsupported RSA key size")
    if e < 3 or not e & 1 or not n & 1:
        raise ValueError("bad RSA key")
    return n, e


def digest_info(hash_name, digest):
    oid, size = _HASH_OIDS[hash_name.upper()]
    if len(digest) != size:
        raise ValueError("digest length does not match hash")
    return asn1.seq(asn1.seq(asn1.oid(oid), asn1.null()), asn1.octet_string(digest))


def verify(key_bits, hash_name, digest, sig):
    """True when `sig` is a PKCS#1 v1.5 signature of `digest` (made with hash_name:
    "SHA256" | "SHA384" | "SHA512") by the RSA key in key_bits; False for any bad input."""
    try:
        n, e = public_key(key_bits)
        t = digest_info(hash_name, digest)
    except (ValueError, KeyError):
        return False
    k = (len("%x" % n) + 1) // 2
    if len(sig) != k:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = compat.pow_mod(s, e, n).to_bytes(k, "big")
    return em == b"\x00\x01" + b"\xff" * (k - 3 - len(t)) + b"\x00" + t
