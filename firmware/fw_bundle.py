# Firmware bundles (OCPP 2.0.1 L01/L02): the signed file an UpdateFirmwareRequest points at,
# its signature check, and its installation into an inactive slot of the data directory.
# Imported by firmware.firmware_update only while it verifies or installs, then dropped.
#
# Bundle format "PYFW1" (what `python -m tools sign` builds):
#   line 1:  b"PYFW1 " + manifest JSON + b"\n", at most MAX_MANIFEST bytes, where the
#            manifest is {"version": "2.0.0", "kind": "app" | "esp32-image",
#                         "files": [[name, size, sha256 hex], ...]}
#   then:    the files' bytes, concatenated in manifest order, nothing after the last one.
# The signature (UpdateFirmwareRequest firmware.signature) covers the whole bundle file,
# SHA-256 (L01.FR.04): RSA-PSS or RSA PKCS#1 v1.5 for an RSA signing certificate, ECDSA
# (DER signature) for an EC P-256/P-384 one.
#
# "app" bundles are unpacked into a slot directory (fw_a / fw_b) and every file's size and
# hash are checked again from flash before the slot pointer may name it. "esp32-image"
# bundles carry one application image that the board's OTA partition takes (board/ota.py).
import binascii
import hashlib
import json
import os

from firmware import compat
from firmware.storage import fs, sync

MAGIC = b"PYFW1 "
MAX_MANIFEST = 16384
MAX_VERSION = 50  # BootNotificationRequest chargingStation.firmwareVersion maxLength
MAX_FILES = 256
MAX_NAME = 128
CHUNK = 1024
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/"


class VerifyError(Exception):
    """The bundle is not what its manifest says (InstallVerificationFailed)."""


# ---------------------------------------------------------------- hashing and signature
async def file_sha256(path, start=0, length=None):
    """SHA-256 of `length` bytes of a file from `start` (to its end when None), read in
    CHUNK pieces with a yield between them."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            want = CHUNK if left is None else min(CHUNK, left)
            n = f.readinto(mv[:want])
            if not n:
                break
            h.update(mv[:n])
            if left is not None:
                left -= n
            await compat.sleep_ms(0)
        if left:
            raise VerifyError("file shorter than its manifest says")
    return h.digest()


def check_signing_cert(pem, roots_pem, now):
    """None when the PEM text holds one signing certificate issued directly by one of the
    PEM roots (no intermediates, L01 remark) and valid at `now`; else the reason."""
    from firmware import x509
    try:
        ders = x509.pem_blocks(pem)
        if len(ders) != 1:
            return "one certificate expected, got %d" % len(ders)
        leaf = x509.Cert(ders[0])
        roots = []
        for text in roots_pem:
            roots.extend(x509.pem_blocks(text))
        if not roots:
            return "no ManufacturerRootCertificate installed"
        x509.verify_chain(leaf, [], roots, now)
        if leaf.key_usage is not None and not leaf.key_usage & x509.KU_DIGITAL_SIGNATURE:
            return "signing certificate lacks digitalSignature"
        if leaf.key_alg == "ec" and leaf.curve is None:
            return "unsupported EC curve"
        if leaf.key_alg not in ("ec", "rsa"):
            return "unsupported key " + leaf.key_alg
    except x509.Invalid as e:
        return str(e)
    return None


def signature_ok(cert_pem, sig_b64, digest):
    """True when base64 `sig_b64` is a signature over the file whose SHA-256 is `digest`
    by the certificate's key."""
    from firmware import x509
    try:
        cert = x509.Cert(x509.pem_blocks(cert_pem)[0])
        sig = binascii.a2b_base64(sig_b64)
    except (x509.Invalid, ValueError):
        return False
    if cert.key_alg == "ec":
        from firmware import ecdsa
        return ecdsa.verify(cert.key_bits, digest, sig, cert.curve)
    if cert.key_alg == "rsa":
        from firmware import rsa
        return rsa.verify_pss(cert.key_bits, digest, sig) or \
            rsa.verify(cert.key_bits, "SHA256", digest, sig)
    return False


# ---------------------------------------------------------------- manifest
def read_manifest(path):
    """(manifest dict, offset of the first file's bytes); VerifyError when malformed."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            raise VerifyError("not a PYFW1 bundle")
        parts = []
        got = 0
        while True:
            b = f.read(512)
            if not b:
                raise VerifyError("manifest line not terminated")
            i = b.find(b"\n")
            if i >= 0:
                parts.append(b[:i])
                got += i
                break
            parts.append(b)
            got += len(b)
            if got > MAX_MANIFEST:
                raise VerifyError("manifest too large")
    try:
        m = json.loads(b"".join(parts))
    except ValueError:
        raise VerifyError("manifest is not JSON")
    if not isinstance(m, dict) or not isinstance(m.get("files"), list) or \
            not isinstance(m.get("version"), str) or not m["version"]:
        raise VerifyError("manifest lacks version or files")
    if len(m["version"]) > MAX_VERSION:
        # BootNotification's firmwareVersion takes 50: a longer one would make the new
        # bundle's boot a FormatViolation, never Accepted, and roll it back
        raise VerifyError("version longer than %d characters" % MAX_VERSION)
    if m.get("kind", "app") not in ("app", "esp32-image"):
        raise VerifyError("unknown bundle kind %r" % (m.get("kind"),))
    files = m["files"]
    if not files or len(files) > MAX_FILES:
        raise VerifyError("bad number of files")
    seen = []
    for e in files:
        if not isinstance(e, list) or len(e) != 3 or not isinstance(e[0], str) or \
                not isinstance(e[1], int) or e[1] < 0 or not isinstance(e[2], str) or \
                len(e[2]) != 64:
            raise VerifyError("bad manifest entry")
        if not safe_name(e[0]) or e[0] in seen:
            raise VerifyError("bad file name %r" % e[0][:40])
        seen.append(e[0])
    return m, len(MAGIC) + got + 1


def safe_name(name):
    if not name or len(name) > MAX_NAME or name[0] == "/" or name.endswith("/"):
        return False
    for c in name:
        if c not in _NAME_CHARS:
            return False
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return False
    return name != "manifest.json"


# ---------------------------------------------------------------- slots
def remove_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        if os.stat(p)[0] & 0x4000:
            remove_tree(p)
        else:
            fs.remove(p)
    os.rmdir(path)


async def unpack(bundle, slot_dir):
    """Unpack an "app" bundle into slot_dir (emptied first) and check every file again from
    flash. Returns the manifest. VerifyError: the bundle does not match its manifest
    (nothing usable is left in slot_dir); OSError: flash trouble."""
    m, off = read_manifest(bundle)
    total = off
    for e in m["files"]:
        total += e[1]
    if os.stat(bundle)[6] != total:
        raise VerifyError("bundle size %d, manifest says %d" % (os.stat(bundle)[6], total))
    if m.get("kind", "app") != "app":
        return m
    remove_tree(slot_dir)
    compat.makedirs(slot_dir)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(bundle, "rb") as src:
        src.seek(off)
        for name, size, _ in m["files"]:
            d = name.rpartition("/")[0]
            if d:
                compat.makedirs(slot_dir + "/" + d)
            with open(slot_dir + "/" + name, "wb") as out:
                left = size
                while left:
                    n = src.readinto(mv[:min(CHUNK, left)])
                    if not n:
                        raise VerifyError("bundle ends inside %s" % name)
                    out.write(mv[:n])
                    left -= n
                    await compat.sleep_ms(0)
                sync(out)
    await verify_slot(slot_dir, m)
    with open(slot_dir + "/manifest.json", "w") as f:
        f.write(json.dumps(m))
        sync(f)
    return m


async def verify_slot(slot_dir, m):
    for name, size, want in m["files"]:
        p = slot_dir + "/" + name
        try:
            if os.stat(p)[6] != size:
                raise VerifyError("%s: size differs from the manifest" % name)
            got = binascii.hexlify(await file_sha256(p)).decode()
        except OSError:
            raise VerifyError("%s: missing after unpacking" % name)
        if got != want.lower():
            raise VerifyError("%s: SHA-256 differs from the manifest" % name)


def slot_manifest(slot_dir):
    try:
        with open(slot_dir + "/manifest.json") as f:
            return json.loads(f.read(MAX_MANIFEST + 64))
    except (OSError, ValueError):
        return None
