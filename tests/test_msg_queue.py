# The persistent outbox (firmware/msg_queue.py) on its own: journal recovery after power cuts,
# byte-exact offsets with non-ASCII payloads, compaction, full storage, in-order delivery with
# identical resends, and the message in flight known by its id (issue #11 item 3). Portable: runs under pytest and under micropython (mprun, driven by
# test_portable_micropython.py).
import json
import os
import sys

from firmware import compat
from firmware.msg_queue import MessageQueue, QueueFull, JOURNAL
from firmware.rpc import Offline
from firmware.storage import Store


def _dir():
    d = "/tmp/mqtest-" + "".join("%02x" % b for b in os.urandom(6))
    compat.makedirs(d)
    return d


class _Rpc:
    def __init__(self):
        self.n = 0

    def next_id(self):
        self.n += 1
        return "m%d" % self.n


class FakeStation:
    """Just what the queue touches; `replies` scripts the CSMS (callable or exception)."""

    def __init__(self, d):
        self.store = Store(d)
        self.rpc = _Rpc()
        self.dm = self
        self.connected = True
        self.blocks = {}
        self.boot_status = "Accepted"
        self.sent = []
        self.replies = []
        self._on = {}

    def online(self):
        return self.connected and self.boot_status == "Accepted"

    def get(self, *a, **k):
        return {"MessageAttempts": 3, "MessageAttemptInterval": 0}.get(a[1])

    def on(self, ev, fn):
        self._on.setdefault(ev, []).append(fn)

    async def call(self, action, payload, msg_id=None, wait_online=True):
        self.sent.append((msg_id, action, json.dumps(payload)))
        r = self.replies.pop(0) if self.replies else {}
        if isinstance(r, Exception):
            raise r
        return r


def _tx(seq, kind="Updated", token="04A1B2C3"):
    return {"eventType": kind, "seqNo": seq, "timestamp": "2026-11-24T10:00:00.000Z",
            "triggerReason": "MeterValuePeriodic", "transactionInfo": {"transactionId": "T1"},
            "idToken": {"idToken": token, "type": "ISO14443"}}


def _reopen(st):
    return MessageQueue(FakeStation(st.store.dir))


def _deliver(q, resp=None):
    """The sender's step without the network: take the head, and its answer arrives."""
    item = q._head()
    q._done(item, {} if resp is None else resp, None)
    return item[2]


def test_put_survives_restart_in_order():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    ids = [q.put("TransactionEvent", _tx(i)) for i in range(5)]
    q2 = _reopen(st)
    got = list(q2.pending())
    assert [g[0] for g in got] == ids
    assert [g[2]["seqNo"] for g in got] == [0, 1, 2, 3, 4]


def test_non_ascii_payloads_keep_exact_offsets():
    """MicroPython's json.dumps writes raw UTF-8: offsets must be bytes, not characters."""
    st = FakeStation(_dir())
    q = MessageQueue(st)
    tokens = ["Jürgen-ÄÖÜ", "日本語トークン", "plain", "€uro"]
    for i, t in enumerate(tokens):
        q.put("TransactionEvent", _tx(i, token=t))
    q2 = _reopen(st)
    assert [p["idToken"]["idToken"] for _, _, p in q2.pending()] == tokens


def test_torn_tail_is_dropped_and_next_append_starts_clean():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.put("TransactionEvent", _tx(0))
    q.put("TransactionEvent", _tx(1))
    with open(st.store.path(JOURNAL), "ab") as f:  # power cut in the middle of a write
        f.write(b'["a", "m9", "TransactionEvent", {"eventType": "Upd')
    q2 = _reopen(st)
    assert [p["seqNo"] for _, _, p in q2.pending()] == [0, 1]
    q2.put("TransactionEvent", _tx(2))
    q3 = _reopen(st)
    assert [p["seqNo"] for _, _, p in q3.pending()] == [0, 1, 2]


def test_delivery_in_order_with_identical_resend_after_a_cut():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    for i in range(3):
        q.put("TransactionEvent", _tx(i))
    st.replies = [{}, Offline("cut"), {}, {}]

    async def run():
        task = compat.create_task(q._sender())
        for _ in range(100):
            await compat.sleep_ms(5)
            if len(st.sent) >= 4 and q.idle():
                break
        task.cancel()
    compat.run(run())
    assert q.idle()
    # the second message was cut once and resent byte-for-byte with the same messageId
    assert st.sent[1] == st.sent[2]
    assert [json.loads(s[2])["seqNo"] for s in st.sent] == [0, 1, 1, 2]
    assert list(_reopen(st).pending()) == []


def test_delivered_messages_stay_delivered_after_restart():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    for i in range(4):
        q.put("TransactionEvent", _tx(i))
    _deliver(q)
    _deliver(q)
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [2, 3]


def test_full_queue_drops_updated_never_started_or_ended():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_items = 4
    q.put("TransactionEvent", _tx(0, "Started"))
    q.put("TransactionEvent", _tx(1))
    q.put("TransactionEvent", _tx(2))
    q.put("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "x"})
    q.put("TransactionEvent", _tx(3, "Ended"))
    kinds = [(a, p.get("eventType"), p.get("seqNo")) for _, a, p in q.pending()]
    assert ("TransactionEvent", "Updated", 1) not in kinds
    assert ("TransactionEvent", "Started", 0) in kinds and ("TransactionEvent", "Ended", 3) in kinds
    q.put("TransactionEvent", _tx(4, "Ended"))  # drops seqNo 2, the last Updated
    try:
        q.put("TransactionEvent", _tx(5, "Ended"))
    except QueueFull:
        pass
    else:
        raise AssertionError("a queue full of must-keep messages accepted another")
    assert all(p.get("eventType") != "Updated" for _, a, p in q.pending() if a == "TransactionEvent")


def test_compaction_with_a_message_in_flight_keeps_it_and_retires_it_by_id():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_bytes = 4000
    for i in range(6):
        q.put("TransactionEvent", _tx(i, token="ß" * 20))
    for _ in range(3):
        _deliver(q)
    item = q._head()  # seqNo 3 is on the wire
    assert item[1]["seqNo"] == 3
    q._compact()  # moves every pending record
    assert q._offs[0] == 0
    assert [p["seqNo"] for _, _, p in q.pending()] == [3, 4, 5]
    q._done(item, {}, None)  # its answer retires seqNo 3 and only it
    assert [p["seqNo"] for _, _, p in q.pending()] == [4, 5]
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [4, 5]
    assert st.store.size(JOURNAL) == q._size


def test_sender_yields_when_the_link_is_gone_before_the_flag_says_so():
    """Regression: with `connected` still true but the socket gone, call() fails at once; the
    sender spun without awaiting and starved every other task (the simulator froze on a
    reboot). Other tasks must run between attempts."""
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.put("TransactionEvent", _tx(0))
    trace = []

    async def call(action, payload, msg_id=None, wait_online=True):
        trace.append("call")
        if trace.count("call") <= 3:
            raise Offline("socket already gone")
        return {}
    st.call = call

    async def ticker():
        for _ in range(40):
            trace.append("tick")
            await compat.sleep_ms(10)

    async def run():
        sender = compat.create_task(q._sender())
        tick = compat.create_task(ticker())
        for _ in range(100):
            await compat.sleep_ms(10)
            if q.idle():
                break
        sender.cancel()
        tick.cancel()
    compat.run(run())
    assert q.idle()
    first, second = [i for i, x in enumerate(trace) if x == "call"][:2]
    assert "tick" in trace[first:second], trace[:20]


# ------------------------------------------------ the message in flight is known by its id
class GatedStation(FakeStation):
    """A CSMS that holds each answer until the test releases it, so the test can act while a
    message is on the wire; with `auto` set it answers at once."""

    def __init__(self, d):
        FakeStation.__init__(self, d)
        self.release = compat.asyncio.Event()
        self.auto = False

    async def call(self, action, payload, msg_id=None, wait_online=True):
        self.sent.append((msg_id, action, json.dumps(payload)))
        if not self.auto:
            await self.release.wait()
            self.release.clear()
        return {}


async def _until(cond, n=200):
    for _ in range(n):
        if cond():
            return True
        await compat.sleep_ms(5)
    return cond()


def _drive(st, q, while_in_flight):
    """Start the sender, wait for the first message on the wire, run while_in_flight(),
    then let the CSMS answer everything; returns the ids sent, in order."""
    async def run():
        task = compat.create_task(q._sender())
        assert await _until(lambda: len(st.sent) == 1)
        while_in_flight()
        st.auto = True
        st.release.set()
        await _until(q.idle)
        task.cancel()
    compat.run(run())
    return [s[0] for s in st.sent]


def test_E13_ended_is_not_retired_by_the_answer_to_a_dropped_updated():
    """Reproduces the field report: the outbox was full while an Updated was in flight; it
    dropped that Updated and compacted, so the Ended moved to the Updated's old offset, and
    the Updated's answer retired the Ended, which the CSMS never received."""
    st = GatedStation(_dir())
    q = MessageQueue(st)
    q.max_items = 3
    q.put("TransactionEvent", _tx(0))
    ended = [q.put("TransactionEvent", _tx(1, "Ended"))]

    def full_outbox():
        q.put("TransactionEvent", _tx(2))
        q.max_bytes = q._size + 50  # the next put must also compact
        try:
            ended.append(q.put("TransactionEvent", _tx(3, "Ended")))
        except QueueFull:
            pass
    sent = _drive(st, q, full_outbox)
    assert q.idle()
    for mid in ended:
        assert mid in sent, (mid, sent)


def test_E13_no_double_send_when_a_put_compacts_during_a_delivery():
    st = GatedStation(_dir())
    q = MessageQueue(st)
    ids = [q.put("TransactionEvent", _tx(i, token="ß" * 20)) for i in range(3)]
    _deliver(q)  # seqNo 0 answered: the journal holds dead records

    def compact_now():
        q.max_bytes = q._size + 50
        ids.append(q.put("TransactionEvent", _tx(3, token="ß" * 20)))
        assert q._offs[0] == 0  # the message on the wire moved
    sent = _drive(st, q, compact_now)
    assert sent == ids[1:], sent  # each message exactly once, in order


def test_E04_make_room_never_drops_the_message_in_flight():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_items = 3
    q.put("TransactionEvent", _tx(0))
    q.put("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "x"})
    q.put("TransactionEvent", _tx(1, "Ended"))
    item = q._head()  # the Updated at the head is on the wire
    try:
        q.put("TransactionEvent", _tx(2, "Started"))
    except QueueFull:
        pass
    else:
        raise AssertionError("the Updated in flight was dropped to make room")
    assert [p.get("seqNo") for _, _, p in q.pending()] == [0, None, 1]
    q._done(item, {}, None)
    assert [p.get("seqNo") for _, _, p in q.pending()] == [None, 1]


def test_E04_make_room_drops_an_updated_behind_the_one_in_flight():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_items = 3
    q.put("TransactionEvent", _tx(0))
    q.put("TransactionEvent", _tx(1))
    q.put("TransactionEvent", _tx(2, "Ended"))
    item = q._head()
    q.put("TransactionEvent", _tx(3, "Started"))
    q._done(item, {}, None)
    assert [p["seqNo"] for _, _, p in q.pending()] == [2, 3]
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [2, 3]


def test_deliveries_wake_the_compactor_and_it_keeps_what_happens_meanwhile():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_bytes = 4000
    for i in range(10):
        q.put("TransactionEvent", _tx(i))
    for _ in range(6):
        _deliver(q)
    assert q.compactions == 0 and q._compact_ev.is_set()  # not inside put() or _done()
    it = q._compaction(1)  # pauses after every record
    next(it)
    q.put("TransactionEvent", _tx(10))
    _deliver(q)  # seqNo 6 answered while its record is being copied
    item = q._head()  # seqNo 7 on the wire during the switch
    next(it)
    q.put("TransactionEvent", _tx(11))
    for _ in it:
        pass
    assert q.compactions == 1
    assert q._size == st.store.size(JOURNAL)
    assert [p["seqNo"] for _, _, p in q.pending()] == [7, 8, 9, 10, 11]
    q._done(item, {}, None)
    assert [p["seqNo"] for _, _, p in q.pending()] == [8, 9, 10, 11]
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [8, 9, 10, 11]


def test_compactor_task_yields_between_steps():
    from firmware import msg_queue
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_bytes = 8000
    for i in range(20):
        q.put("TransactionEvent", _tx(i))
    for _ in range(12):
        _deliver(q)
    ticks = []

    async def ticker():
        while True:
            ticks.append(q.compactions)
            await compat.sleep_ms(0)

    async def run():
        t = compat.create_task(ticker())
        c = compat.create_task(q._compactor())
        await _until(lambda: q.compactions == 1)
        c.cancel()
        t.cancel()
    step = msg_queue.COMPACT_STEP
    msg_queue.COMPACT_STEP = 1
    try:
        compat.run(run())
    finally:
        msg_queue.COMPACT_STEP = step
    assert q.compactions == 1 and not q._compacting
    assert ticks.count(0) >= 8, ticks  # other tasks ran while the 8 records were copied
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == list(range(12, 20))


def test_restart_keeps_the_unanswered_message_in_flight_and_its_id():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    ids = [q.put("TransactionEvent", _tx(i)) for i in range(3)]
    _deliver(q)
    q._head()  # on the wire when the power is cut
    q2 = _reopen(st)
    assert [m for m, _, _ in q2.pending()] == ids[1:]
    assert q2._head()[2] == ids[1]


def test_recovery_reads_a_journal_that_retired_by_offset():
    """Journals written before "d" carried the messageId (["d", offset])."""
    st = FakeStation(_dir())
    lines = [["a", "old1", "TransactionEvent", _tx(0)], ["a", "old2", "TransactionEvent", _tx(1)]]
    data = b"".join((json.dumps(r) + "\n").encode() for r in lines)
    data += (json.dumps(["d", 0]) + "\n").encode()
    with open(st.store.path(JOURNAL), "wb") as f:
        f.write(data)
    q = MessageQueue(st)
    assert [m for m, _, _ in q.pending()] == ["old2"]
    _deliver(q)
    assert list(_reopen(st).pending()) == []


def test_E12_recovery_code_dropped_once_the_journal_is_read():
    """Recovery runs once per boot: firmware.queue_recovery is not resident afterwards."""
    st = FakeStation(_dir())
    q = MessageQueue(st)
    ids = [q.put("TransactionEvent", _tx(i)) for i in range(3)]
    _deliver(q)
    q2 = _reopen(st)
    assert [m for m, _, _ in q2.pending()] == ids[1:]
    assert "firmware.queue_recovery" not in sys.modules


def test_id_key_collisions_are_settled_by_the_record():
    from firmware import msg_queue
    key = msg_queue._key
    msg_queue._key = lambda mid: 7  # every id collides
    try:
        st = FakeStation(_dir())
        q = MessageQueue(st)
        ids = [q.put("TransactionEvent", _tx(i)) for i in range(4)]
        q._done(("TransactionEvent", {}, ids[2]), {}, None)  # out of order, by id
        _deliver(q)
        assert [m for m, _, _ in q.pending()] == [ids[1], ids[3]]
        assert [m for m, _, _ in _reopen(st).pending()] == [ids[1], ids[3]]
    finally:
        msg_queue._key = key


def test_an_answer_for_an_id_not_pending_retires_nothing():
    from firmware import msg_queue
    key = msg_queue._key
    msg_queue._key = lambda mid: 7  # the unknown id has the key of a pending message
    try:
        st = FakeStation(_dir())
        q = MessageQueue(st)
        mid = q.put("TransactionEvent", _tx(0, "Ended"))
        q._done(("TransactionEvent", {}, "not-queued"), {}, None)
        assert [m for m, _, _ in q.pending()] == [mid]
    finally:
        msg_queue._key = key


def test_put_never_reuses_the_id_of_a_pending_message():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    first = q.put("TransactionEvent", _tx(0))
    st2 = FakeStation(st.store.dir)  # the next boot draws the same id prefix
    q2 = MessageQueue(st2)
    second = q2.put("TransactionEvent", _tx(1))
    assert second != first
    assert [m for m, _, _ in _reopen(st).pending()] == [first, second]


def _torn_append(st):
    """append_raw as a full flash does it: half the bytes reach the medium, then ENOSPC."""
    def torn(name, data):
        with open(st.store.path(name), "ab") as f:
            f.write(data[:len(data) // 2])
        raise OSError(28, "ENOSPC")
    return torn


def test_E04_failed_put_leaving_half_a_line_loses_no_later_message():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.put("TransactionEvent", _tx(0, "Started"))
    real = st.store.append_raw
    st.store.append_raw = _torn_append(st)
    try:
        q.put("TransactionEvent", _tx(1))
        assert False, "the put should have failed"
    except OSError:
        pass
    st.store.append_raw = real
    q.put("TransactionEvent", _tx(2, "Ended"))  # acknowledged: put returned
    assert q._size == st.store.size(JOURNAL)
    assert [p["seqNo"] for _, _, p in q.pending()] == [0, 2]
    q2 = _reopen(st)
    assert [p["seqNo"] for _, _, p in q2.pending()] == [0, 2]
    _deliver(q2)
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [2]


def test_E04_two_failed_puts_in_a_row_then_a_put_after_restart():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    real = st.store.append_raw
    st.store.append_raw = _torn_append(st)
    for i in range(2):
        try:
            q.put("TransactionEvent", _tx(i))
        except OSError:
            pass
    st.store.append_raw = real
    q2 = _reopen(st)  # restart on the torn journal
    q2.put("TransactionEvent", _tx(0, "Started"))
    q2.put("TransactionEvent", _tx(1, "Ended"))
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [0, 1]


def test_E04_cancelled_compaction_leaves_no_tmp_journal():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    for i in range(6):
        q.put("TransactionEvent", _tx(i))
    for _ in range(4):
        _deliver(q)
    it = q._compaction(1)
    next(it)
    assert st.store.exists(JOURNAL + ".tmp")
    it.close()  # the compactor task cancelled at a pause
    assert not st.store.exists(JOURNAL + ".tmp")
    assert not q._compacting
    assert [p["seqNo"] for _, _, p in _reopen(st).pending()] == [4, 5]


class _Cut(Exception):
    pass


def test_store_remove_cut_between_files_leaves_no_lone_tmp():
    from firmware import storage
    st = FakeStation(_dir())
    store = st.store
    for name in ("doc.json", "doc.json.tmp"):
        with open(store.path(name), "w") as f:
            f.write('{"old": 1}')
    real = storage.fs

    class CutAfterFirstRemove:
        def remove(self, p):
            real.remove(p)
            raise _Cut()

        def __getattr__(self, a):
            return getattr(real, a)

    storage.fs = CutAfterFirstRemove()
    try:
        store.remove("doc.json")
    except _Cut:
        pass
    finally:
        storage.fs = real
    lone = store.exists("doc.json.tmp") and not store.exists("doc.json")
    assert not lone
    store.recover_tmp("doc.json")
    store.remove("doc.json")
    assert store.load("doc.json") is None
