# GetTransactionStatus (E14), the one CSMS request of the transactions block: loaded on
# demand (station.ON_DEMAND) so its code takes no heap between requests. It reads the
# resident transactions block (open transactions, parked events) and the outbox.
TX = "TransactionEvent"


class Block:
    def __init__(self, station):
        self.st = station
        station.rpc.register("GetTransactionStatus", self.get_status)

    def get_status(self, payload):
        txb = self.st.blocks.get("transactions")
        tid = payload.get("transactionId")
        in_queue = False
        scan = self.st.queue.pending()
        for _, action, p in scan:
            if action == TX and (tid is None or p["transactionInfo"]["transactionId"] == tid):
                in_queue = True
                break
        scan.close()  # releases the journal handle at once
        unsent = txb._unsent if txb is not None else ()
        for p in unsent:  # parked events are still to be delivered
            in_queue = in_queue or tid is None or p["transactionInfo"]["transactionId"] == tid
        resp = {"messagesInQueue": in_queue}
        if tid is not None:
            resp["ongoingIndicator"] = txb is not None and txb.find(tid)[1] is not None
        return resp
