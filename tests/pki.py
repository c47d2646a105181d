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
