# Logging to stderr (the serial console on a board) with a small ring buffer of recent lines
# that the console's `log N` command shows, and, once open_file() was called, a bounded log
# on flash that survives reboots (uploaded by GetLog, N01). Never log secrets: callers pass
# redacted text.
#
# The flash log is two files, FILE and FILE.1, of at most half the cap each: when FILE is
# full it becomes FILE.1 (the older FILE.1 goes) and a new FILE starts, so the newest half
# of the cap is always kept. Lines at info and above go there, each with its full date and
# time, written and flushed one by one: a power cut loses at most the line being written.
import os
import sys

from firmware import compat

LEVELS = ("debug", "info", "warn", "error")
level = 1
RING_SIZE = 40
MAX_LINE = 300
_ring = [None] * RING_SIZE
_head = 0
_count = 0
sink = None  # optional extra callable(line), e.g. tests
# Fleet mode (many stations in one process): {asyncio task: station identity}, so each line
# names the station whose task wrote it. None on a charger: nothing is looked up.
owners = None
_pruned = [0]


def own(task, who):
    """Lines `task` writes are tagged `who` (fleet mode only)."""
    if owners is None or task is None:
        return
    owners[task] = who
    if len(owners) > 2 * _pruned[0] + 64:
        for t in [t for t in owners if t.done()]:
            del owners[t]
        _pruned[0] = len(owners)


def adopt(task):
    """`task` writes under the tag of the task creating it (fleet mode only)."""
    if owners is not None:
        own(task, owners.get(compat.current_task()))


def _owner():
    try:
        return owners.get(compat.current_task())
    except Exception:   # no running loop
        return None


_last_t = [None]   # wall time of the last line, to notice the clock stepping back

FILE = "diag.log"
FILE_TOTAL = 65536  # default cap of both files together (bytes)
# the open flash log: [file object or None, path, bytes in it, bytes per file]
_file = [None, None, 0, 0]


def open_file(directory, total=FILE_TOTAL):
    """Start (or move) the flash log to `directory`/FILE, at most `total` bytes on flash.
    One flash log per process: a second station in the same process takes it over."""
    close_file()
    path = directory.rstrip("/") + "/" + FILE
    try:
        f = open(path, "ab")
        size = f.tell() if hasattr(f, "tell") else 0
        if not size:
            size = os.stat(path)[6]
        if size:
            with open(path, "rb") as r:  # a line torn by a power cut: end it first
                r.seek(size - 1)
                if r.read(1) != b"\n":
                    f.write(b"\n")
                    f.flush()
                    size += 1
    except OSError as e:
        _stderr("flash log %s not opened: %s" % (path, e))
        return False
    _file[0], _file[1], _file[2], _file[3] = f, path, size, max(1024, total // 2)
    return True


def close_file():
    f = _file[0]
    _file[0] = None
    if f is not None:
        try:
            f.close()
        except OSError:
            pass


def file_paths():
    """The flash log's files that exist, oldest first (for an upload)."""
    p = _file[1]
    if p is None:
        return []
    out = []
    for q in (p + ".1", p):
        try:
            if os.stat(q)[6]:
                out.append(q)
        except OSError:
            pass
    return out


def _stderr(text):
    try:
        print(text, file=sys.stderr)
    except Exception:
        pass


def _to_file(t, line):
    f = _file[0]
    data = (t + line[12:] + "\n").encode()  # the stderr line with the full date-time
    try:
        if _file[2] + len(data) > _file[3] and _file[2]:
            f.close()
            _file[0] = None
            p = _file[1]
            try:
                os.remove(p + ".1")
            except OSError:
                pass
            os.rename(p, p + ".1")
            f = _file[0] = open(p, "ab")
            _file[2] = 0
        f.write(data)
        f.flush()
        _file[2] += len(data)
    except OSError as e:
        # flash full or gone: the console still gets every line, the flash log stops
        close_file()
        _stderr("flash log stopped: %s" % (e,))


def _emit(lvl, tag, msg):
    global _head, _count
    if lvl < level:
        return
    now = compat.now()
    last = _last_t[0]
    _last_t[0] = now
    if last is not None and now < last - 1:
        # the clock was set (CSMS currentTime, NTP): times before this line are the old clock's
        _emit(2, "log", "clock stepped back %d s: the times from here on follow the new clock"
              % (last - now))
    t = compat.iso8601(now)
    if owners is not None:
        who = _owner()
        if who:
            tag = who + " " + tag
    line = "%s %s [%s] %s" % (t[11:23], LEVELS[lvl][0].upper(), tag, msg)
    try:
        print(line, file=sys.stderr)
    except Exception:
        pass
    if len(line) > MAX_LINE:
        # the ring is kept in RAM for `log N`; a traced frame can be 20 KB
        line = line[:MAX_LINE] + "... (%d chars)" % len(line)
    if lvl >= 1 and _file[0] is not None:
        _to_file(t, line)
    _ring[_head] = line
    _head = (_head + 1) % RING_SIZE
    if _count < RING_SIZE:
        _count += 1
    if sink is not None:
        sink(line)


def debug(tag, msg):
    _emit(0, tag, msg)


def info(tag, msg):
    _emit(1, tag, msg)


def warn(tag, msg):
    _emit(2, tag, msg)


def error(tag, msg):
    _emit(3, tag, msg)


def exc(tag, msg, e):
    _emit(3, tag, "%s: %s: %s" % (msg, type(e).__name__, e))
    if level == 0:
        try:
            sys.print_exception(e)  # MicroPython
        except AttributeError:
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__)


def recent(n):
    """The last n lines, oldest first."""
    n = max(0, min(n, _count))
    out = []
    for i in range(n):
        out.append(_ring[(_head - n + i) % RING_SIZE])
    return out
