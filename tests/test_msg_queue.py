# The persistent outbox (firmware/msg_queue.py) on its own: journal recovery after power cuts,
# byte-exact offsets with non-ASCII payloads, compaction, full storage, in-order delivery with
# identical resends. Portable: runs under pytest and under micropython (mprun, driven by
# test_portable_micropython.py).
import json
import os

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
    off = q._pending[0]
    q._retire(off)
    q._retire(q._pending[0])
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


def test_compaction_keeps_pending_and_offsets_valid():
    st = FakeStation(_dir())
    q = MessageQueue(st)
    q.max_bytes = 4000
    for i in range(6):
        q.put("TransactionEvent", _tx(i, token="ß" * 20))
    for _ in range(4):
        q._retire(q._pending[0])
    q._compact()
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
