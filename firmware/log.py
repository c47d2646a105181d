# Logging to stderr (the serial console on a board) with a small ring buffer of recent lines
# that the console's `log N` command shows. Never log secrets: callers pass redacted text.
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
