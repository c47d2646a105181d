# Start-up recovery of the outbox (firmware/msg_queue): rebuilds the RAM index of the pending
# messages (key, offset, length) from the journal, skipping corrupt records and stopping at
# a record torn by a power cut. Imported for that once per boot and dropped again.
import json

from firmware import log, msg_queue


def recover(q):
    key = msg_queue._key  # looked up here: the index must use the module's current one
    store = q.store
    store.recover_tmp(msg_queue.JOURNAL)  # an interrupted _compact
    size = 0
    torn = False
    f = None
    try:
        f = store.open(msg_queue.JOURNAL, "rb")
    except OSError:
        pass
    try:
        for off, line in store.lines(msg_queue.JOURNAL):
            size = off + len(line)
            torn = not line.endswith(b"\n")
            if torn:
                break
            try:
                rec = json.loads(line)
                if rec[0] == "a":
                    q._keys.append(key(rec[1]))
                    q._offs.append(off)
                    q._lens.append(len(line))
                    q._live += len(line)
                elif rec[0] == "d":
                    # an int is a journal written before "d" carried the messageId
                    i = q._find(rec[1], f) if isinstance(rec[1], str) else \
                        (q._offs.index(rec[1]) if rec[1] in q._offs else None)
                    if i is not None:
                        q._drop(i)
            except (ValueError, IndexError, TypeError, KeyError):
                log.warn("queue", "skipping corrupt journal record at %d" % off)
    finally:
        if f is not None:
            f.close()
    q._size = size
    # a record torn by a power cut was never acknowledged; the next append terminates
    # it first, so the next record starts on a fresh line
    q._torn = torn
    if q._offs:
        log.info("queue", "recovered %d undelivered messages" % len(q._offs))
    elif q._size:
        q._reset()
