# Local Authorization List (OCPP 2.0.1 D01, D02, C13, C14) kept on flash, not in RAM.
#
# One journal file of lines:  ["<key>", {idTokenInfo}]  (add/update),  ["<key>", null]  (remove),
# {"v": N}  (commit: every line since the previous commit belongs to version N).
# A Full update rewrites the file (temp + rename); a Differential update appends its lines and
# the commit in one write, so a power cut leaves either the old or the new version: lines after
# the last commit are dropped at start-up. RAM holds only an index from a 28-bit hash of the
# key to the byte offset of the key's latest record; a lookup is one seek + readline.
import json

from firmware import log
from firmware import storage
from firmware.storage import sync

FILE = "authlist.jl"


def _h(key):
    return int(key[:7], 16)


class LocalList:
    def __init__(self, store):
        self.store = store
        self.path = store.path(FILE)
        self.version = 0
        self.count = 0
        self._index = {}   # hash -> offset, or a list of offsets when keys collide
        self._lines = 0
        self._size = 0
        self._load()

    # ---------------------------------------------------------------- reading
    def _read_at(self, f, off):
        f.seek(off)
        return json.loads(f.readline())

    def _offsets(self, h):
        v = self._index.get(h)
        if v is None:
            return ()
        return v if isinstance(v, list) else (v,)

    def _find(self, f, key):
        for off in self._offsets(_h(key)):
            if self._read_at(f, off)[0] == key:
                return off
        return None

    def lookup(self, key):
        """The idTokenInfo stored for `key`, or None."""
        h = _h(key)
        if h not in self._index:
            return None
        try:
            with open(self.path, "rb") as f:
                for off in self._offsets(h):
                    rec = self._read_at(f, off)
                    if rec[0] == key:
                        return rec[1]
        except (OSError, ValueError) as e:
            log.warn("auth", "local list unreadable: %s" % (e,))
        return None

    # ---------------------------------------------------------------- index
    def _set(self, h, old, new):
        """Point the index of one key from offset `old` (None: new key) to `new` (None: removed)."""
        offs = [o for o in self._offsets(h) if o != old]
        if new is not None:
            offs.append(new)
        if not offs:
            self._index.pop(h, None)
        else:
            self._index[h] = offs[0] if len(offs) == 1 else offs

    def _load(self):
        self.store.recover_tmp(FILE)  # an interrupted replace() or compact()
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        clean = True
        with f:
            rf = open(self.path, "rb")  # second handle: resolves hash collisions while replaying
            with rf:
                off = 0
                pending = []
                while True:
                    line = f.readline()
                    if not line:
                        break
                    if not line.endswith(b"\n"):
                        clean = False
                        break
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        clean = False
                        break
                    if isinstance(rec, dict):
                        for key, roff, removed in pending:
                            old = self._find(rf, key)
                            new = None if removed else roff
                            self._set(_h(key), old, new)
                            self.count += _delta(old, new)
                        pending = []
                        self.version = rec.get("v") or 0
                        self._size = off + len(line)
                    else:
                        pending.append((rec[0], off, rec[1] is None))
                    off += len(line)
                    self._lines += 1
                if pending:
                    clean = False
        if not clean:
            log.warn("auth", "local list: dropping an unfinished update")
            self.compact()

    # ---------------------------------------------------------------- updating
    def update(self, entries, version, most=None):
        """Differential update: refuse a key given twice or a list over `most` entries (returns
        the reason), else append `entries` as `version` (returns None). Each record the update
        touches is read once, for both the check and the index moves."""
        olds, count = self._scan(entries)
        if olds is None:
            return count
        if most is not None and count > most:
            return "list full"
        self._append(entries, olds, version)
        return None

    def _scan(self, entries):
        """(offset of each key's current record or None, entry count after the update), or
        (None, reason) when a key is given twice."""
        f = open(self.path, "rb") if self._index else None
        seen = set()
        olds = []
        count = self.count
        try:
            for key, info in entries:
                if key in seen:
                    return None, "duplicate idToken"
                seen.add(key)
                old = self._find(f, key) if f is not None else None
                olds.append(old)
                if info is None and old is not None:
                    count -= 1
                elif info is not None and old is None:
                    count += 1
        finally:
            if f is not None:
                f.close()
        return olds, count

    def _append(self, entries, olds, version):
        """Append `entries` and the commit of `version` in one write, then move the index
        (`olds`: from _scan())."""
        chunks = []
        off = self._size
        moves = []
        for (key, info), old in zip(entries, olds):
            line = storage.line([key, info])
            moves.append((key, old, None if info is None else off))
            chunks.append(line)
            off += len(line)
        commit = storage.line({"v": version})
        chunks.append(commit)
        data = b"".join(chunks)
        self.store.append_raw(FILE, data)
        for key, old, new in moves:
            self._set(_h(key), old, new)
            self.count += _delta(old, new)
        self._lines += len(chunks)
        self._size += len(data)
        self.version = version
        if self._lines > 2 * self.count + 64:
            self.compact()

    def replace(self, entries, version):
        """Full update: the list becomes `entries` (key, info) at `version`."""
        self._index = {}
        self.count = 0
        self._lines = 0
        self._size = 0
        with _Writer(self) as w:
            for key, info in entries:
                self._set(_h(key), None, w.write(json.dumps([key, info])))
                self.count += 1
            w.write(json.dumps({"v": version}))
        self.version = version

    def compact(self):
        """Rewrite the file with only the live records (after many differential updates, or to
        drop an unfinished one)."""
        offs = []
        for v in self._index.values():
            if isinstance(v, list):
                offs.extend(v)
            else:
                offs.append(v)
        offs.sort()
        self._index = {}
        self.count = 0
        self._lines = 0
        try:
            src = open(self.path, "rb")
        except OSError:
            src = None
        try:
            with _Writer(self) as w:
                for off in offs:
                    src.seek(off)
                    line = src.readline()
                    key = json.loads(line)[0]
                    self._set(_h(key), None, w.write(line.rstrip(b"\n")))
                    self.count += 1
                w.write(json.dumps({"v": self.version}))
        finally:
            if src is not None:
                src.close()

    def size(self):
        return self._size


class _Writer:
    """Streams lines into <file>.tmp, then atomically renames it over the list file."""

    def __init__(self, ll):
        self.ll = ll
        self.off = 0

    def __enter__(self):
        self.f = open(self.ll.path + ".tmp", "wb")
        return self

    def write(self, line):
        if isinstance(line, str):
            line = line.encode()
        off = self.off
        self.f.write(line)
        self.f.write(b"\n")
        self.off += len(line) + 1
        self.ll._lines += 1
        return off

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.f.close()
            return False
        sync(self.f)
        self.f.close()
        self.ll.store.commit_tmp(FILE)
        self.ll._size = self.off
        self.ll.store.bytes_written += self.off
        return False


def _delta(old, new):
    if old is None:
        return 0 if new is None else 1
    return -1 if new is None else 0
