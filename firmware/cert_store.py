# The installed CA certificates (OCPP 2.0.1 M03/M04/M05) in the data directory.
#
# The certificates block (loaded on demand) changes the store; the station reads the CSMS
# roots from it for every wss:// connection, and other blocks may too. API for them:
#   csms_roots_pem_path(data_dir) -> PEM bundle of the installed CSMSRootCertificates, or None
#   csms_fallback_pem_path(data_dir) -> PEM of the previous CSMS root kept as a fallback
#       (AdditionalRootCertificateCheck, M05.FR.12), or None
#   drop_fallback(data_dir) -> True when a fallback root was removed (M05.FR.13)
#   count(data_dir) -> number of installed certificates (SecurityCtrlr.CertificateEntries)
# `data_dir` may also be a firmware.storage.Store.
#
# Layout: one file per certificate, cert<N>.pem (PEM re-encoded from the parsed DER, so no
# text from the request lands on flash), and one index document, certs.json:
#   {"next": N, "gen": G, "gone": [N...], "certs": [[N, certificateType, [issuerNameHash,
#    issuerKeyHash, serialNumber] (SHA256, lower-case hex), fallback], ...]}
# Every change writes the certificate file first, then the index (atomically, storage.Store):
# a power cut leaves the old index and at worst an unreferenced cert<next>.pem, which the next
# install overwrites. A deleted certificate's file is removed after the index no longer names
# it; "gone" remembers it until then. The TLS bundles csms_root.pem / csms_root_old.pem are
# derived from the index: their first line "# gen G" names the index generation they were built
# from, so a bundle left stale by a power cut is rebuilt on its next read.
import binascii

from firmware.storage import Store, sync

INDEX = "certs.json"
CSMS = "CSMSRootCertificate"
CSMS_BUNDLE = "csms_root.pem"
CSMS_FALLBACK = "csms_root_old.pem"
MAX_CERT_BYTES = 6144  # one PEM file; InstallCertificateRequest.certificate is at most 5500


def _store(d):
    return d if hasattr(d, "path") else Store(d)


def cert_name(n):
    return "cert%d.pem" % n


def load(store):
    idx = store.load(INDEX)
    if not isinstance(idx, dict) or not isinstance(idx.get("certs"), list):
        idx = {"next": 1, "gen": 0, "gone": [], "certs": []}
    return idx


def count(data_dir):
    return len(load(_store(data_dir))["certs"])


def pem(der):
    """PEM text of a DER certificate, 64 characters a line."""
    out = ["-----BEGIN CERTIFICATE-----\n"]
    for i in range(0, len(der), 48):
        out.append(binascii.b2a_base64(der[i:i + 48]).decode())
    out.append("-----END CERTIFICATE-----\n")
    return "".join(out)


def write_file(store, name, text):
    """Atomically replace a text file of the data directory."""
    with open(store.path(name) + ".tmp", "w") as f:
        f.write(text)
        sync(f)
    store.commit_tmp(name)
    store.bytes_written += len(text)


def read_file(store, name):
    try:
        with open(store.path(name)) as f:
            return f.read(MAX_CERT_BYTES)
    except OSError:
        return None


def save(store, idx):
    """Write the index (a new generation), rebuild the TLS bundles, remove deleted files."""
    idx["gen"] = idx.get("gen", 0) + 1
    store.save(INDEX, idx)
    _bundles(store, idx)
    gone = idx.get("gone")
    if gone:
        for n in gone:
            store.remove(cert_name(n))
        idx["gone"] = []
        store.save(INDEX, idx)


def _entries(idx, fallback):
    return [e for e in idx["certs"] if e[1] == CSMS and bool(e[3]) == fallback]


def _bundles(store, idx):
    for name, fb in ((CSMS_BUNDLE, False), (CSMS_FALLBACK, True)):
        ents = _entries(idx, fb)
        if not ents:
            store.remove(name)
            continue
        parts = ["# gen %d\n" % idx["gen"]]
        for e in ents:
            t = read_file(store, cert_name(e[0]))
            if t:
                parts.append(t)
        write_file(store, name, "".join(parts))


def _bundle_path(data_dir, name, fallback):
    store = _store(data_dir)
    store.recover_tmp(INDEX)
    idx = load(store)
    if not _entries(idx, fallback):
        return None
    store.recover_tmp(name)
    first = None
    try:
        with open(store.path(name)) as f:
            first = f.readline()
    except OSError:
        pass
    if first != "# gen %d\n" % idx.get("gen", 0):
        _bundles(store, idx)
    return store.path(name)


def csms_roots_pem_path(data_dir):
    return _bundle_path(data_dir, CSMS_BUNDLE, False)


def csms_fallback_pem_path(data_dir):
    return _bundle_path(data_dir, CSMS_FALLBACK, True)


def drop_fallback(data_dir):
    store = _store(data_dir)
    idx = load(store)
    old = _entries(idx, True)
    if not old:
        return False
    idx["certs"] = [e for e in idx["certs"] if not (e[1] == CSMS and e[3])]
    idx.setdefault("gone", []).extend([e[0] for e in old])
    save(store, idx)
    return True

