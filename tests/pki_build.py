"""Certificates of every shape for the crypto-core tests, made at test time with
`cryptography` (RSA and EC keys, CA/non-CA, key usage, path lengths, validity windows)."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
_RSA_CACHE = {}


def key(kind="p256"):
    """A fresh private key: "p256", "p384" or "rsa2048"/"rsa3072"/"rsa4096" (RSA keys are
    cached per size, they are slow to make)."""
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    bits = int(kind[3:])
    if bits not in _RSA_CACHE:
        _RSA_CACHE[bits] = [rsa.generate_private_key(65537, bits) for _ in range(3)]
    pool = _RSA_CACHE[bits]
    pool.append(pool.pop(0))
    return pool[0]


def name(cn, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def unix(dt):
    return int(dt.timestamp())


class Node:
    """A key and its certificate."""

    def __init__(self, key, cert):
        self.key = key
        self.cert = cert

    @property
    def der(self):
        return self.cert.public_bytes(DER)

    @property
    def pem(self):
        return self.cert.public_bytes(PEM)


def issue(cn, issuer=None, key_kind="p256", org=None, ca=False, path_len=None,
          key_usage="default", hash_name="sha256", before_days=-1, after_days=30,
          serial=None, extensions=(), subject_key=None, now=NOW):
    """A certificate for `cn` signed by issuer (a Node; None: self-signed). key_usage:
    "default" (CAs keyCertSign+cRLSign, leaves digitalSignature), None (no extension) or a
    dict of KeyUsage arguments set True. ca=None leaves basicConstraints out."""
    k = subject_key or key(key_kind)
    subject = name(cn, org)
    signer = issuer.key if issuer else k
    iname = issuer.cert.subject if issuer else subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(iname)
         .public_key(k.public_key())
         .serial_number(serial if serial is not None else x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=before_days))
         .not_valid_after(now + datetime.timedelta(days=after_days)))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None),
                            critical=True)
    if key_usage == "default":
        key_usage = {"key_cert_sign": True, "crl_sign": True} if ca else \
            {"digital_signature": True}
    if key_usage is not None:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                     crl_sign=False, encipher_only=False, decipher_only=False)
        flags.update(key_usage)
        b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return Node(k, b.sign(signer, HASHES[hash_name]()))


def chain(depth=1, root_kind="p256", inter_kind="p256", leaf_kind="p256", **leaf_kw):
    """root, [intermediates from the root down], leaf."""
    root = issue("Root CA", key_kind=root_kind, org="Test CSO", ca=True)
    inters = []
    up = root
    for i in range(depth):
        up = issue("Sub CA %d" % (i + 1), up, key_kind=inter_kind, ca=True)
        inters.append(up)
    leaf = issue("CS001", up, key_kind=leaf_kind, org="Test CSO", **leaf_kw)
    return root, inters, leaf


def key_bits(cert):
    """subjectPublicKey payload, as cryptography sees it."""
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return pub.public_bytes(DER, serialization.PublicFormat.PKCS1)
    return pub.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def ocsp_hash_data(cert, issuer, hash_name="sha256"):
    """CertificateHashData computed by cryptography's OCSP request builder (an independent
    CertID implementation, RFC 6960)."""
    from cryptography.x509 import ocsp
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASHES[hash_name]()).build()
    return {"hashAlgorithm": hash_name.upper(), "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(),
            "serialNumber": "%x" % req.serial_number}
