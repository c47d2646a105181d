"""A TransactionEvent the outbox refuses (QueueFull, or OSError from a full flash) must not
cost a seqNo nor the transaction's document (issue #11 item 3): it is parked with its seqNo
and queued, in order, once the outbox has room, also across a restart. The CSMS never sees
a seqNo gap nor a seqNo reused with other content."""
import asyncio

from firmware import transactions
from firmware.station import Station
from host.sim_board import SimBoard

SEC = "SecurityEventNotification"


def _station(d):
    return Station(SimBoard(1, d), "ws://127.0.0.1:9", "FULL1")


def _fill(st):
    """An outbox full of messages that must not be dropped: every put() raises QueueFull."""
    st.queue.max_items = st.queue.depth() + 1
    st.queue.put(SEC, {"type": "StartupOfTheDevice", "timestamp": "2026-12-02T10:00:00Z"})


def _tx_events(st):
    return [(p["eventType"], p["seqNo"]) for _, a, p in st.queue.pending() if a == "TransactionEvent"]


def _run(fn):
    async def main():
        return fn()
    return asyncio.run(main())


def test_E04_refused_ended_keeps_its_seqno_and_document_and_goes_out_later(tmp_path):
    d = str(tmp_path)

    def first_boot():
        st = _station(d)
        blk = st.blocks["transactions"]
        tx = blk._start(1, "Authorized")
        assert tx is not None and _tx_events(st) == [("Started", 0)]
        _fill(st)
        blk._event(1, tx, "Updated", "MeterValuePeriodic")
        blk._end(1, "StopAuthorized", "Local")
        assert _tx_events(st) == [("Started", 0)]
        # both refused, neither lost: the Ended is safe in the park, so the document may go
        assert st.store.exists("tx_unsent.json") and not st.store.exists("tx1.json")
        assert [(p["eventType"], p["seqNo"]) for p in blk._unsent] == [("Updated", 1), ("Ended", 2)]
    _run(first_boot)

    def second_boot():  # power cut while the outbox was full
        st = _station(d)
        blk = st.blocks["transactions"]
        assert blk.tx == {}  # the transaction is known to be over: no PowerLoss Ended
        assert len(blk._unsent) == 2
        st.queue.max_items = 500  # the CSMS took the security event
        blk._timers()
        assert _tx_events(st) == [("Started", 0), ("Updated", 1), ("Ended", 2)]
        assert not st.store.exists(transactions.UNSENT)
    _run(second_boot)
    _run(lambda: _station(d))  # a third boot finds nothing twice
    st = _run(lambda: _station(d))
    assert _tx_events(st) == [("Started", 0), ("Updated", 1), ("Ended", 2)]


def test_E04_updated_dropped_from_a_full_park_costs_no_seqno(tmp_path, monkeypatch):
    monkeypatch.setattr(transactions, "MAX_UNSENT", 1)

    def run():
        st = _station(str(tmp_path))
        blk = st.blocks["transactions"]
        tx = blk._start(1, "Authorized")
        _fill(st)
        blk._event(1, tx, "Updated", "MeterValuePeriodic")  # parked, seqNo 1
        blk._event(1, tx, "Updated", "MeterValuePeriodic")  # park full: dropped
        assert tx["seq"] == 2
        assert st.store.load("tx1.json")["seq"] == 2
        blk._end(1, "StopAuthorized", "Local")  # an Ended is parked even so
        st.queue.max_items = 500
        blk._timers()
        return _tx_events(st)
    assert _run(run) == [("Started", 0), ("Updated", 1), ("Ended", 2)]


def test_E04_full_flash_keeps_the_document_when_the_ended_cannot_be_saved(tmp_path):
    d = str(tmp_path)

    def first_boot():
        st = _station(d)
        blk = st.blocks["transactions"]
        blk._start(1, "Authorized")

        def enospc(*a, **k):
            raise OSError(28, "ENOSPC")
        st.store.append_raw = enospc
        st.store.save = enospc
        blk._end(1, "StopAuthorized", "Local")
        assert (st.store.load("tx1.json") or {}).get("seq") == 1  # the document stays,
        assert [p["eventType"] for p in blk._unsent] == ["Ended"]  # as the park is in RAM only
    _run(first_boot)

    def second_boot():  # the cut lost the RAM park: recovery ends the transaction itself
        st = _station(d)
        blk = st.blocks["transactions"]
        assert 1 in blk.tx and blk.tx[1]["seq"] == 1
        blk._end_recovered()
        ev = [(p["eventType"], p["seqNo"], p["transactionInfo"].get("stoppedReason"))
              for _, a, p in st.queue.pending() if a == "TransactionEvent"]
        assert ev == [("Started", 0, None), ("Ended", 1, "PowerLoss")]
    _run(second_boot)
