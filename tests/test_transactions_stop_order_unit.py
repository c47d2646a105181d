"""The stop sequence of the transactions block in-process, on a simulated clock: the Ended
event waits for the relay; if the relay never reports open (a stalled safety loop: here
nobody steps the board-owned Safety after the stop) Ended goes after safety's bound plus
STOP_MARGIN_MS with the reading taken then, and the log says so. Issue #11 item 7."""
import asyncio

from firmware import compat, log, safety as safety_mod, transactions
from tests.helpers import charging_in_process as _charging, queued_tx_events as _events

def test_E06_ended_waits_for_the_relay_then_reads_the_register(tmp_path):
    async def scenario():
        st, hw, tx, step = await _charging(tmp_path)
        await tx.stop(1, "Remote", "RemoteStop")
        assert hw.relay.closed() and tx.active(1) is not None
        assert [e["eventType"] for e in _events(st)][-1] != "Ended"
        await step()  # safety withdraws the offer, the relay waits for the EV
        assert hw.pilot.offered == 0 and hw.relay.closed()
        assert [e["eventType"] for e in _events(st)][-1] != "Ended"
        await step(3)  # the simulated EV drops to B, safety opens
        assert not hw.relay.closed()
        e = _events(st)[-1]
        assert e["eventType"] == "Ended" and e["transactionInfo"]["stoppedReason"] == "Remote"
        assert e["meterValue"][-1]["sampledValue"][0]["value"] == round(hw.meter.energy_wh(), 2)
        await st.stop()
    asyncio.run(scenario())


def test_relay_never_reported_open_Ended_after_the_bound_and_logged(tmp_path, monkeypatch):
    lines = []
    monkeypatch.setattr(log, "error", lambda tag, msg: lines.append(msg))

    async def scenario():
        st, hw, tx, step = await _charging(tmp_path)
        await tx.stop(1, "Remote", "RemoteStop")
        t = tx.active(1)
        t0 = t["_end_ms"]
        # safety stalls: nobody steps it, the relay stays closed
        tx._check_ending(1, t, compat.ticks_add(t0, safety_mod.STOP_REACTION_MS))
        assert tx.active(1) is t and not lines
        tx._check_ending(1, t, compat.ticks_add(
            t0, safety_mod.STOP_REACTION_MS + transactions.STOP_MARGIN_MS + 10))
        assert tx.active(1) is None
        e = _events(st)[-1]
        assert e["eventType"] == "Ended" and e["triggerReason"] == "RemoteStop"
        assert lines and "still closed" in lines[0]
        await st.stop()
    asyncio.run(scenario())
