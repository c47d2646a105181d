"""Nothing lost on power loss (issue 4, E11/E12/E13, part 2 E 1.3): charging sessions on two
EVSEs while the simulator is SIGKILLed at seeded random moments and restarted on the same
data directory. The CSMS must end up with, for every transaction, a Started and an Ended
event and every seqNo in between; a seqNo received twice carries the identical event; the
energy register never goes down."""
import random
import time

from tests.helpers import SESSION_ARGS, Driver, check_transactions, energy_of, tx_event_frames, wait_drained


def test_power_loss_50_sessions_sigkill(csms, station, tmp_path):
    rng = random.Random(4242)
    data = str(tmp_path / "pl-data")
    ident = "PL%d" % rng.randint(100, 999)
    st = station(args=SESSION_ARGS, identity=ident, data_dir=data)
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", ident), 15, "boot")
    drv = Driver(rng)
    kills = 0
    next_kill = time.monotonic() + rng.uniform(0.5, 3.0)
    while drv.started < 50:  # no deadline: pytest-timeout ends a run that stops progressing
        drv.step(st)
        if time.monotonic() >= next_kill:
            st.kill()  # power cut at an arbitrary instant
            kills += 1
            st = station(args=SESSION_ARGS, identity=ident, data_dir=data)
            st.wait_status(lambda s: s["connected"], 15, "restart")
            drv.reset()
            next_kill = time.monotonic() + rng.uniform(0.3, 3.0)
        time.sleep(0.03)
    drv.finish(st)
    wait_drained(csms, st)
    by_tx = check_transactions(tx_event_frames(csms, ident))
    assert kills >= 15, kills
    assert len(by_tx) >= 40, len(by_tx)
    # none vanished: every transaction the station reported reached the CSMS (checked above
    # for Started, Ended and every seqNo)
    assert len(drv.known) >= 10 and drv.known <= set(by_tx), drv.known - set(by_tx)
    reasons = [max(s.items())[1]["transactionInfo"]["stoppedReason"] for s in by_tx.values()]
    assert "PowerLoss" in reasons, reasons
    # a transaction recovered at boot carries the last known register in its Ended event
    for seen in by_tx.values():
        ended = max(seen.items())[1]
        if ended["transactionInfo"]["stoppedReason"] == "PowerLoss":
            assert energy_of(ended), ended
