# X.509 certificates: PEM unwrapping, the fields the station needs (RFC 5280), OCPP hash
# data, signature and chain checks. Every malformed input ends in Invalid(reason).
import binascii

from firmware import asn1
from firmware.asn1 import DerError, Reader

MAX_DER = 8192        # one certificate; OCPP caps a PEM certificate at 5500 characters
MAX_BLOCKS = 8        # certificates in one PEM text (a chain)
MAX_PATH = 5          # certificates in a verified path, leaf and root included

# keyUsage bits as RFC 5280 numbers them: bit n is (1 << n) of Cert.key_usage
KU_DIGITAL_SIGNATURE = 1 << 0
KU_KEY_CERT_SIGN = 1 << 5
KU_CRL_SIGN = 1 << 6

_o = asn1.oid_bytes
OID_CN = _o("2.5.4.3")
OID_O = _o("2.5.4.10")
OID_RSA = _o("1.2.840.113549.1.1.1")
OID_EC = _o("1.2.840.10045.2.1")
OID_P256 = _o("1.2.840.10045.3.1.7")
OID_P384 = _o("1.3.132.0.34")
OID_BASIC_CONSTRAINTS = _o("2.5.29.19")
OID_KEY_USAGE = _o("2.5.29.15")
# extensions a path check may ignore even when critical: the station does no name, policy
# or purpose checks of its own on these
_UNDERSTOOD = (_o("2.5.29.37"), _o("2.5.29.17"), _o("2.5.29.14"), _o("2.5.29.35"))
SIG_ALGS = {
    _o("1.2.840.113549.1.1.11"): "rsa-sha256",
    _o("1.2.840.113549.1.1.12"): "rsa-sha384",
    _o("1.2.840.113549.1.1.13"): "rsa-sha512",
    _o("1.2.840.10045.4.3.2"): "ecdsa-sha256",
    _o("1.2.840.10045.4.3.3"): "ecdsa-sha384",
    _o("1.2.840.10045.4.3.4"): "ecdsa-sha512",
}
CURVES = {OID_P256: "P-256", OID_P384: "P-384"}
del _o

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


class Invalid(ValueError):
    pass


def pem_blocks(text, label="CERTIFICATE", max_blocks=MAX_BLOCKS, max_der=MAX_DER):
    """DER of every `label` PEM block in text (str or bytes), in order. Other blocks and
    text between blocks are ignored; no block at all, an unterminated one, bad base64,
    more than max_blocks or one over max_der bytes raise Invalid."""
    if isinstance(text, str):
        text = text.encode()
    begin = b"-----BEGIN " + label.encode() + b"-----"
    end = b"-----END " + label.encode() + b"-----"
    out = []
    pos = 0
    while True:
        i = text.find(begin, pos)
        if i < 0:
            break
        i += len(begin)
        j = text.find(end, i)
        if j < 0:
            raise Invalid("unterminated PEM block")
        if len(out) >= max_blocks:
            raise Invalid("too many certificates")
        if j - i > (max_der + 2) // 3 * 4 * 2 + 64:
            raise Invalid("certificate too large")
        b64 = b"".join(text[i:j].split())
        if len(b64) > (max_der + 2) // 3 * 4 or len(b64) % 4 or not b64:
            raise Invalid("bad PEM body")
        for c in b64:
            if c not in _B64:
                raise Invalid("bad base64")
        try:
            der = binascii.a2b_base64(b64)
        except ValueError:
            raise Invalid("bad base64")
        try:
            _, _, e = asn1.header(der, 0, len(der))
        except DerError as err:
            raise Invalid("bad DER: %s" % err)
        if e != len(der) or len(der) > max_der:
            raise Invalid("bad DER length")
        out.append(der)
        pos = j + len(end)
    if not out:
        raise Invalid("no %s PEM block" % label)
    return out


def pem(der, label="CERTIFICATE"):
    """PEM text (str) of one DER block."""
    lines = ["-----BEGIN %s-----" % label]
    for i in range(0, len(der), 48):
        lines.append(binascii.b2a_base64(der[i:i + 48]).decode().strip())
    lines.append("-----END %s-----" % label)
    return "\n".join(lines) + "\n"


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _digits(b):
    n = 0
    for c in b:
        if c < 48 or c > 57:
            raise Invalid("bad time")
        n = n * 10 + c - 48
    return n


def _time(r):
    t, s, e = r.next()
    b = r.buf[s:e]
    if t == asn1.UTC_TIME and len(b) == 13:
        y = _digits(b[0:2])
        y += 1900 if y >= 50 else 2000
        b = b[2:]
    elif t == asn1.GENERALIZED_TIME and len(b) == 15:
        y = _digits(b[0:4])
        b = b[4:]
    else:
        raise Invalid("bad time")
    if b[10] != 0x5A:   # "Z"
        raise Invalid("bad time zone")
    mo, d, h, mi, sec = (_digits(b[k:k + 2]) for k in (0, 2, 4, 6, 8))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 60):
        raise Invalid("bad time")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec


def _text(t, b):
    if t == asn1.UTF8_STRING:
        return bytes(b).decode()
    if t == asn1.BMP_STRING:
        return "".join(chr(b[i] << 8 | b[i + 1]) for i in range(0, len(b) - 1, 2))
    return "".join(chr(c) for c in b)


def name_attrs(name_der):
    """[(oid content bytes, tag, value bytes)] of a DER Name, in order."""
    out = []
    rdns = Reader(name_der).enter()
    while rdns.more():
        rdn = rdns.enter(asn1.SET)
        while rdn.more():
            atv = rdn.enter()
            oid = atv.value(asn1.OID)
            t, s, e = atv.next()
            atv.done()
            out.append((oid, t, name_der[s:e]))
    return out


def _name_value(name_der, oid):
    for o, t, v in name_attrs(name_der):
        if o == oid:
            try:
                return _text(t, v)
            except (UnicodeError, ValueError):
                raise Invalid("bad name string")
    return None


class Cert:
    """A parsed certificate. key_usage uses RFC 5280 bit numbers (KU_KEY_CERT_SIGN is bit 5,
    value 32); None when the extension is absent. not_before/not_after are unix seconds."""

    def __init__(self, der):
        if not isinstance(der, (bytes, bytearray)) or len(der) > MAX_DER:
            raise Invalid("certificate too large")
        der = bytes(der)
        self.der = der
        try:
            self._parse(der)
        except Invalid:
            raise
        except ValueError as e:      # DerError, bad text, bad int
            raise Invalid("bad DER: %s" % e)

    def _parse(self, der):
        top = Reader(der)
        c = top.enter()
        top.done()
        p = c.pos
        tbs = c.enter()
        self._tbs = (p, c.pos)
        sig_alg = c.raw(asn1.SEQUENCE)
        s, e = c.bit_string()
        self.sig = der[s:e]
        c.done()

        self.version = 1
        if tbs.peek() == asn1.ctx(0):
            v = tbs.enter(asn1.ctx(0))
            self.version = v.unsigned(1) + 1
            v.done()
            if self.version > 3:
                raise Invalid("unknown version")
        self.serial = tbs.integer_bytes()
        if len(self.serial) > 21:
            raise Invalid("serial number too long")
        if tbs.raw(asn1.SEQUENCE) != sig_alg:
            raise Invalid("signature algorithm mismatch")
        a = Reader(sig_alg).enter()
        oid = a.value(asn1.OID)
        self.sig_alg = SIG_ALGS.get(oid) or asn1.oid_str(oid)
        if a.more():
            if self.sig_alg.startswith("ecdsa-"):
                raise Invalid("unexpected algorithm parameters")
            if self.sig_alg.startswith("rsa-"):
                a.next(asn1.NULL)
            else:       # an algorithm we cannot check (RSA-PSS, ...): parsed, refused later
                asn1.check_tree(sig_alg, a.pos, a.end, 2)
                a.pos = a.end
        a.done()
        self.issuer = tbs.raw(asn1.SEQUENCE)
        val = tbs.enter()
        self.not_before = _time(val)
        self.not_after = _time(val)
        val.done()
        self.subject = tbs.raw(asn1.SEQUENCE)
        name_attrs(self.issuer)
        name_attrs(self.subject)
        p = tbs.pos
        spki = tbs.enter()
        self.spki = der[p:tbs.pos]
        alg = spki.enter()
        oid = alg.value(asn1.OID)
        self.curve = None
        if oid == OID_RSA:
            self.key_alg = "rsa"
            if alg.more():
                alg.next(asn1.NULL)
        elif oid == OID_EC:
            self.key_alg = "ec"
            c_oid = alg.value(asn1.OID)
            self.curve = CURVES.get(c_oid)     # None: listed and stored, never verified
        else:
            self.key_alg = asn1.oid_str(oid)
            asn1.check_tree(der, alg.pos, alg.end, alg.depth + 1)
            alg.pos = alg.end
        alg.done()
        s, e = spki.bit_string()
        self.key_bits = der[s:e]
        spki.done()

        self.ca = False
        self.path_len = None
        self.key_usage = None
        self.unknown_critical = []
        for tag in (asn1.ctx(1, False), asn1.ctx(2, False)):   # unique identifiers
            tbs.optional(tag)
        if tbs.peek() == asn1.ctx(3):
            if self.version != 3:
                raise Invalid("extensions in a v1/v2 certificate")
            self._extensions(tbs.enter(asn1.ctx(3)).enter())
        tbs.done()

    def _extensions(self, exts):
        der = self.der
        seen = []
        while exts.more():
            x = exts.enter()
            oid = x.value(asn1.OID)
            critical = x.boolean() if x.peek() == asn1.BOOLEAN else False
            _, s, e = x.next(asn1.OCTET_STRING)
            x.done()
            if oid in seen:
                raise Invalid("duplicate extension")
            seen.append(oid)
            r = Reader(der, s, e, exts.depth + 1)
            if oid == OID_BASIC_CONSTRAINTS:
                b = r.enter()
                if b.peek() == asn1.BOOLEAN:
                    self.ca = b.boolean()
                if b.peek() == asn1.INTEGER:
                    self.path_len = b.unsigned(4)
                b.done()
            elif oid == OID_KEY_USAGE:
                _, bs, be = r.next(asn1.BIT_STRING)
                if be - bs < 1 or der[bs] > 7 or (be - bs == 1 and der[bs]):
                    raise Invalid("bad keyUsage")
                mask = 0
                for i in range((be - bs - 1) * 8 - der[bs]):
                    if der[bs + 1 + i // 8] & (0x80 >> (i % 8)):
                        mask |= 1 << i
                self.key_usage = mask
            else:
                asn1.check_tree(der, s, e, r.depth)
                r.pos = e
                if critical and oid not in _UNDERSTOOD:
                    self.unknown_critical.append(asn1.oid_str(oid))
            r.done()

    @property
    def tbs(self):
        # sliced when asked (a signature check): a kept Cert does not hold the bytes twice
        return self.der[self._tbs[0]:self._tbs[1]]

    def subject_cn(self):
        return _name_value(self.subject, OID_CN)

    def subject_org(self):
        return _name_value(self.subject, OID_O)

    def issuer_cn(self):
        return _name_value(self.issuer, OID_CN)

    def self_issued(self):
        return self.subject == self.issuer


def make_name(cn=None, org=None, country=None):
    """DER Name (one attribute per RDN, C, O, CN in that order) for a CSR subject; text as
    UTF8String, the country as PrintableString (RFC 5280 requires it)."""
    rdns = []
    for oid, text, enc in (("2.5.4.6", country, asn1.printable), ("2.5.4.10", org, asn1.utf8),
                           ("2.5.4.3", cn, asn1.utf8)):
        if text is not None:
            rdns.append(asn1.set_of(asn1.seq(asn1.oid(oid), enc(text))))
    return asn1.seq(*rdns)


def serial_hex(serial):
    """OCPP serialNumber: hex of the serial's INTEGER octets, lowercase, no "0x" and without
    leading zeroes (the spec's wording); serial 0 gives "0"."""
    h = binascii.hexlify(serial).decode().lstrip("0")
    return h or "0"


def hash_data(cert, issuer, alg="SHA256"):
    """OCPP CertificateHashDataType of `cert`. `issuer` is the issuing Cert (cert itself for
    a root) or the issuer's subjectPublicKey bit string payload. As in an OCSP CertID
    (RFC 6960): issuerNameHash hashes the DER issuer Name of cert, issuerKeyHash the
    issuer's public key BIT STRING value without tag, length and unused-bits octet."""
    from firmware import sha512
    name = alg.upper()
    if name not in ("SHA256", "SHA384", "SHA512"):
        raise Invalid("unsupported hash algorithm")
    key_bits = issuer.key_bits if isinstance(issuer, Cert) else issuer
    return {"hashAlgorithm": name,
            "issuerNameHash": binascii.hexlify(sha512.digest(name, cert.issuer)).decode(),
            "issuerKeyHash": binascii.hexlify(sha512.digest(name, key_bits)).decode(),
            "serialNumber": serial_hex(cert.serial)}


def verify_signed_by(cert, issuer):
    """True when issuer's key made cert's signature; raises Invalid(reason) otherwise."""
    from firmware import sha512
    alg = cert.sig_alg
    if alg.startswith("ecdsa-"):
        if issuer.key_alg != "ec" or issuer.curve is None:
            raise Invalid("issuer key is not EC on P-256/P-384")
        from firmware import ecdsa
        h = sha512.digest("SHA" + alg[-3:], cert.tbs)
        ok = ecdsa.verify(issuer.key_bits, h, cert.sig, issuer.curve)
    elif alg.startswith("rsa-"):
        if issuer.key_alg != "rsa":
            raise Invalid("issuer key is not RSA")
        from firmware import rsa
        name = "SHA" + alg[-3:]
        ok = rsa.verify(issuer.key_bits, name, sha512.digest(name, cert.tbs), cert.sig)
    else:
        raise Invalid("unsupported signature algorithm " + alg)
    if not ok:
        raise Invalid("bad signature")
    return True


def _as_cert(c):
    return c if isinstance(c, Cert) else Cert(c)


def _check_time(c, now):
    if now < c.not_before:
        raise Invalid("certificate not yet valid: %s" % (c.subject_cn() or "?"))
    if now > c.not_after:
        raise Invalid("certificate expired: %s" % (c.subject_cn() or "?"))
    if c.unknown_critical:
        raise Invalid("unsupported critical extension " + c.unknown_critical[0])


def _check_issuer(ca, below):
    """ca issues a path with `below` intermediate CAs between it and the leaf."""
    if not ca.ca:
        raise Invalid("issuer is not a CA: %s" % (ca.subject_cn() or "?"))
    if ca.key_usage is not None and not ca.key_usage & KU_KEY_CERT_SIGN:
        raise Invalid("issuer lacks keyCertSign: %s" % (ca.subject_cn() or "?"))
    if ca.path_len is not None and below > ca.path_len:
        raise Invalid("path length exceeded at %s" % (ca.subject_cn() or "?"))


def _signed(cert, issuer):
    try:
        return verify_signed_by(cert, issuer)
    except Invalid:
        return False


def verify_chain(leaf, intermediates, roots, now):
    """Check that leaf chains up to one of roots (Cert or DER each) through intermediates,
    at unix time now: issuer/subject match and signature at every step, every certificate
    in its validity period, issuers are CAs with keyCertSign (when keyUsage is present)
    and within their pathLen, at most MAX_PATH certificates. Raises Invalid(reason)."""
    leaf = _as_cert(leaf)
    inter = [_as_cert(c) for c in intermediates]
    roots = [_as_cert(c) for c in roots]
    path = [leaf]
    cur = leaf
    while True:
        _check_time(cur, now)
        for r in roots:
            if r.der == cur.der:
                return
        below = len(path) - 1
        for r in roots:
            if r.subject == cur.issuer and _signed(cur, r):
                _check_issuer(r, below)
                _check_time(r, now)
                return
        nxt = None
        for c in inter:
            if c.subject == cur.issuer and c not in path and _signed(cur, c):
                nxt = c
                break
        if nxt is None:
            raise Invalid("no trusted issuer for %s" % (cur.subject_cn() or "?"))
        if len(path) + 1 >= MAX_PATH:
            raise Invalid("chain too long")
        _check_issuer(nxt, below)
        path.append(nxt)
        cur = nxt
