# ECDSA over NIST P-256 and P-384 (FIPS 186-4): verify, key generation and signing.
# Points are Jacobian (X, Y, Z) during arithmetic, Z == 0 is the point at infinity; both
# curves have a = -3. Pure Python big ints: correct, not constant-time. Signing uses a
# hedged RFC 6979 nonce (see sign); the private key never leaves the caller.
import os

from firmware import asn1, compat, sha512


class Curve:
    def __init__(self, name, p, n, b, gx, gy, oid):
        self.name = name
        self.p = p
        self.n = n
        self.b = b
        self.g = (gx, gy)
        self.size = (len("%x" % p) + 1) // 2
        self.oid = oid


P256 = Curve("P-256",
             0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
             0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
             0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
             0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
             "1.2.840.10045.3.1.7")
P384 = Curve("P-384",
             0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
             0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
             0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
             0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
             0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
             "1.3.132.0.34")
CURVES = {"P-256": P256, "P-384": P384}
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"


def get_curve(name):
    c = CURVES.get(name)
    if c is None:
        raise ValueError("unsupported curve %s" % name)
    return c


def _double(c, P):
    X, Y, Z = P
    if Z == 0 or Y == 0:
        return (1, 1, 0)
    p = c.p
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return (X3, Y3, Z3)


def _add_affine(c, P, q):
    """P (Jacobian) + q (affine (x, y))."""
    X1, Y1, Z1 = P
    if Z1 == 0:
        return (q[0], q[1], 1)
    p = c.p
    z1z1 = Z1 * Z1 % p
    H = (q[0] * z1z1 - X1) % p
    r = 2 * (q[1] * Z1 * z1z1 - Y1) % p
    if H == 0:
        return _double(c, P) if r == 0 else (1, 1, 0)
    HH = H * H % p
    I = 4 * HH % p
    J = H * I % p
    V = X1 * I % p
    X3 = (r * r - J - 2 * V) % p
    Y3 = (r * (V - X3) - 2 * Y1 * J) % p
    Z3 = ((Z1 + H) * (Z1 + H) - z1z1 - HH) % p
    return (X3, Y3, Z3)


def _affine(c, P):
    X, Y, Z = P
    if Z == 0:
        return None
    p = c.p
    zi = compat.pow_mod(Z, p - 2, p)
    zi2 = zi * zi % p
    return (X * zi2 % p, Y * zi2 * zi % p)


def _bits(k):
    return len("%x" % k) * 4


def _mul(c, k, q):
    """k * q (affine q); result affine or None."""
    R = (1, 1, 0)
    for i in range(_bits(k) - 1, -1, -1):
        R = _double(c, R)
        if (k >> i) & 1:
            R = _add_affine(c, R, q)
    return _affine(c, R)


def _mul2(c, u1, g, u2, q):
    """u1*g + u2*q by Shamir's trick (both affine); result affine or None."""
    gq = _affine(c, _add_affine(c, (g[0], g[1], 1), q))
    R = (1, 1, 0)
    for i in range(max(_bits(u1), _bits(u2)) - 1, -1, -1):
        R = _double(c, R)
        b = ((u1 >> i) & 1) | (((u2 >> i) & 1) << 1)
        if b == 1:
            R = _add_affine(c, R, g)
        elif b == 2:
            R = _add_affine(c, R, q)
        elif b == 3 and gq is not None:   # gq None: q == -g, adding g + q adds nothing
            R = _add_affine(c, R, gq)
    return _affine(c, R)


def on_curve(c, q):
    x, y = q
    p = c.p
    return 0 <= x < p and 0 <= y < p and (y * y - x * x * x + 3 * x - c.b) % p == 0


def decode_point(c, data):
    """Affine point from an uncompressed (04|X|Y) or compressed (02/03|X) encoding;
    ValueError unless it is on the curve."""
    s = c.size
    if len(data) == 1 + 2 * s and data[0] == 4:
        q = (int.from_bytes(data[1:1 + s], "big"), int.from_bytes(data[1 + s:], "big"))
    elif len(data) == 1 + s and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        p = c.p
        y = compat.pow_mod((x * x * x - 3 * x + c.b) % p, (p + 1) // 4, p)   # p = 3 mod 4
        if y & 1 != data[0] & 1:
            y = (p - y) % p
        q = (x, y)
    else:
        raise ValueError("bad point encoding")
    if not on_curve(c, q):
        raise ValueError("point not on curve")
    return q


def encode_point(c, q):
    return b"\x04" + q[0].to_bytes(c.size, "big") + q[1].to_bytes(c.size, "big")


def _digest_int(c, digest):
    e = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - _bits(c.n)
    return e >> excess if excess > 0 else e


def decode_sig(sig):
    """(r, s) of a DER Ecdsa-Sig-Value; asn1.DerError if malformed."""
    top = asn1.Reader(sig)
    rs = top.enter()
    top.done()
    r = rs.unsigned(66)
    s = rs.unsigned(66)
    rs.done()
    return r, s


def verify(pub, digest, sig, curve="P-256"):
    """True when DER signature `sig` over `digest` (the message hash, truncated to the
    curve order as FIPS 186-4 says) was made by public key `pub` (point bytes, e.g. the
    certificate's subjectPublicKey). Any malformed input gives False."""
    try:
        c = get_curve(curve)
        q = decode_point(c, pub)
        r, s = decode_sig(sig)
    except ValueError:
        return False
    n = c.n
    if not (0 < r < n and 0 < s < n):
        return False
    w = compat.pow_mod(s, n - 2, n)
    e = _digest_int(c, digest)
    R = _mul2(c, e * w % n, c.g, r * w % n, q)
    return R is not None and R[0] % n == r


def _random_scalar(c):
    while True:
        k = int.from_bytes(os.urandom(c.size), "big")
        if 0 < k < c.n:
            return k


def public_key(d, curve="P-256"):
    c = get_curve(curve)
    if not 0 < d < c.n:
        raise ValueError("bad private key")
    return encode_point(c, _mul(c, d, c.g))


def generate(curve="P-256"):
    """(private scalar d, uncompressed public point bytes)."""
    c = get_curve(curve)
    d = _random_scalar(c)
    return d, encode_point(c, _mul(c, d, c.g))


def generate_p256():
    return generate("P-256")


def _hmac(name, key, msg):
    block = 64 if name == "SHA256" else 128
    if len(key) > block:
        key = sha512.digest(name, key)
    key = key + bytes(block - len(key))
    inner = sha512.digest(name, bytes(b ^ 0x36 for b in key) + msg)
    return sha512.digest(name, bytes(b ^ 0x5C for b in key) + inner)


def _nonce(c, d, digest, extra):
    """RFC 6979 3.2 nonce, HMAC over the hash the digest came from (told by its length);
    `extra` is the optional additional data k' of section 3.6."""
    name = {32: "SHA256", 48: "SHA384", 64: "SHA512"}.get(len(digest))
    if name is None:
        raise ValueError("digest must be SHA-256/384/512")
    n = c.n
    qlen = _bits(n)
    rlen = (qlen + 7) // 8
    seed = d.to_bytes(rlen, "big") + (_digest_int(c, digest) % n).to_bytes(rlen, "big") + extra
    v = b"\x01" * len(digest)
    k = bytes(len(digest))
    k = _hmac(name, k, v + b"\x00" + seed)
    v = _hmac(name, k, v)
    k = _hmac(name, k, v + b"\x01" + seed)
    v = _hmac(name, k, v)
    while True:
        t = b""
        while len(t) < rlen:
            v = _hmac(name, k, v)
            t += v
        cand = int.from_bytes(t[:rlen], "big") >> (8 * rlen - qlen)
        if 0 < cand < n:
            return cand
        k = _hmac(name, k, v + b"\x00")
        v = _hmac(name, k, v)


def sign(d, digest, curve="P-256", extra=None):
    """DER ECDSA signature of `digest` (SHA-256/384/512 output) with private scalar d.
    The nonce is RFC 6979's, hedged with 32 bytes of os.urandom as its additional data
    (section 3.6): a weak RNG cannot repeat a nonce for two messages, a good one keeps
    signatures unpredictable. extra=b"" gives plain deterministic RFC 6979."""
    c = get_curve(curve)
    n = c.n
    if not 0 < d < n:
        raise ValueError("bad private key")
    e = _digest_int(c, digest)
    k = _nonce(c, d, digest, os.urandom(32) if extra is None else extra)
    while True:
        R = _mul(c, k, c.g)
        r = R[0] % n
        s = compat.pow_mod(k, n - 2, n) * (e + r * d) % n
        if r and s:
            return asn1.seq(asn1.integer(r), asn1.integer(s))
        k = _random_scalar(c)      # probability ~2**-256


def spki(pub, curve="P-256"):
    """DER SubjectPublicKeyInfo of an EC public point (for the CSR)."""
    c = get_curve(curve)
    return asn1.seq(asn1.seq(asn1.oid(OID_EC_PUBLIC_KEY), asn1.oid(c.oid)),
                    asn1.bit_string(pub))


def private_key_der(d, curve="P-256", pub=None):
    """DER SEC 1 ECPrivateKey (RFC 5915), what ssl load_cert_chain accepts as a key."""
    c = get_curve(curve)
    if pub is None:
        pub = public_key(d, curve)
    return asn1.seq(asn1.integer(1), asn1.octet_string(d.to_bytes(c.size, "big")),
                    asn1.context(0, asn1.oid(c.oid)), asn1.context(1, asn1.bit_string(pub)))
