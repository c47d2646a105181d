# Power-loss recovery of the transactions block, imported at start-up only and dropped again
# (it runs once per boot; see the header of firmware/transactions.py for what a cut leaves).
# recover() rebuilds the open transactions before anything else is queued: their next seqNo
# is the highest one in the outbox or the park plus one, or the document's if that is
# higher. end_recovered() ends them once the station starts, after the parked events.
from firmware import log
from firmware.transactions import TX, UNSENT, _doc


def recover(blk):
    st = blk.st
    ev_ids = st.board.ids
    found = {}  # transactionId -> [highest seqNo queued or parked, ended, evse id]
    unsent = st.store.load(UNSENT, None) or []
    for _, action, p in st.queue.pending():
        if action != TX:
            continue
        _found(found, p)
        for i in range(len(unsent)):  # cut between put() and saving the park
            q = unsent[i]
            tid = p["transactionInfo"]["transactionId"]
            if q["seqNo"] == p.get("seqNo") and q["transactionInfo"]["transactionId"] == tid:
                unsent.pop(i)
                break
    for p in unsent:
        _found(found, p)
    blk._unsent = unsent
    if unsent:
        log.warn("tx", "%d TransactionEvents wait for room in the outbox" % len(unsent))
    docs = {}
    for evse_id in ev_ids:
        d = st.store.load(_doc(evse_id))
        if d and d.get("id"):
            docs[d["id"]] = d
    for tid, rec in found.items():
        if tid not in docs and not rec[1] and rec[2] in ev_ids:
            # cut between put(Started) and the first save of the document
            docs[tid] = {"id": tid, "seq": 0, "evse": rec[2], "evse_sent": True,
                         "state": None, "wh": None}
    for tid, d in docs.items():
        rec = found.get(tid)
        if rec is not None:
            if rec[1]:
                st.store.remove(_doc(d["evse"]))  # cut right after put(Ended)
                continue
            d["seq"] = max(d.get("seq", 0), rec[0] + 1)
        evse_id = d.get("evse")
        if evse_id not in ev_ids:
            continue
        d["auth"] = False
        d["stop_reason"] = None
        d["rsid"] = None
        blk.tx[evse_id] = d
        blk._recovered.append(evse_id)
        log.warn("tx", "EVSE %d: transaction %s was open at start-up (next seqNo %d)"
                 % (evse_id, tid, d["seq"]))


def _found(found, p):
    tid = p["transactionInfo"]["transactionId"]
    rec = found.get(tid)
    if rec is None:
        rec = found[tid] = [-1, False, None]
    rec[0] = max(rec[0], p.get("seqNo", 0))
    if p.get("eventType") == "Ended":
        rec[1] = True
    if p.get("evse"):
        rec[2] = p["evse"].get("id")


def end_recovered(blk):
    prov = blk.st.blocks.get("provisioning")
    why = getattr(prov, "reason", "PowerUp") if prov is not None else "PowerUp"
    reason = "PowerLoss" if why in ("PowerUp", "Unknown") else "Reboot"
    for evse_id in blk._recovered:
        tx = blk.tx.get(evse_id)
        if tx is None:
            continue
        tx["state"] = None  # report the state found after the cut
        stop = tx.pop("ending", None)
        if stop:  # the cut came while the stop waited for the relay: that stop ends it
            log.warn("tx", "EVSE %d: ending transaction %s stopped before the cut (%s)"
                     % (evse_id, tx["id"], stop[1]))
            blk._end(evse_id, stop[0], stop[1], id_token=stop[2], final_wh=tx.get("wh"))
        else:
            blk._end(evse_id, "AbnormalCondition", reason, final_wh=tx.get("wh"))
    blk._recovered = []
