"""Test certificates made at test time (nothing secret is checked in)."""
import datetime


def make_ca(name, organization=None, days=30):
    """A self-signed EC root: (private key, certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attrs)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_pki(directory):
    """PEM files for TLS tests in `directory`; returns their paths by name:
    ca (CSMS root), other_ca (an unrelated root), bundle (both roots), cert (server certificate
    for localhost and 127.0.0.1 signed by ca, chain appended), key, wrong_name (a certificate
    from ca for another host name)."""
    import ipaddress
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    ca_key, ca = make_ca("Test CSMS Root", organization="Test CSO")
    _, other_ca = make_ca("Some Other Root")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)

    def leaf(host, sans):
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
    cert = leaf("localhost", [x509.DNSName("localhost"),
                              x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    wrong_name = leaf("csms.example", [x509.DNSName("csms.example")])
    pem = serialization.Encoding.PEM
    files = {
        "ca": ca.public_bytes(pem),
        "other_ca": other_ca.public_bytes(pem),
        "bundle": other_ca.public_bytes(pem) + ca.public_bytes(pem),
        "cert": cert.public_bytes(pem) + ca.public_bytes(pem),
        "wrong_name": wrong_name.public_bytes(pem),
        "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = os.path.join(str(directory), name + ".pem")
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


# ------------------------------------------------------------------ CA certificates (M05)
def new_key(kind="ec"):
    """An EC P-256 ("ec"), P-384 ("ec384"), RSA-2048 ("rsa") or RSA-4096 ("rsa4096") key."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537,
                                        key_size=4096 if kind == "rsa4096" else 2048)
    return ec.generate_private_key(ec.SECP384R1() if kind == "ec384" else ec.SECP256R1())


def make_cert(cn, key=None, issuer=None, issuer_key=None, ca=True, key_usage="ca",
              valid_from_days=-1, valid_days=30, sans=None, kind="ec"):
    """(key, certificate). Self-signed unless issuer (certificate) and issuer_key are given.
    key_usage: "ca" (keyCertSign, cRLSign), "leaf" (digitalSignature only) or None (absent).
    Validity: from now + valid_from_days for valid_days days (negative days: in the past)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = key or new_key(kind)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now + datetime.timedelta(days=valid_from_days)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer.subject if issuer is not None else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=valid_days)))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage == "ca":
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    elif key_usage == "leaf":
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def server_cert_files(directory, name, ca, ca_key):
    """cert and key PEM files for a TLS server on 127.0.0.1/localhost signed by ca."""
    import ipaddress
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key, cert = make_cert("localhost", issuer=ca, issuer_key=ca_key, ca=False, key_usage=None,
                          sans=[x509.DNSName("localhost"),
                                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    pem = serialization.Encoding.PEM
    paths = (os.path.join(str(directory), name + ".crt"), os.path.join(str(directory), name + ".key"))
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def pem_text(cert):
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def write_pem(path, *certs):
    with open(str(path), "w") as f:
        f.write("".join(pem_text(c) for c in certs))
    return str(path)


def expected_hash_data(cert, issuer, alg="SHA256"):
    """CertificateHashDataType computed here, independently of the firmware: hashlib over
    the DER issuer Name and over the issuer's subjectPublicKey BIT STRING content (the EC
    point, or the DER RSAPublicKey), serial in hex without leading zeroes."""
    import hashlib
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    pub = issuer.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        bits = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        bits = pub.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    h = getattr(hashlib, alg.lower())
    return {"hashAlgorithm": alg,
            "issuerNameHash": h(cert.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": h(bits).hexdigest(),
            "serialNumber": "%x" % cert.serial_number}
