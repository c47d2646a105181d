"""A power-cut double for the station's data directory, with littlefs semantics, and a
launcher that runs the simulator on it (CPython and micropython alike):

    <python|micropython> -m tests.cutfs TRACE <host.sim arguments, --data-dir DIR among them>

Nothing is cut while the station runs. Every operation that changes the medium is numbered
and written to TRACE before it takes effect, with what it makes durable, so that
tests/cutpoints.py can rebuild the directory as a cut before operation N would have left it,
for every N. littlefs semantics, as the double records them:
  - open() for writing creates a missing file at once (empty: its directory entry is committed
    at open), but truncation and written data become durable only at a sync (flush or close,
    which is lfs_file_sync on MicroPython); a file therefore keeps its last synced content;
  - rename and remove are atomic and durable once they return.
The numbered operations (the cut points) are: create, write, sync, rename, remove.

TRACE also records, with the count of operations done at that moment, the station's view of
what it promised: every put() into the outbox and every security-log append that returned
(acknowledged), every frame sent and every frame received. A record with count c happened
before operation c was attempted, so it belongs to every cut at N >= c.

Why a recording and not real cuts: one run of the script gives every cut point, and cuts
that leave the same directory need only one restart. The station process cannot tell the
difference, since a cut before operation N leaves exactly the files and the frames recorded
up to N.

Trace lines (JSON):  ["c", name] create   ["w", name, nbytes] write
  ["s", name, replace, hex] sync: `replace` 1 when the data replaces the content (the first
  sync after open "w"), else appended   ["r", src, dst] rename   ["x", name] remove
  ["put", c, msgId, action, payload]   ["log", c, record] (security log)
  ["tx", c, text]   ["rx", c, text]
"""
import binascii
import builtins
import json
import os
import sys

_open = builtins.open
_os_rename = os.rename
_os_remove = os.remove
_count = [0]
_trace = [None]
_prefix = [None]


def _log(rec):
    t = _trace[0]
    t.write(json.dumps(rec) + "\n")
    t.flush()


def _op(rec):
    _log(rec)
    _count[0] += 1


def _name(path):
    """The path relative to the data directory, or None for a file outside it."""
    p = _prefix[0]
    if isinstance(path, str) and path.startswith(p):
        return path[len(p):]
    return None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class CutFile:
    """A file opened for writing in the data directory: what it wrote since its last sync is
    what a cut would lose."""

    def __init__(self, f, name, replace):
        self.f = f
        self.name = name
        self.replace = replace
        self.dirty = replace  # an open "w" truncates at its first sync, even with no data
        self.buf = []

    def write(self, data):
        _op(["w", self.name, len(data)])
        n = self.f.write(data)
        self.buf.append(data.encode() if isinstance(data, str) else bytes(data))
        self.dirty = True
        return n

    def flush(self):
        self.f.flush()
        self._sync()

    def _sync(self):
        if self.dirty:
            data = b"".join(self.buf)
            _op(["s", self.name, 1 if self.replace else 0, binascii.hexlify(data).decode()])
            self.buf = []
            self.replace = False
            self.dirty = False

    def close(self):
        if self.f is not None:
            self.f.flush()
            self._sync()
            self.f.close()
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # no fileno(): storage.sync() then relies on flush, as it does on MicroPython


def cut_open(path, mode="r", *args, **kw):
    name = _name(path)
    if name is None or not ("w" in mode or "a" in mode or "+" in mode):
        return _open(path, mode, *args, **kw)
    if "r" in mode:
        raise OSError("cutfs: mode %r is not modelled" % mode)
    if not _exists(path):
        _op(["c", name])
    return CutFile(_open(path, mode, *args, **kw), name, "w" in mode)


class CutFs:
    """Stands in for os in firmware.storage.fs."""

    def rename(self, src, dst):
        a, b = _name(src), _name(dst)
        if a is not None or b is not None:
            _op(["r", a, b])
        _os_rename(src, dst)

    def remove(self, path):
        name = _name(path)
        if name is not None:
            _op(["x", name])
        _os_remove(path)

    def fsync(self, fd):
        raise AttributeError("cutfs: files sync at flush")


def install_fs(data_dir, trace_path):
    """Route the firmware's writes in `data_dir` through the double, recording to trace_path."""
    _prefix[0] = data_dir.rstrip("/") + "/"
    _count[0] = 0
    _trace[0] = _open(trace_path, "w")
    builtins.open = cut_open
    from firmware import storage
    storage.fs = CutFs()


def uninstall_fs():
    from firmware import storage
    storage.fs = os
    builtins.open = _open
    _trace[0].close()


def install(data_dir, trace_path):
    """install_fs, and record what the station acknowledged, sent and received."""
    install_fs(data_dir, trace_path)
    _hook_outbox()
    _hook_seclog()
    _hook_link()


def _hook_outbox():
    from firmware.msg_queue import MessageQueue
    put = MessageQueue.put

    def recorded_put(self, action, payload, *args):
        mid = put(self, action, payload, *args)
        _log(["put", _count[0], mid, action, payload])
        return mid

    MessageQueue.put = recorded_put


def _hook_seclog():
    from firmware.security import Block
    append = Block._append

    def recorded_append(self, rec):
        append(self, rec)
        _log(["log", _count[0], rec])

    Block._append = recorded_append


def _hook_link():
    from firmware.ws import WebSocket
    send = WebSocket.send
    recv = WebSocket.recv

    async def recorded_send(self, data):
        if isinstance(data, list):   # a CALL written as JSON text pieces (ws.WebSocket.send)
            _log(["tx", _count[0], "".join(data)])
        elif isinstance(data, str):
            _log(["tx", _count[0], data])
        return await send(self, data)

    async def recorded_recv(self):
        data = await recv(self)
        if isinstance(data, str):
            _log(["rx", _count[0], data])
        return data

    WebSocket.send = recorded_send
    WebSocket.recv = recorded_recv


def _small_outbox(max_bytes):
    from firmware.msg_queue import MessageQueue
    init = MessageQueue.__init__

    def small(self, station, *args, **kw):
        init(self, station, *args, **kw)
        self.max_bytes = max_bytes

    MessageQueue.__init__ = small


def main(argv):
    """argv: TRACE [--outbox-bytes N] host.sim arguments. --outbox-bytes shrinks the outbox
    so that a short script reaches its compaction."""
    trace_path, args = argv[0], argv[1:]
    outbox = None
    if args and args[0] == "--outbox-bytes":
        outbox = int(args[1])
        args = args[2:]
    data_dir = args[args.index("--data-dir") + 1]
    from firmware.compat import makedirs
    makedirs(data_dir)
    install(data_dir, trace_path)
    if outbox is not None:
        _small_outbox(outbox)
    from host import sim
    try:
        return sim.main(args)
    finally:
        _trace[0].close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
