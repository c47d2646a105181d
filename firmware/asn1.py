# DER: a bounded reader (offsets into one buffer, nothing copied until a caller asks for a
# value) and the small writer the CSR needs. Only definite lengths, low tag numbers and
# lengths below 16 MB are accepted: that covers every certificate a station will see, and
# anything else is rejected with DerError before any allocation depends on it.

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31

MAX_DEPTH = 12
MAX_LENGTH = 0xFFFFFF


class DerError(ValueError):
    pass


def ctx(n, constructed=True):
    """Tag byte of context-specific [n]."""
    return 0x80 | (0x20 if constructed else 0) | n


def header(buf, pos, end):
    """(tag, value start, value end) of the element at buf[pos:], which must fit before end."""
    if end > len(buf):
        end = len(buf)
    if pos + 2 > end:
        raise DerError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag number")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise DerError("indefinite length")
        if k > 3:
            raise DerError("length too large")
        if pos + k > end:
            raise DerError("truncated")
        if buf[pos] == 0:
            raise DerError("non-minimal length")
        n = 0
        for i in range(k):
            n = (n << 8) | buf[pos + i]
        pos += k
        if n < 0x80:
            raise DerError("non-minimal length")
    if n > end - pos:
        raise DerError("length beyond data")
    return tag, pos, pos + n


class Reader:
    """Walks the elements of buf[start:end] in order. `enter` opens a constructed element
    as a child reader one level deeper; the depth is bounded."""

    def __init__(self, buf, start=0, end=None, depth=0):
        if depth > MAX_DEPTH:
            raise DerError("nesting too deep")
        self.buf = buf
        self.pos = start
        self.end = len(buf) if end is None else end
        self.depth = depth

    def more(self):
        return self.pos < self.end

    def peek(self):
        """Tag of the next element, or None at the end."""
        return self.buf[self.pos] if self.pos < self.end else None

    def next(self, tag=None):
        """(tag, start, end) of the next element; DerError if absent or not `tag`."""
        t, s, e = header(self.buf, self.pos, self.end)
        if tag is not None and t != tag:
            raise DerError("expected tag %02x, got %02x" % (tag, t))
        self.pos = e
        return t, s, e

    def optional(self, tag):
        """(tag, start, end) of the next element if it has `tag`, else None."""
        if self.peek() != tag:
            return None
        return self.next(tag)

    def enter(self, tag=SEQUENCE):
        t, s, e = self.next(tag)
        if not t & 0x20:
            raise DerError("not constructed")
        return Reader(self.buf, s, e, self.depth + 1)

    def raw(self, tag=None):
        """The whole next element (header included) as bytes."""
        p = self.pos
        self.next(tag)
        return bytes(self.buf[p:self.pos])

    def value(self, tag=None):
        """The content octets of the next element as bytes."""
        _, s, e = self.next(tag)
        return bytes(self.buf[s:e])

    def integer_bytes(self):
        """Content octets of a minimally encoded INTEGER."""
        _, s, e = self.next(INTEGER)
        check_integer(self.buf, s, e)
        return bytes(self.buf[s:e])

    def unsigned(self, max_octets=1024):
        """A non-negative INTEGER as int (bounded size)."""
        _, s, e = self.next(INTEGER)
        check_integer(self.buf, s, e)
        if self.buf[s] & 0x80:
            raise DerError("negative integer")
        if e - s > max_octets + 1:
            raise DerError("integer too large")
        return int.from_bytes(bytes(self.buf[s:e]), "big")

    def boolean(self):
        _, s, e = self.next(BOOLEAN)
        if e - s != 1 or self.buf[s] not in (0, 0xFF):
            raise DerError("bad boolean")
        return self.buf[s] == 0xFF

    def bit_string(self):
        """(start, end) of the payload of a BIT STRING with no unused bits."""
        _, s, e = self.next(BIT_STRING)
        if e == s or self.buf[s] != 0:
            raise DerError("bit string with unused bits")
        return s + 1, e

    def done(self):
        if self.pos != self.end:
            raise DerError("trailing data")


def check_integer(buf, s, e):
    if e == s:
        raise DerError("empty integer")
    if e - s > 1 and ((buf[s] == 0 and not buf[s + 1] & 0x80)
                      or (buf[s] == 0xFF and buf[s + 1] & 0x80)):
        raise DerError("non-minimal integer")


def check_tree(buf, start=0, end=None, depth=0):
    """Walk every element of buf[start:end], constructed ones included, so that a blob kept
    unparsed (an unknown extension) is still proven well-formed and bounded in depth."""
    if depth > MAX_DEPTH:
        raise DerError("nesting too deep")
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        t, s, e = header(buf, pos, end)
        if t & 0x20:
            check_tree(buf, s, e, depth + 1)
        pos = e


# ---------------------------------------------------------------- writer

def length(n):
    if n < 0x80:
        return bytes((n,))
    out = b""
    while n:
        out = bytes((n & 0xFF,)) + out
        n >>= 8
    return bytes((0x80 | len(out),)) + out


def tlv(tag, content):
    return bytes((tag,)) + length(len(content)) + content


def seq(*parts):
    return tlv(SEQUENCE, b"".join(parts))


def set_of(*parts):
    # DER orders SET OF by encoding
    return tlv(SET, b"".join(sorted(parts)))


def integer(n):
    if n == 0:
        return tlv(INTEGER, b"\x00")
    if n < 0:
        raise ValueError("negative integer")
    k = 0
    m = n
    while m:
        k += 1
        m >>= 8
    b = n.to_bytes(k, "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return tlv(INTEGER, b)


def oid_bytes(dotted):
    """Content octets of an OBJECT IDENTIFIER given as "1.2.840..."."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2:
        raise ValueError("bad oid")
    vals = [arcs[0] * 40 + arcs[1]] + arcs[2:]
    out = b""
    for v in vals:
        chunk = bytes((v & 0x7F,))
        v >>= 7
        while v:
            chunk = bytes((0x80 | (v & 0x7F),)) + chunk
            v >>= 7
        out += chunk
    return out


def oid(dotted):
    return tlv(OID, oid_bytes(dotted))


def oid_str(content):
    """Dotted form of OID content octets (for messages and unknown algorithms)."""
    vals = []
    v = 0
    for b in content:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            vals.append(v)
            v = 0
    if not vals:
        return "?"
    first = vals[0]
    a = 2 if first >= 80 else first // 40
    return ".".join(str(x) for x in [a, first - 40 * a] + vals[1:])


def bit_string(payload, unused=0):
    return tlv(BIT_STRING, bytes((unused,)) + payload)


def octet_string(data):
    return tlv(OCTET_STRING, data)


def utf8(text):
    return tlv(UTF8_STRING, text.encode())


def printable(text):
    return tlv(PRINTABLE_STRING, text.encode())


def null():
    return b"\x05\x00"


def context(n, content, constructed=True):
    return tlv(ctx(n, constructed), content)
