# Authorization Cache (OCPP 2.0.1 C10-C12): the latest idTokenInfo the CSMS gave for every
# presented token, bounded to MAX entries, LRU eviction (non-Accepted entries first, C10.FR.07),
# expiry by cacheExpiryDateTime or AuthCacheCtrlr.LifeTime since last use (C10.FR.08/.13).
#
# Persistence: a snapshot document plus an append-only journal of changed entries, so a tap
# costs one short line on flash at most (nothing at all when the CSMS repeats what we knew).
# Snapshot and journal carry a generation number: a journal left behind by a power cut between
# "write snapshot" and "remove journal" is ignored instead of resurrecting cleared entries.
# Last-use times alone are only kept in RAM until the next snapshot (flush()); losing them to a
# power cut merely makes entries expire or be evicted a little earlier.
#
# The idToken helpers live here too: the authorization block (which owns the cache) and the
# transactions block both compare tokens, and this module is loaded with the former anyway.
import binascii
import hashlib

from firmware import compat, log

SNAP = "authcache.json"
JOURNAL = "authcache.jl"
MAX = 32  # about 100 B each on flash; AuthCacheCtrlr.Storage allows 4 KB

HEX_TYPES = ("ISO14443", "ISO15693")


def normalise(id_token):
    """A clean IdTokenType dict; RFID UIDs as upper-case hex."""
    t = id_token.get("type") or "ISO14443"
    s = id_token.get("idToken") or ""
    if t in HEX_TYPES:
        s = s.strip().upper()
    return {"idToken": s, "type": t}


def token_key(id_token):
    """Bounded cache/list key: truncated SHA-256 of "type:TOKEN" (C10.FR.12)."""
    text = "%s:%s" % (id_token.get("type") or "", (id_token.get("idToken") or "").upper())
    return binascii.hexlify(hashlib.sha256(text.encode()).digest()[:10]).decode()


def same_token(a, b):
    """Tokens compare case-insensitively (part 2 C 1.1)."""
    return bool(a and b) and a.get("type") == b.get("type") and \
        (a.get("idToken") or "").upper() == (b.get("idToken") or "").upper()


# Entry: [status, groupIdToken or None, evseId list or None, expiry unix s or 0, last used unix s]
ST, GRP, EVSE, EXP, USED = 0, 1, 2, 3, 4


def compact(info, now):
    exp = 0
    t = info.get("cacheExpiryDateTime")
    if isinstance(t, str):
        try:
            exp = int(compat.parse_iso8601(t))
        except ValueError:
            exp = 0
    return [info.get("status") or "Invalid", info.get("groupIdToken"), info.get("evseId"), exp,
            int(now)]


def expand(rec):
    info = {"status": rec[ST]}
    if rec[GRP]:
        info["groupIdToken"] = rec[GRP]
    if rec[EVSE]:
        info["evseId"] = rec[EVSE]
    if rec[EXP]:
        info["cacheExpiryDateTime"] = compat.iso8601(rec[EXP])
    return info


class AuthCache:
    def __init__(self, store, max_entries=MAX):
        self.store = store
        self.max = max_entries
        self.entries = {}
        self.gen = 0
        self.dirty = False      # last-use times newer than the snapshot
        self._jlines = 0
        self._load()

    def __len__(self):
        return len(self.entries)

    def storage_bytes(self):
        """Flash used by the cache (AuthCacheCtrlr.Storage)."""
        return self.store.size(SNAP) + self.store.size(JOURNAL)

    def _load(self):
        snap = self.store.load(SNAP, None)
        if isinstance(snap, dict):
            self.gen = snap.get("g") or 0
            e = snap.get("e")
            if isinstance(e, dict):
                self.entries = e
        for r in self.store.records(JOURNAL):
            self._jlines += 1
            if isinstance(r, list) and len(r) == 3 and r[0] == self.gen:
                if r[2] is None:
                    self.entries.pop(r[1], None)
                else:
                    self.entries[r[1]] = r[2]
        while len(self.entries) > self.max:
            self._evict()

    def lookup(self, key, lifetime, now=None):
        """The entry for `key` (None when absent or expired; expired ones are dropped)."""
        rec = self.entries.get(key)
        if rec is None:
            return None
        now = int(compat.now() if now is None else now)
        exp = rec[EXP] or rec[USED] + lifetime
        if now >= exp:
            del self.entries[key]
            self.dirty = True
            return None
        return rec

    def touch(self, key, now=None):
        rec = self.entries.get(key)
        if rec is not None:
            rec[USED] = int(compat.now() if now is None else now)
            self.dirty = True

    def put(self, key, info, now=None):
        now = compat.now() if now is None else now
        rec = compact(info, now)
        old = self.entries.get(key)
        if old is not None and old[:USED] == rec[:USED]:
            old[USED] = rec[USED]
            self.dirty = True
            return
        if old is None:
            while len(self.entries) >= self.max:
                self._evict()
        self.entries[key] = rec
        if self._jlines >= self.max:
            self.flush(force=True)
        else:
            self.store.append(JOURNAL, [self.gen, key, rec])
            self._jlines += 1

    def remove(self, key):
        """Drop one entry (N10: a customer's data), on flash before returning; False when
        there was none."""
        if self.entries.pop(key, None) is None:
            return False
        # a new snapshot, not a tombstone in the journal: the old snapshot still held the
        # customer's record (hashed key, status, last use), which a clear must not leave
        self.flush(force=True)
        return True

    def _evict(self):
        victim = None
        for k, r in self.entries.items():
            # (not Accepted first, then least recently used)
            rank = (r[ST] == "Accepted", r[USED])
            if victim is None or rank < victim[0]:
                victim = (rank, k)
        if victim is not None:
            del self.entries[victim[1]]

    def clear(self):
        self.entries = {}
        self.flush(force=True)

    def flush(self, force=False):
        """Write the snapshot under a new generation and drop the journal."""
        if not force and not self.dirty:
            return
        self.gen += 1
        self.store.save(SNAP, {"g": self.gen, "e": self.entries})
        self.store.remove(JOURNAL)
        self._jlines = 0
        self.dirty = False
        log.debug("auth", "cache snapshot: %d entries" % len(self.entries))
