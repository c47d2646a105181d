# Persistent, ordered outbox for messages that must never be lost: TransactionEvent and
# critical SecurityEventNotification (OCPP 2.0.1 E12/E13, A04; part 4 §5.4 "Message ordering").
#
# A message is appended to a journal (with its final messageId) before `put` returns, and is
# marked done only when the CSMS answered it or the retry policy gave up, so a resend after
# a network or power loss is byte-for-byte the same frame. The journal lives in the data
# directory:  ["a", msgId, action, payload] adds a message, ["d", offset] retires the one
# whose record starts at `offset`. RAM holds only the list of pending offsets.
#
# `put` is synchronous: a caller that derives state from the message (a transaction's next
# seqNo) saves that state right after `put` without yielding, so no delivery can happen in
# between; after a power cut between the two, `pending()` lets the caller re-derive it.
import json
import os

from firmware import compat, log
from firmware.rpc import CallError, Offline
from firmware import storage
from firmware.storage import sync

JOURNAL = "queue.jnl"
TX = "TransactionEvent"


class QueueFull(Exception):
    pass


def _record(f, off):
    """The "a" record that starts at `off` in the open journal `f`, or None."""
    try:
        f.seek(off)
        rec = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    if isinstance(rec, list) and len(rec) == 4 and rec[0] == "a":
        return rec
    return None


class MessageQueue:
    def __init__(self, station, max_items=500, max_bytes=262144):
        self.st = station
        self.store = station.store
        self.path = self.store.path(JOURNAL)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._pending = []  # journal offsets of undelivered records, oldest first
        self._size = 0
        self._wake = compat.asyncio.Event()
        self._listeners = {}
        self._recover()
        station.on("boot_accepted", self._wake.set)
        station.on("connected", self._wake.set)
        station.on("start", self._start)

    # ---------------------------------------------------------------- public
    def put(self, action, payload):
        """Persist a message for in-order delivery; returns its messageId."""
        if len(self._pending) >= self.max_items:
            self._make_room()
        mid = self.st.rpc.next_id()
        line = storage.line(["a", mid, action, payload])
        if self._size + len(line) > self.max_bytes:
            self._compact()
            if self._size + len(line) > self.max_bytes:
                raise QueueFull("outbox full (%d bytes)" % self._size)
        self._pending.append(self._append(line))
        self._wake.set()
        return mid

    def on_reply(self, action, fn):
        """fn(payload, response) after the CSMS accepted a queued message of `action`."""
        self._listeners.setdefault(action, []).append(fn)

    def depth(self):
        return len(self._pending)

    def pending(self):
        """Yield (messageId, action, payload) of undelivered messages, oldest first. The scan
        reads through one open journal handle: consume it without awaiting, and close() the
        generator when leaving the loop early (MicroPython does not close it on release)."""
        try:
            f = open(self.path, "rb")
        except OSError:
            return
        try:
            for off in list(self._pending):
                rec = _record(f, off)
                if rec is not None:
                    yield rec[1], rec[2], rec[3]
        finally:
            f.close()

    def idle(self):
        return not self._pending

    # ---------------------------------------------------------------- journal
    def _append(self, data):
        off = self._size
        self.store.append_raw(JOURNAL, data)
        self._size += len(data)
        return off

    def _read(self, off):
        try:
            with open(self.path, "rb") as f:
                return _record(f, off)
        except OSError:
            return None

    def _recover(self):
        self.store.recover_tmp(JOURNAL)  # an interrupted _compact
        pending = []
        done = set()
        size = 0
        torn = False
        for off, line in self.store.lines(JOURNAL):
            size = off + len(line)
            torn = not line.endswith(b"\n")
            if torn:
                break
            try:
                rec = json.loads(line)
                if rec[0] == "a":
                    pending.append(off)
                elif rec[0] == "d":
                    done.add(rec[1])
            except (ValueError, IndexError, TypeError, KeyError):
                log.warn("queue", "skipping corrupt journal record at %d" % off)
        self._size = size
        if torn:
            # a record torn by a power cut was never acknowledged; terminate it so the next
            # append starts on a fresh line
            self._append(b"\n")
        self._pending = [o for o in pending if o not in done]
        if self._pending:
            log.info("queue", "recovered %d undelivered messages" % len(self._pending))
        elif self._size:
            self._reset()

    def _retire(self, off):
        self._pending.remove(off)
        if not self._pending and self._size > 4096:
            self._reset()
        else:
            self._append(storage.line(["d", off]))

    def _reset(self):
        try:
            storage.fs.remove(self.path)
        except OSError:
            pass
        self._size = 0

    def _compact(self):
        """Rewrite the journal with only the pending records (atomic via rename)."""
        tmp = self.path + ".tmp"
        new = []
        size = 0
        with open(self.path, "rb") as src, open(tmp, "wb") as out:
            for off in self._pending:
                src.seek(off)
                line = src.readline()  # pending records are complete lines: copied as they are
                if not line.endswith(b"\n"):
                    continue
                out.write(line)
                new.append(size)
                size += len(line)
            sync(out)
        self.store.bytes_written += size
        self.store.commit_tmp(JOURNAL)
        self._pending = new
        self._size = size

    def _make_room(self):
        # E04/E12 storage full: sacrifice intermediate Updated events, never Started/Ended
        # or security events.
        victim = None
        try:
            with open(self.path, "rb") as f:  # one handle for the scan, closed before _retire
                for off in self._pending:
                    rec = _record(f, off)
                    if rec is not None and rec[2] == TX and rec[3].get("eventType") == "Updated":
                        victim = off, rec[3].get("seqNo")
                        break
        except OSError:
            pass
        if victim is None:
            raise QueueFull("outbox full of messages that must not be dropped")
        log.warn("queue", "outbox full: dropping TransactionEvent seqNo %s" % victim[1])
        self._retire(victim[0])

    # ---------------------------------------------------------------- delivery
    def _start(self):
        self.st.spawn(self._sender())

    def _sender(self):
        return send_loop(self.st, self._wake, self._head, self._done, self._attempt_policy,
                         "queue")

    def _head(self):
        while self._pending:
            off = self._pending[0]
            rec = self._read(off)
            if rec is not None:
                return rec[2], rec[3], rec[1], off
            log.error("queue", "unreadable record at %d dropped" % off)
            self._retire(off)
        return None

    def _done(self, item, resp, err):
        action, payload, _, off = item
        if self._pending and self._pending[0] == off:
            self._retire(off)
        if err is not None:
            return
        for fn in self._listeners.get(action, ()):
            try:
                fn(payload, resp)
            except Exception as e:
                log.exc("queue", "reply listener for %s failed" % action, e)

    def _attempt_policy(self, action, attempts):
        dm = self.st.dm
        if action == TX:
            n = dm.get("OCPPCommCtrlr", "MessageAttempts", vi=TX)
            interval = dm.get("OCPPCommCtrlr", "MessageAttemptInterval", vi=TX)
        else:
            n, interval = None, None
        if interval is None:
            interval = 10
        # E13.FR.02: wait interval x attempt number before the next try
        return (n if n else 3), int(interval * attempts * 1000)


async def send_loop(st, wake, head, done, policy, tag):
    """Deliver messages one at a time while online (the outbox above; diagnostics too).
    head() -> (action, payload, messageId or None, ref) or None when there is nothing to send;
    it is asked again before every attempt. Offline: wait for `wake` (set on connect) and send
    again. CallError / TimeoutError: policy(action, attempts) -> (limit, delay_ms): retry
    after delay_ms, give up at the limit. done(item, response, error) follows the answer
    (error None) or the give-up."""
    attempts = 0
    while True:
        item = head() if st.online() else None
        if item is None:
            wake.clear()
            await wake.wait()
            continue
        action, payload, mid = item[0], item[1], item[2]
        try:
            resp = await st.call(action, payload, msg_id=mid, wait_online=False)
        except Offline:
            # resent once connected again; yield first, because the link can be gone before
            # the station's `connected` flag says so and call() then fails at once: without
            # this await the loop would spin and starve the event loop
            await compat.sleep_ms(100)
            continue
        except (CallError, compat.TimeoutError) as e:
            attempts += 1
            limit, delay_ms = policy(action, attempts)
            if attempts < limit:
                log.warn(tag, "%s failed (%d/%d): %r" % (action, attempts, limit, e))
                await compat.sleep_ms(delay_ms)
                continue
            log.error(tag, "%s %s given up after %d attempts: %r"
                      % (action, mid or "", attempts, e))
            attempts = 0
            done(item, None, e)
            continue
        attempts = 0
        done(item, resp, None)
