"""Parked TransactionEvents (the outbox refused them) and a Reset, in-process on a stepped
Safety: an Ended parked only in RAM is not ended a second time after the next boot; a later
transaction's events never overtake an earlier one's parked Ended; a late Authorize reply
after Reset Immediate starts no new transaction. Issue #11 items 3/4 (review findings)."""
import asyncio
import os

from firmware.msg_queue import QueueFull
from firmware.station import Station
from host.sim_board import SimBoard
from tests.helpers import charging_in_process as _charging, queued_tx_events as _events

OTHER = {"idToken": "55667788", "type": "ISO14443"}


def _deliver_all(q):
    while q._offs:
        scan = q.pending()
        mid = next(scan)[0]
        scan.close()
        q._done(("TransactionEvent", {}, mid), {}, None)  # the CSMS answered


def test_E12_ended_parked_in_ram_is_not_sent_again_after_restart(tmp_path):
    async def scenario():
        st, hw, tx, step = await _charging(tmp_path)
        hw.pilot.ev_state = "B"
        await step(3)
        q = st.queue
        real_put, real_save = q.put, st.store.save

        def full(action, payload):
            raise OSError(28, "ENOSPC")

        def save(name, obj):
            if name == "tx_unsent.json":
                raise OSError(28, "ENOSPC")
            return real_save(name, obj)

        q.put, st.store.save = full, save
        await tx.stop(1, "Other", "AbnormalCondition")
        await step(3)
        assert [p["eventType"] for p in tx._unsent] == ["Ended"] and tx.active(1) is None
        q.put, st.store.save = real_put, real_save
        tx._unsent_ms = None
        tx._timers()  # the park is flushed into the outbox
        assert [e["eventType"] for e in _events(st)][-1] == "Ended"
        _deliver_all(q)
        assert "tx1.json" not in os.listdir(str(tmp_path))
        await st.stop()
        st2 = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "STOP1")
        st2.emit("start")
        await asyncio.sleep(0.05)
        again = [(e["seqNo"], e["eventType"]) for e in _events(st2)]
        await st2.stop()
        assert again == [], "a second Ended after the restart: %s" % again
    asyncio.run(scenario())


def test_E12_later_transaction_does_not_overtake_a_parked_ended(tmp_path):
    async def scenario():
        st, hw, tx, step = await _charging(tmp_path)
        hw.pilot.ev_state = "B"
        await step(3)
        q = st.queue
        real_put = q.put

        def full(action, payload):
            raise QueueFull("full")

        q.put = full
        await tx.stop(1, "Other", "AbnormalCondition")
        await step(3)
        q.put = real_put  # a delivery made room, before the park's retry is due
        tx._authorized(1, OTHER, {"status": "Accepted"}, "Authorized")
        await step(3)
        tx._unsent_ms = None
        tx._timers()
        evs = _events(st)
        await st.stop()
        order = [(e["transactionInfo"]["transactionId"], e["eventType"]) for e in evs]
        first = order[0][0]
        ended = order.index((first, "Ended"))
        later = [i for i, (t, _) in enumerate(order) if t != first]
        assert later and min(later) > ended, order
    asyncio.run(scenario())


def test_B11_late_authorize_after_reset_immediate_starts_nothing(tmp_path):
    async def scenario():
        st, hw, tx, step = await _charging(tmp_path)
        tx.tx[1]["auth"] = False  # open but not authorized (as if started on EVConnected)
        auth = st.blocks["authorization"]
        gate = asyncio.Event()

        async def slow(tok, *a, **k):
            await gate.wait()
            return {"status": "Accepted"}

        auth.authorize = slow
        tap = asyncio.ensure_future(tx._token({"idToken": "11223344", "type": "ISO14443"}))
        await asyncio.sleep(0)  # the tap waits for its Authorize reply
        reset = asyncio.ensure_future(tx._on_reset("Immediate"))
        hw.pilot.ev_state = "B"
        await step(5)
        await reset
        assert tx.active(1) is None
        gate.set()  # the reply comes before the reboot
        await tap
        await step(3)
        tx._authorized(1, OTHER, {"status": "Accepted"}, "RemoteStart", 7)
        await step(3)
        kinds = [e["eventType"] for e in _events(st)]
        relay = hw.relay.closed()
        await st.stop()
        assert kinds.count("Started") == 1 and kinds[-1] == "Ended", kinds
        assert tx.active(1) is None and not relay
    asyncio.run(scenario())
