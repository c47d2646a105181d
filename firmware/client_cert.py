# The charging station's own certificate and private key (security profile 3, A02/A03) in
# the data directory. Small on purpose: the station reads it for every wss:// connection;
# key generation, the CSR and checking a CertificateSigned live in firmware.station_cert.
#
# Files, by generation g (a number that only grows):
#   cs_key.<g>.pem   the EC private key (SEC 1 PEM). Written once, never read back by
#                    anything but the TLS context; never logged, printed or sent (A02.FR.05).
#   cs_cert.<g>.pem  the certificate chain the CSMS signed for that key (leaf first)
#   cs_csr.pem       the CSR of the pending key, resent by the A02.FR.17 timer
# and one index document, cs_cert.json, the only record of which generation is what:
#   {"next": g, "cur": g|None, "old": g|None, "pending": g|None, "asked": t, "from": t,
#    "until": t}
# cur = the newest certificate, old = the one it replaced (kept until cur has connected once,
# the fallback of A02.FR.10), pending = a key whose CSR waits for its certificate; from/until
# = cur's validity (unix seconds), asked = when pending's CSR was made: before "from" the
# station keeps using old (A02.FR.08),
# "until" drives the renewal a month ahead (A03.FR.02). New files
# are written (atomically) before the index names them and removed after it stops naming
# them, so a power cut leaves at worst an unnamed file, overwritten or removed later.
from firmware.storage import sync

INDEX = "cs_cert.json"
CSR = "cs_csr.pem"


def key_name(g):
    return "cs_key.%d.pem" % g


def cert_name(g):
    return "cs_cert.%d.pem" % g


def load(store):
    idx = store.load(INDEX)
    if not isinstance(idx, dict) or not isinstance(idx.get("next"), int):
        idx = {"next": 1, "cur": None, "old": None, "pending": None}
    return idx


def save(store, idx, drop=()):
    """Write the index, then remove the files of the generations in `drop`."""
    store.save(INDEX, idx)
    for g in drop:
        if g is not None and g not in (idx.get("cur"), idx.get("old"), idx.get("pending")):
            store.remove(key_name(g))
            store.remove(cert_name(g))


def write(store, name, data):
    """Atomically replace a file of the data directory (text or bytes)."""
    with open(store.path(name) + ".tmp", "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
        sync(f)
    store.commit_tmp(name)
    store.bytes_written += len(data)


def _pair(store, g):
    if g is None:
        return None
    c, k = store.path(cert_name(g)), store.path(key_name(g))
    if store.exists(cert_name(g)) and store.exists(key_name(g)):
        return c, k
    return None


def current(store):
    """(certfile, keyfile) of the newest certificate, or None."""
    return _pair(store, load(store).get("cur"))


def pick(store, now):
    """(generation, (certfile, keyfile), fallback pair) for a connection at unix time now:
    the newest certificate once it is valid, with the previous one as fallback; before that
    the previous one (A02.FR.08). (None, None, None) without any."""
    idx = load(store)
    cur, old = idx.get("cur"), idx.get("old")
    if cur is not None and (idx.get("from") or 0) > now:
        return old, _pair(store, old), None
    return cur, _pair(store, cur), _pair(store, old)


def installed(store):
    return current(store) is not None


def confirm(store, g):
    """Certificate g connected: when it is the newest, forget the previous one."""
    idx = load(store)
    old = idx.get("old")
    if old is None or g != idx.get("cur"):
        return False
    idx["old"] = None
    save(store, idx, (old,))
    return True


def revert(store):
    """The current certificate was refused where the previous one works: go back to it."""
    idx = load(store)
    bad = idx.get("cur")
    idx["cur"], idx["old"] = idx.get("old"), None
    idx["from"], idx["until"] = 0, None  # unknown for the old one: no renewal from it
    save(store, idx, (bad,))
