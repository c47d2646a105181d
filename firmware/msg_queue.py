# Persistent, ordered outbox for messages that must never be lost: TransactionEvent and
# critical SecurityEventNotification (OCPP 2.0.1 E12/E13, A04; part 4 §5.4 "Message ordering").
#
# A message is appended to a journal (with its final messageId) before `put` returns, and is
# marked done only when the CSMS answered it or the retry policy gave up, so a resend after
# a network or power loss is byte-for-byte the same frame. The journal lives in the data
# directory:  ["a", msgId, action, payload] adds a message, ["d", msgId] retires it.
#
# A message is known by its messageId, never by where it sits in the file (the libocpp
# MessageQueue idea): the one in flight is retired by its id when its answer comes, whatever
# compaction or a full outbox did meanwhile, and it is never the one `_make_room` drops.
# RAM holds, per pending message, three small ints (no heap object each: 500 messages cost
# ~6 KB on the ESP32, where 500 id strings would cost ~18 KB): a 30-bit key of its id (a
# collision is settled by reading the record), and the offset and length of its record,
# which are only a read cache, rebuilt by recovery and compaction.
#
# `put` is synchronous: a caller that derives state from the message (a transaction's next
# seqNo) saves that state right after `put` without yielding, so no delivery can happen in
# between; after a power cut between the two, `pending()` lets the caller re-derive it.
# `put` does not compact: once the dead records outweigh the live ones, a delivery wakes
# the compactor task, which copies the live records a few KB at a time, yielding between
# steps, then copies the records appended meanwhile as they are (they name messages by id,
# so they stay valid anywhere) and renames. Only a put that finds the byte budget used up
# while dead records remain (Updated events dropped while offline) compacts at once.
import json

from firmware import compat, log
from firmware.rpc import CallError, Offline
from firmware import storage
from firmware.storage import sync

JOURNAL = "queue.jnl"
TX = "TransactionEvent"
COMPACT_STEP = 4096  # bytes copied by the compactor between two yields


class QueueFull(Exception):
    pass


def _key(mid):
    return hash(mid) & 0x3FFFFFFF


def _record(f, off):
    """(record, line length) of the "a" record that starts at `off` in the open journal
    `f`, or None."""
    try:
        f.seek(off)
        line = f.readline()
        rec = json.loads(line)
    except (OSError, ValueError):
        return None
    if isinstance(rec, list) and len(rec) == 4 and rec[0] == "a":
        return rec, len(line)
    return None


class MessageQueue:
    def __init__(self, station, max_items=500, max_bytes=262144):
        self.st = station
        self.store = station.store
        self.path = self.store.path(JOURNAL)
        self.max_items = max_items
        self.max_bytes = max_bytes
        # pending messages, oldest first, as parallel lists of small ints (see the header)
        self._keys = []
        self._offs = []
        self._lens = []
        self._live = 0      # bytes of the pending records; the rest of the journal is dead
        self._size = 0
        self._torn = False   # the journal ends in part of a record a failed append left
        self._flight = None  # messageId handed to the sender and not yet answered
        self.compactions = 0
        self._compacting = False
        self._compact_ev = compat.asyncio.Event()
        self._wake = compat.asyncio.Event()
        self._listeners = {}
        self._recover()
        station.on("boot_accepted", self._wake.set)
        station.on("connected", self._wake.set)
        station.on("start", self._start)

    # ---------------------------------------------------------------- public
    def put(self, action, payload):
        """Persist a message for in-order delivery; returns its messageId. Raises QueueFull
        or OSError (flash full) and then leaves nothing behind: no id is reserved."""
        if len(self._offs) >= self.max_items:
            self._make_room()
        mid = self.st.rpc.next_id()
        while self._find(mid, verify=True) is not None:  # a boot drew an earlier prefix
            mid = self.st.rpc.next_id()
        line = storage.line(["a", mid, action, payload])
        if self._size + len(line) > self.max_bytes:
            if self._live + len(line) > self.max_bytes or self._compacting:
                raise QueueFull("outbox full (%d bytes)" % self._live)
            self._compact()
        off = self._append(line)
        self._keys.append(_key(mid))
        self._offs.append(off)
        self._lens.append(len(line))
        self._live += len(line)
        self._wake.set()
        return mid

    def on_reply(self, action, fn):
        """fn(payload, response) after the CSMS accepted a queued message of `action`."""
        self._listeners.setdefault(action, []).append(fn)

    def depth(self):
        return len(self._offs)

    def pending(self):
        """Yield (messageId, action, payload) of undelivered messages, oldest first. The scan
        reads through one open journal handle: consume it without awaiting, and close() the
        generator when leaving the loop early (MicroPython does not close it on release)."""
        try:
            f = self.store.open(JOURNAL, "rb")
        except OSError:
            return
        try:
            for off in list(self._offs):
                r = _record(f, off)
                if r is not None:
                    rec = r[0]
                    yield rec[1], rec[2], rec[3]
        finally:
            f.close()

    def idle(self):
        return not self._offs

    # ---------------------------------------------------------------- journal
    def _append(self, data):
        # After a failed append (flash full mid-write) the journal may end in part of a line:
        # the next record starts on a fresh line, so that part is a corrupt line of its own
        # that recovery skips, and offsets count every byte on the medium.
        lead = 1 if self._torn else 0
        if lead:
            data = b"\n" + data
        try:
            self.store.append_raw(JOURNAL, data)
        except OSError:
            self._resync()
            raise
        off = self._size + lead
        self._size += len(data)
        self._torn = False
        return off

    def _resync(self):
        size = self.store.size(JOURNAL)
        if size == self._size:
            return
        self._size = size
        try:
            with self.store.open(JOURNAL, "rb") as f:
                f.seek(size - 1)
                self._torn = f.read(1) != b"\n"
        except OSError:
            self._torn = True

    def _read(self, off):
        try:
            with self.store.open(JOURNAL, "rb") as f:
                return _record(f, off)
        except OSError:
            return None

    def _find(self, mid, f=None, verify=False):
        """Index of the pending message `mid`, or None. A lone key match is trusted unless
        `verify` (an answer must never retire another message: one record read)."""
        k = _key(mid)
        keys = self._keys
        first = None
        for i in range(len(keys)):
            if keys[i] != k:
                continue
            if first is not None:
                return self._settle(mid, k, f)
            first = i
        if first is not None and verify:
            r = self._read(self._offs[first])
            if r is None or r[0][1] != mid:
                return None
        return first

    def _settle(self, mid, k, f):
        for i in range(len(self._keys)):  # a key collision: the record's own id decides
            if self._keys[i] == k:
                off = self._offs[i]
                r = _record(f, off) if f is not None else self._read(off)
                if r is not None and r[0][1] == mid:
                    return i
        return None

    def _recover(self):
        # firmware/queue_recovery rebuilds the index from the journal: it runs once per boot,
        # so it is imported for that and dropped again
        from firmware import queue_recovery
        try:
            queue_recovery.recover(self)
        finally:
            compat.unload("firmware.queue_recovery")

    def _drop(self, i):
        self._live -= self._lens.pop(i)
        self._keys.pop(i)
        return self._offs.pop(i)

    def _retire(self, i, mid):
        """Retire pending message number i, whose id is mid."""
        self._drop(i)
        if not self._offs and self._size > 4096 and not self._compacting:
            self._reset()
        else:
            self._append(storage.line(["d", mid]))

    def _reset(self):
        self.store.remove(JOURNAL)
        self._size = 0
        self._torn = False
        self._live = 0

    def _should_compact(self):
        dead = self._size - self._live
        return dead > self._live and self._size > self.max_bytes // 4

    def _compact(self):
        """Rewrite the journal with only the pending records, at once (put's last resort)."""
        it = self._compaction(0x7FFFFFFF)
        for _ in it:
            pass

    async def _compactor(self):
        while True:
            await self._compact_ev.wait()
            self._compact_ev.clear()
            if not self._should_compact():
                continue
            it = self._compaction(COMPACT_STEP)
            try:
                for _ in it:
                    await compat.sleep_ms(0)
            except OSError as e:
                log.warn("queue", "compaction failed: %r" % e)
            finally:
                it.close()  # when cancelled at a pause (MicroPython would not close it)

    def _compaction(self, step):
        """A generator that rewrites the journal with only the pending records (atomic via
        rename), pausing after every `step` bytes copied. Between pauses the queue is used
        as usual: records appended meanwhile are copied at the end as they are."""
        self._compacting = True
        committed = False
        try:
            snap = self._size
            old = list(self._offs)
            new = []
            size = 0
            with self.store.open(JOURNAL + ".tmp", "wb") as out:
                src = None
                n = 0
                for off in old:
                    if src is None:  # not held across a pause: appends go on meanwhile
                        src = self.store.open(JOURNAL, "rb")
                    src.seek(off)
                    line = src.readline()  # pending records are complete lines
                    out.write(line)
                    new.append(size)
                    size += len(line)
                    n += len(line)
                    if n >= step:
                        n = 0
                        src.close()
                        src = None
                        yield
                if src is not None:
                    src.close()
                # no pause from here on: the tail appended meanwhile, then the switch
                tail = self._size - snap
                if tail:
                    with self.store.open(JOURNAL, "rb") as src:
                        src.seek(snap)
                        while True:
                            b = src.read(512)
                            if not b:
                                break
                            out.write(b)
                sync(out)
            self.store.bytes_written += size + tail
            self.store.commit_tmp(JOURNAL)
            committed = True
            j = 0
            offs = self._offs
            for i in range(len(offs)):  # both lists ascend; retired entries are skipped
                if offs[i] < snap:
                    while old[j] != offs[i]:
                        j += 1
                    offs[i] = new[j]
                else:
                    offs[i] = size + offs[i] - snap
            self._size = size + tail
            if not tail:
                self._torn = False  # a torn end was not copied
            self.compactions += 1
        finally:
            # flash full, or the compactor cancelled at a pause (GeneratorExit): give the
            # space back, and leave no lone .tmp that recovery would take for the journal
            if not committed:
                try:
                    storage.fs.remove(self.path + ".tmp")
                except OSError:
                    pass
            self._compacting = False
        if not self._offs and self._size > 4096:
            self._reset()

    def _make_room(self):
        # E04/E12 storage full: sacrifice intermediate Updated events, never Started/Ended
        # or security events, and never the message in flight: its answer must find it.
        victim = None
        try:
            with self.store.open(JOURNAL, "rb") as f:  # one scan handle, closed before _retire
                for i in range(len(self._offs)):
                    r = _record(f, self._offs[i])
                    if r is None:
                        continue
                    rec = r[0]
                    if rec[1] != self._flight and rec[2] == TX \
                            and rec[3].get("eventType") == "Updated":
                        victim = i, rec[1], rec[3].get("seqNo")
                        break
        except OSError:
            pass
        if victim is None:
            raise QueueFull("outbox full of messages that must not be dropped")
        log.warn("queue", "outbox full: dropping TransactionEvent seqNo %s" % victim[2])
        self._retire(victim[0], victim[1])

    # ---------------------------------------------------------------- delivery
    def _start(self):
        self.st.spawn(self._sender())
        self.st.spawn(self._compactor())

    def _sender(self):
        return send_loop(self.st, self._wake, self._head, self._done, self._attempt_policy,
                         "queue")

    def _head(self):
        while self._offs:
            r = self._read(self._offs[0])
            if r is not None:
                rec = r[0]
                self._flight = rec[1]
                return rec[2], rec[3], rec[1], None
            log.error("queue", "unreadable record at %d dropped" % self._offs[0])
            self._drop(0)  # no id to retire it by: recovery drops it again
        self._flight = None
        return None

    def _done(self, item, resp, err):
        action, payload, mid = item[0], item[1], item[2]
        self._flight = None
        i = self._find(mid, verify=True)
        if i is not None:
            self._retire(i, mid)
        if self._offs and self._should_compact():
            self._compact_ev.set()  # the compactor task, not a caller's put()
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
    (error None) or the give-up. StatusNotifications queued before a message go first
    (availability.settled)."""
    attempts = 0
    while True:
        av = st.blocks.get("availability")
        if av is not None and st.online():
            await av.settled()
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
