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


def _mgf1_sha256(seed, length):
    import hashlib
    out = b""
    c = 0
    while len(out) < length:
        out += hashlib.sha256(seed + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:length]


def verify_pss(key_bits, digest, sig):
    """True when `sig` is an RSASSA-PSS signature (RFC 8017 8.1.2, EMSA-PSS with SHA-256 and
    MGF1-SHA-256, any salt length) of the SHA-256 `digest` by the key in key_bits; False for
    any bad input. The firmware signature of OCPP 2.0.1 L01.FR.04."""
    import hashlib
    try:
        n, e = public_key(key_bits)
    except ValueError:
        return False
    if len(digest) != 32:
        return False
    mod_bits = _bits(n)
    k = (mod_bits + 7) // 8
    if len(sig) != k:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    em = compat.pow_mod(s, e, n).to_bytes(k, "big")[k - em_len:]
    if len(em) < 32 + 2 or em[-1] != 0xBC:
        return False
    masked = em[:em_len - 33]
    hh = em[em_len - 33:em_len - 1]
    top = 8 * em_len - em_bits  # leftmost bits that must be zero
    if top and masked[0] >> (8 - top):
        return False
    mask = _mgf1_sha256(hh, len(masked))
    db = bytearray(len(masked))
    for i in range(len(masked)):
        db[i] = masked[i] ^ mask[i]
    if top:
        db[0] &= 0xFF >> top
    i = 0
    while i < len(db) and db[i] == 0:
        i += 1
    if i >= len(db) or db[i] != 1:
        return False
    salt = bytes(db[i + 1:])
    return hashlib.sha256(b"\x00" * 8 + digest + salt).digest() == hh


def _bits(n):
    h = "%x" % n
    first = int(h[0], 16)
    b = 0
    while first:
        b += 1
        first >>= 1
    return (len(h) - 1) * 4 + b
