# Persistence primitives for the data directory. Two shapes only:
#  - small state documents written atomically (temp file + rename), and
#  - append-only journals (one JSON record per line) recovered on start-up.
# A power cut at any instant leaves either the old or the new document, and a journal whose
# only possible damage is a torn last line, which recovery drops.
import json
import os

from firmware.compat import path_exists, makedirs

# Every call that changes the medium goes through `fs` (rename, remove, fsync; files are
# written through the builtin open). On the device it is os itself: one attribute lookup,
# no allocation. tests/cutfs.py stands a power-cut double in for it, because MicroPython
# lets a test replace a module attribute here but not one of the built-in os module.
fs = os


_ERRNO = {2: "no such file or directory", 13: "permission denied", 21: "is a directory",
          28: "no space left", 30: "read-only file system"}


def errno_text(e):
    """A readable reason for an OSError on both runtimes (MicroPython's carries the number only)."""
    n = e.args[0] if e.args else None
    return "%s (errno %d)" % (_ERRNO[n], n) if n in _ERRNO else str(e)


def line(record):
    """One journal line: the record's JSON and a newline, as bytes. Journals count bytes:
    MicroPython's json.dumps writes raw UTF-8, so character counts are not offsets."""
    return (json.dumps(record) + "\n").encode()


class Store:
    def __init__(self, data_dir):
        self.dir = data_dir.rstrip("/") or "."
        makedirs(self.dir)
        self.bytes_written = 0  # flash-wear accounting, reported by the bench
        # name -> why its last write failed, until a write of it succeeds: a full or
        # read-only data directory shows in the console's status instead of only in the log
        self.write_errors = {}

    def path(self, name):
        return self.dir + "/" + name

    # -------------------------------------------------------------- documents
    def load(self, name, default=None):
        """Read a JSON document; a missing or unreadable file yields `default`."""
        p = self.path(name)
        for candidate in (p, p + ".tmp"):
            try:
                with open(candidate) as f:
                    return json.load(f)
            except (OSError, ValueError):
                continue
        return default

    def save(self, name, obj):
        """Atomically replace a JSON document."""
        p = self.path(name)
        tmp = p + ".tmp"
        data = json.dumps(obj)
        try:
            with open(tmp, "w") as f:
                f.write(data)
                sync(f)
            self.commit_tmp(name)
        except OSError as e:
            self._failed(name, e)
            raise
        self._written(name)
        self.bytes_written += len(data)

    def _failed(self, name, e):
        text = errno_text(e)
        if self.write_errors.get(name) != text:
            from firmware import log
            log.error("store", "cannot write %s: %s" % (name, text))
        self.write_errors[name] = text

    def _written(self, name):
        if self.write_errors:
            self.write_errors.pop(name, None)

    def write_error(self):
        """'name: reason; ...' of the documents and journals whose last write failed, or None."""
        if not self.write_errors:
            return None
        return "; ".join("%s: %s" % kv for kv in sorted(self.write_errors.items()))

    def commit_tmp(self, name):
        """Atomically replace `name` by `name`.tmp, which the caller wrote and synced."""
        p = self.path(name)
        try:
            fs.rename(p + ".tmp", p)
        except OSError:
            # littlefs/FAT may refuse to rename over an existing file
            fs.remove(p)
            fs.rename(p + ".tmp", p)

    def recover_tmp(self, name):
        """Settle a commit_tmp cut by a power loss, before reading `name`: a `name`.tmp
        next to `name` is an unfinished rewrite (the old file is intact), so it is removed;
        a lone one was cut between remove and rename, so it becomes `name`."""
        p = self.path(name)
        tmp = p + ".tmp"
        if path_exists(tmp):
            if path_exists(p):
                fs.remove(tmp)
            else:
                fs.rename(tmp, p)

    def remove(self, name):
        # the .tmp first: a cut between the two must not leave a lone .tmp, which
        # recover_tmp and load would take for the file itself
        for p in (self.path(name) + ".tmp", self.path(name)):
            try:
                fs.remove(p)
            except OSError:
                pass

    def open(self, name, mode="rb"):
        """A file of the data directory, for readers that seek (the outbox journal)."""
        return open(self.path(name), mode)

    def exists(self, name):
        return path_exists(self.path(name))

    def names(self, prefix, suffix=".json"):
        """The documents named prefix...suffix, after settling cut rewrites (recover_tmp)."""
        for n in os.listdir(self.dir):
            if n.startswith(prefix) and n.endswith(suffix + ".tmp"):
                self.recover_tmp(n[:-4])
        return [n for n in os.listdir(self.dir) if n.startswith(prefix) and n.endswith(suffix)]

    # -------------------------------------------------------------- journals
    def append(self, name, record):
        """Append one JSON record as a line and flush it to the medium. Journals are binary:
        MicroPython's json.dumps writes raw UTF-8, so only byte counts are valid offsets."""
        self.append_raw(name, line(record))

    def append_raw(self, name, data):
        """Append bytes and flush them; the caller keeps the journal size if it needs offsets."""
        try:
            with open(self.path(name), "ab") as f:
                f.write(data)
                sync(f)
        except OSError as e:
            self._failed(name, e)
            raise
        self._written(name)
        self.bytes_written += len(data)

    def lines(self, name):
        """Yield (byte offset, line bytes) for every line of a journal, one at a time (bounded
        RAM). A torn last line (power cut mid-write) comes without its newline."""
        try:
            f = open(self.path(name), "rb")
        except OSError:
            return
        with f:
            off = 0
            while True:
                line = f.readline()
                if not line:
                    break
                yield off, line
                off += len(line)

    def records(self, name):
        """Yield the journal's intact records in order. A torn or corrupt line is skipped."""
        for _, line in self.lines(name):
            if not line.endswith(b"\n"):
                break  # torn tail
            try:
                yield json.loads(line)
            except ValueError:
                continue

    def size(self, name):
        try:
            return os.stat(self.path(name))[6]
        except OSError:
            return 0


def sync(f):
    """Flush a file to the medium before it is closed or renamed."""
    f.flush()
    try:
        fs.fsync(f.fileno())
    except (AttributeError, OSError):
        pass  # MicroPython: flush reaches the filesystem driver; close commits littlefs
