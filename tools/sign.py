"""`python -m tools sign`: build a signed firmware bundle for UpdateFirmware (OCPP 2.0.1 L01).

    python -m tools sign --key KEY.pem --cert SIGNING.pem --version 2.0.0 -o fw-2.0.0.pyfw SRC...
    python -m tools sign --new-pki DIR        (a test manufacturer root, signing cert and key)

SRC is a directory (every file under it, named by its path relative to SRC) or a file (named
by its base name); --name NAME=PATH adds one file under an explicit name. --esp32-image FILE
makes an "esp32-image" bundle (one application image for the ESP32's OTA partition) instead.
The key is a PEM private key, RSA (2048-4096 bits; signed with RSA-PSS, SHA-256, MGF1-SHA-256,
32-byte salt, or PKCS#1 v1.5 with --pkcs1v15) or EC P-256/P-384 (ECDSA, SHA-256, DER); the
certificate must hold its public key and be issued by the ManufacturerRootCertificate the
station has installed (InstallCertificate).

Writes the bundle and BUNDLE.sig (the base64 signature) and prints one JSON object: bundle
path, size, sha256, version, signature, signingCertificate (path), and the `firmware` object
of an UpdateFirmwareRequest (location from --location, default the bundle path).
Bundle format (firmware/fw_bundle.py): b"PYFW1 " + manifest JSON + b"\\n", then the files'
bytes in manifest order; manifest {"version", "kind", "files": [[name, size, sha256], ...]}.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import sys

MAGIC = b"PYFW1 "


# `tools build` artefacts that are not code for a slot: the ROMFS image (written to its own
# partition by `tools deploy --romfs`) and the freezing manifest
NOT_BUNDLED = ("romfs.img", "manifest.py")


def collect(sources, named=()):
    """[(bundle name, path)] of the files to bundle, in a stable order."""
    out = []
    for src in sources:
        if os.path.isdir(src):
            for root, dirs, files in os.walk(src):
                dirs.sort()
                for f in sorted(files):
                    if root == src and f in NOT_BUNDLED:
                        continue
                    p = os.path.join(root, f)
                    out.append((os.path.relpath(p, src).replace(os.sep, "/"), p))
        elif os.path.isfile(src):
            out.append((os.path.basename(src), src))
        else:
            raise SystemExit("tools sign: %s: no such file or directory" % src)
    for spec in named:
        name, sep, path = spec.partition("=")
        if not sep or not os.path.isfile(path):
            raise SystemExit("tools sign: --name wants NAME=PATH of a file, got %r" % spec)
        out.append((name, path))
    names = [n for n, _ in out]
    for n in names:
        if names.count(n) > 1:
            raise SystemExit("tools sign: %s appears twice" % n)
    return out


def manifest(files, version, kind="app"):
    entries = []
    for name, path in files:
        with open(path, "rb") as f:
            data = f.read()
        entries.append([name, len(data), hashlib.sha256(data).hexdigest()])
    return {"version": version, "kind": kind, "files": entries}


def refuse_what_the_station_refuses(files, version):
    """The station's own limits (firmware/fw_bundle.py), checked here: a bundle past them
    would be signed and served, and only fail on the station after its download."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from firmware import fw_bundle as fb
    bad = [n for n, _ in files if not fb.safe_name(n)]
    if bad:
        raise SystemExit("tools sign: names the station refuses (letters, digits, . _ - /, at "
                         "most %d characters, no manifest.json): %s" % (fb.MAX_NAME, ", ".join(bad[:5])))
    if len(files) > fb.MAX_FILES:
        raise SystemExit("tools sign: %d files, the station takes at most %d" % (len(files), fb.MAX_FILES))
    if len(version) > fb.MAX_VERSION:
        raise SystemExit("tools sign: --version is at most %d characters (BootNotification)"
                         % fb.MAX_VERSION)
    return fb.MAX_MANIFEST


def write_bundle(out, files, version, kind="app"):
    """Write the bundle to `out`; returns its manifest."""
    m = manifest(files, version, kind)
    line = json.dumps(m, separators=(",", ":")).encode()
    limit = refuse_what_the_station_refuses(files, version)
    if len(line) > limit:
        raise SystemExit("tools sign: the manifest is %d bytes, the station reads at most %d"
                         % (len(line), limit))
    with open(out, "wb") as f:
        f.write(MAGIC + line + b"\n")
        for _, path in files:
            with open(path, "rb") as src:
                f.write(src.read())
    return m


def load_key(path, password=None):
    from cryptography.hazmat.primitives import serialization
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(
            f.read(), password.encode() if password else None)


def sign_bytes(key, data, pkcs1v15=False):
    """The signature of `data` (SHA-256) by a cryptography private key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    if isinstance(key, rsa.RSAPrivateKey):
        pad = padding.PKCS1v15() if pkcs1v15 else padding.PSS(
            mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return key.sign(data, pad, hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise SystemExit("tools sign: EC keys must be P-256 or P-384, not %s" % key.curve.name)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise SystemExit("tools sign: the key must be RSA or EC")


def sign_file(key, path, pkcs1v15=False):
    with open(path, "rb") as f:
        return base64.b64encode(sign_bytes(key, f.read(), pkcs1v15)).decode()


def check_pair(key, cert_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
        raise SystemExit("tools sign: %s does not hold the public key of the signing key" % cert_path)
    return cert


def new_pki(directory, kind="ec", days=365):
    """A test manufacturer root and a firmware signing certificate issued by it, with its
    key: root.pem, signing.pem, signing.key in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def key():
        if kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Manufacturer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    rk, sk = key(), key()
    root = (x509.CertificateBuilder().subject_name(name("Test Manufacturer Root"))
            .issuer_name(name("Test Manufacturer Root")).public_key(rk.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(rk, hashes.SHA256()))
    signing = (x509.CertificateBuilder().subject_name(name("Test Firmware Signing"))
               .issuer_name(root.subject).public_key(sk.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                            False, False), critical=True)
               .sign(rk, hashes.SHA256()))
    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = {}
    for fname, data in (("root.pem", root.public_bytes(pem)),
                        ("signing.pem", signing.public_bytes(pem)),
                        ("signing.key", sk.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))):
        paths[fname] = os.path.join(directory, fname)
        with open(paths[fname], "wb") as f:
            f.write(data)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools sign", description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="*", help="directories or files to put in the bundle")
    ap.add_argument("--key", help="PEM private key (RSA or EC P-256/P-384)")
    ap.add_argument("--password", help="the key's password, if it has one")
    ap.add_argument("--cert", help="PEM firmware signing certificate of that key")
    ap.add_argument("--version", help="the bundle's firmware version (BootNotification firmwareVersion)")
    ap.add_argument("-o", "--out", help="bundle file to write")
    ap.add_argument("--name", action="append", default=[], metavar="NAME=PATH",
                    help="add one file under an explicit bundle name")
    ap.add_argument("--esp32-image", metavar="FILE", help="bundle one ESP32 application image")
    ap.add_argument("--pkcs1v15", action="store_true", help="RSA: PKCS#1 v1.5 instead of PSS")
    ap.add_argument("--location", help="the URL the station will download the bundle from")
    ap.add_argument("--new-pki", metavar="DIR", help="write a test manufacturer PKI and exit")
    ap.add_argument("--rsa", action="store_true", help="--new-pki: RSA-2048 keys instead of P-256")
    a = ap.parse_args(argv)
    if a.new_pki:
        print(json.dumps(new_pki(a.new_pki, "rsa" if a.rsa else "ec"), indent=1))
        return 0
    missing = [o for o in ("key", "cert", "version", "out") if not getattr(a, o)]
    if missing:
        ap.error("missing --" + ", --".join(missing))
    if a.esp32_image:
        files, kind = [(os.path.basename(a.esp32_image), a.esp32_image)], "esp32-image"
    else:
        files, kind = collect(a.sources, a.name), "app"
    if not files:
        ap.error("nothing to bundle: give directories, files, --name or --esp32-image")
    refuse_what_the_station_refuses(files, a.version)
    try:
        key = load_key(a.key, a.password)
        check_pair(key, a.cert)
    except (OSError, ValueError, TypeError) as e:   # a missing file, not PEM, a bad password
        raise SystemExit("tools sign: cannot use --key %s / --cert %s: %s" % (a.key, a.cert, e))
    m = write_bundle(a.out, files, a.version, kind)
    sig = sign_file(key, a.out, a.pkcs1v15)
    with open(a.out + ".sig", "w") as f:
        f.write(sig + "\n")
    with open(a.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(a.cert) as f:
        cert_pem = f.read()
    print(json.dumps({
        "bundle": a.out, "size": os.path.getsize(a.out), "sha256": digest,
        "version": a.version, "kind": kind, "files": len(m["files"]),
        "signature": sig, "signingCertificate": os.path.abspath(a.cert),
        "firmware": {"location": a.location or os.path.abspath(a.out),
                     "retrieveDateTime": datetime.datetime.now(datetime.timezone.utc)
                     .strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "signingCertificate": cert_pem, "signature": sig},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
