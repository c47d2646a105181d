"""The transactions block keeps its cold paths off the heap (issue 15): the power-loss
recovery (firmware/tx_recovery, and the outbox's firmware/queue_recovery) is imported at
start-up and dropped once it has run, and GetTransactionStatus (E14) is an on-demand
block. Station on CPython and under micropython, a transaction recovered after a SIGKILL
(E11/E12: Ended with PowerLoss under the next seqNo)."""
from tests.helpers import TOKEN, ended, started, tx_events, wait_event

RECOVERY = "firmware.tx_recovery"
STATUS = "firmware.transaction_status"
QUEUE_RECOVERY = "firmware.queue_recovery"  # the outbox's journal recovery


def _modules(st):
    return set(m for m in st.cmd("modules")["modules"] if m.startswith(("firmware.", "board.")))


def test_E14_E11_recovery_not_resident_after_boot_and_get_transaction_status_on_demand(
        csms, station, tmp_path):
    data = str(tmp_path / "cold-data")
    st = station(identity="COLD1", data_dir=data)
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    st.cmd("plug 1")
    st.cmd("tap aabbccdd")
    s = wait_event(csms, st, started, "Started")
    tid = s["transactionInfo"]["transactionId"]
    wait_event(csms, st, lambda e: e["transactionInfo"].get("chargingState") == "Charging",
               "Charging")
    csms.wait_for(lambda: st.status()["queue"] == 0, 10, "events delivered before the cut")
    before = _modules(st)  # what a boot and a session keep loaded
    assert RECOVERY not in before and STATUS not in before
    st.kill()  # power cut with the transaction open

    st = station(identity="COLD1", data_dir=data)
    e = wait_event(csms, st, lambda e: ended(e) and e["transactionInfo"]["transactionId"] == tid,
                   "Ended of the recovered transaction", timeout=20)
    assert e["transactionInfo"]["stoppedReason"] == "PowerLoss"
    seqs = [x["seqNo"] for x in tx_events(csms, st.identity)
            if x["transactionInfo"]["transactionId"] == tid]
    assert e["seqNo"] == max(seqs) and sorted(set(seqs)) == list(range(e["seqNo"] + 1))
    csms.wait_for(lambda: st.status()["queue"] == 0 and st.status()["connected"], 15,
                  "outbox drained after the recovery")
    after = _modules(st)
    assert RECOVERY not in after and QUEUE_RECOVERY not in after  # ran at start-up, dropped
    assert after - before == set(), after - before

    # E14.FR.01/.06: the recovered transaction is over and nothing of it is queued
    r = csms.call(st.identity, "GetTransactionStatus", {"transactionId": tid})
    assert r == {"messagesInQueue": False, "ongoingIndicator": False}
    assert STATUS in _modules(st)  # an on-demand block: loaded for the request
    st.cmd("plug 1")
    st.cmd("tap aabbccdd")
    s = wait_event(csms, st, lambda e: started(e) and e["transactionInfo"]["transactionId"] != tid,
                   "Started after the recovery")
    assert s["seqNo"] == 0 and s["idToken"] == TOKEN
    tid2 = s["transactionInfo"]["transactionId"]
    wait_event(csms, st, lambda e: e["transactionInfo"]["transactionId"] == tid2 and
               e["transactionInfo"].get("chargingState") == "Charging", "Charging again")
    csms.wait_for(lambda: st.status()["queue"] == 0, 10, "events delivered")
    r = csms.call(st.identity, "GetTransactionStatus", {"transactionId": tid2})
    assert r == {"messagesInQueue": False, "ongoingIndicator": True}  # E14.FR.02/.05
    csms.csms.hold.add("TransactionEvent")  # the Ended stays unanswered, i.e. queued
    st.cmd("tap aabbccdd")
    csms.wait_for(lambda: [x for x in tx_events(csms, st.identity)
                           if ended(x) and x["transactionInfo"]["transactionId"] == tid2],
                  10, "Ended sent")
    r = csms.call(st.identity, "GetTransactionStatus", {})
    assert r == {"messagesInQueue": True}  # E14.FR.07
    # the block goes after its linger time, and nothing else stays with it
    csms.wait_for(lambda: STATUS not in _modules(st), 20, "transaction_status dropped")
    assert _modules(st) - before == set(), _modules(st) - before
