# SHA-384 and SHA-512 (FIPS 180-4) in pure Python, for runtimes whose hashlib lacks them
# (MicroPython on most ports has only sha256). `new(name)` prefers the native hashlib.
# The round constants are not tabled: they are the first 64 bits of the fractional parts
# of the cube roots (K) and square roots (IVs) of the first primes, computed exactly with
# integer roots on first use.
import hashlib

_M = 0xFFFFFFFFFFFFFFFF
_K = None
_IV512 = None
_IV384 = None


def _iroot(n, k):
    """floor(n ** (1/k)) for a non-negative int."""
    if n < 2:
        return n
    x = 1 << ((len("%x" % n) * 4 + k - 1) // k)   # an upper bound
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            return x
        x = y


def _constants():
    # lists preallocated and filled in place: grown lists need contiguous blocks that a
    # small, fragmented heap may not have
    global _K, _IV512, _IV384
    k = [0] * 80
    iv = [0] * 16
    i = 0
    p = 2
    while i < 80:
        q = 2
        while q * q <= p and p % q:
            q += 1
        if q * q > p:
            k[i] = _iroot(p << 192, 3) & _M
            if i < 16:
                iv[i] = _iroot(p << 128, 2) & _M
            i += 1
        p += 1
    _K = k
    _IV512 = iv[:8]
    _IV384 = iv[8:]


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M


class SHA512:
    digest_size = 64
    block_size = 128

    def __init__(self, data=None, _size=64):
        if _K is None:
            _constants()
        self.digest_size = _size
        self._h = list(_IV512 if _size == 64 else _IV384)
        self._w = [0] * 80
        self._buf = b""
        self._n = 0
        if data:
            self.update(data)

    def update(self, data):
        data = bytes(data)
        self._n += len(data)
        buf = self._buf + data
        i = 0
        while i + 128 <= len(buf):
            self._block(buf[i:i + 128])
            i += 128
        self._buf = buf[i:]

    def _block(self, blk):
        w = self._w   # reused: a fresh 80-slot list per block fragments a small heap
        for t in range(16):
            w[t] = int.from_bytes(blk[8 * t:8 * t + 8], "big")
        for t in range(16, 80):
            x = w[t - 15]
            s0 = _rotr(x, 1) ^ _rotr(x, 8) ^ (x >> 7)
            x = w[t - 2]
            s1 = _rotr(x, 19) ^ _rotr(x, 61) ^ (x >> 6)
            w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
        a, b, c, d, e, f, g, h = self._h
        for t in range(80):
            t1 = (h + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41))
                  + ((e & f) ^ (~e & g)) + _K[t] + w[t]) & _M
            t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39))
                  + ((a & b) ^ (a & c) ^ (b & c))) & _M
            h = g
            g = f
            f = e
            e = (d + t1) & _M
            d = c
            c = b
            b = a
            a = (t1 + t2) & _M
        hh = self._h
        for i, v in enumerate((a, b, c, d, e, f, g, h)):
            hh[i] = (hh[i] + v) & _M

    def digest(self):
        h = self._h[:]
        buf = self._buf
        n = self._n
        pad = b"\x80" + b"\x00" * ((111 - len(buf)) % 128) + (n * 8).to_bytes(16, "big")
        self.update(pad)
        out = b"".join(x.to_bytes(8, "big") for x in self._h)[:self.digest_size]
        self._h = h
        self._buf = buf
        self._n = n
        return out


def sha512(data=None):
    return SHA512(data, 64)


def sha384(data=None):
    return SHA512(data, 48)


def new(name):
    """A hash object for "SHA256", "SHA384" or "SHA512" (spec spelling, any case)."""
    name = name.lower().replace("-", "")
    if name == "sha256":
        return hashlib.sha256()
    if name not in ("sha384", "sha512"):
        raise ValueError("unsupported hash " + name)
    native = getattr(hashlib, name, None)
    if native is not None:
        return native()
    return SHA512(None, 64 if name == "sha512" else 48)


def digest(name, data):
    h = new(name)
    h.update(data)
    return h.digest()
