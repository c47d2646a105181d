# Functional block N, customer information part: CustomerInformation (N09 get, N10 clear),
# reported through NotifyCustomerInformation parts after the response.
#
# What this station holds about a customer is all keyed by idToken: its Authorization Cache
# entry, its Local Authorization List entry, the transactions it authorized (open, waiting
# for a start point, a cable held for it) and the TransactionEvents naming it that are not
# delivered yet. Nothing is stored by customerIdentifier, and there are no customer
# (ISO 15118 contract) certificates on this AC station: the CA certificates it holds belong
# to the CSMS and manufacturers, not to customers, so a customerCertificate finds nothing.
#
# A clear removes the cache entry, on flash before the response goes out. It keeps:
# - the Local Authorization List entry (N10.FR.03: only the CSMS changes the list, N10.FR.02);
# - an open transaction's idToken: it is what may stop that transaction (C01.FR.03a), and the
#   document goes when the transaction ends;
# - queued or parked TransactionEvents: they are billing records the CSMS has not received
#   (nothing is lost, E12); each leaves the station once the CSMS has it.
# The report says which of these it kept. Loaded on demand (station.ON_DEMAND).
from firmware import compat
from firmware.auth_cache import EXP, USED, expand, normalise, same_token, token_key

PART = 512  # NotifyCustomerInformationRequest.data maxLength
REFS = ("customerIdentifier", "idToken", "customerCertificate")
TX = "TransactionEvent"
LISTED_TX = 4  # transactionIds named in the outbox line
# Reports being sent at once; one more is Rejected (N09.FR.03). A report is a few short
# lines, but a CSMS that never answers must not pile them up. Two, so that a request coming
# while the previous report waits for the answer to its last part is not refused.
MAX_REPORTS = 2


def _status(status, reason=None, info=None):
    r = {"status": status}
    if reason:
        r["statusInfo"] = {"reasonCode": reason, "additionalInfo": info}
    return r


def _info_text(info):
    s = "status %s" % info.get("status")
    t = info.get("cacheExpiryDateTime")
    if t:
        s += ", valid until %s" % t
    g = info.get("groupIdToken")
    if g:
        s += ", group %s %s" % (g.get("type"), g.get("idToken"))
    if info.get("evseId"):
        s += ", EVSEs %s" % ",".join(str(e) for e in info["evseId"])
    if info.get("language1"):
        s += ", language %s" % info["language1"]
    return s


def _tx_data(txb, id_token):
    """N09: what the transactions block `txb` holds that names `id_token`, as [(kind, evse
    id, transactionId or count)]: "open" (a transaction it authorized or is stopping),
    "authorized" (waiting for a start point), "held" (a cable it may release), "parked"
    (TransactionEvents waiting for room in the outbox, count). Here, not in that resident
    block, as only this on-demand block asks."""
    out = []
    for evse_id, tx in txb.tx.items():
        stop = tx.get("ending")
        if same_token(tx.get("token"), id_token) or (stop and same_token(stop[2], id_token)):
            out.append(("open", evse_id, tx["id"]))
    for evse_id, p in txb._pending.items():
        if same_token(p["token"], id_token):
            out.append(("authorized", evse_id, None))
    for evse_id, t in txb._held.items():
        if same_token(t, id_token):
            out.append(("held", evse_id, None))
    n = len([p for p in txb._unsent if same_token(p.get("idToken"), id_token)])
    if n:
        out.append(("parked", None, n))
    return out


def parts(lines):
    """The text of `lines` (one per line) cut into pieces of at most PART characters,
    between lines where a line fits."""
    out = []
    cur = ""
    for ln in lines:
        while len(ln) > PART:
            if cur:
                out.append(cur)
                cur = ""
            out.append(ln[:PART])
            ln = ln[PART:]
        if not cur:
            cur = ln
        elif len(cur) + 1 + len(ln) <= PART:
            cur += "\n" + ln
        else:
            out.append(cur)
            cur = ln
    if cur or not out:
        out.append(cur)
    return out


class Block:
    def __init__(self, station):
        self.st = station
        self.reporting = 0
        station.rpc.register("CustomerInformation", self.customer_information)

    def customer_information(self, payload):
        given = [k for k in REFS if payload.get(k) is not None]
        if len(given) != 1:  # N09.FR.09
            return _status("Invalid", "MissingParam" if not given else "InvalidValue",
                           "exactly one of customerIdentifier, idToken, customerCertificate")
        report = bool(payload.get("report"))
        clear = bool(payload.get("clear"))
        if not report and not clear:  # N09.FR.07, N10.FR.07
            return _status("Rejected", "InvalidValue", "neither report nor clear")
        if self.reporting >= MAX_REPORTS:
            return _status("Rejected", "InvalidMessageSeq", "customer reports in progress")
        kind = given[0]
        if kind == "idToken":
            tok = normalise(payload["idToken"])
            who = "idToken %s %s" % (tok["type"], tok["idToken"])
            try:
                lines, removed, kept = self._token(tok, clear)
            except OSError as e:  # flash full or failing: N10.FR.05, the CSMS may ask again
                return _status("Rejected", "InternalError", "storage: %s" % (e,))
            why = "nothing stored"
        elif kind == "customerIdentifier":
            who = "customerIdentifier %s" % payload[kind]
            lines, removed, kept = [], 0, 0
            why = "this station stores nothing by customerIdentifier"
        else:
            who = "customer certificate serialNumber %s" % payload[kind].get("serialNumber")
            lines, removed, kept = [], 0, 0
            why = "this station holds no customer (ISO 15118 contract) certificates"
        if report:
            if lines:
                # N09.FR.05, N10.FR.03
                lines.insert(0, "Customer information%s for %s:" % (" cleared" if clear else "", who))
            else:  # N09.FR.06, N10.FR.04
                lines = ["No customer information found for %s: %s" % (who, why)]
        else:  # N10.FR.06: one message saying the data was cleared
            s = "Customer information for %s cleared: " % who
            if not removed and not kept:
                s += "nothing was stored"
            else:
                s += "%d removed" % removed
                if kept:
                    s += ", %d kept (Local Authorization List entries, open transactions and " \
                         "undelivered TransactionEvents stay)" % kept
            lines = [s]
        request_id = payload.get("requestId")

        async def after():
            await self.send(request_id, parts(lines))

        return {"status": "Accepted"}, after

    def _token(self, tok, clear):
        """(report lines, entries removed, entries kept) about `tok`; with `clear` the
        removable ones are removed first."""
        lines = []
        removed = kept = 0
        st = self.st
        key = token_key(tok)
        auth = st.blocks.get("authorization")
        if auth is not None:
            rec = auth.cache.entries.get(key)
            if rec is not None:
                s = "Authorization Cache: %s, last used %s" % (
                    _info_text(expand(rec)), compat.iso8601(rec[USED]))
                life = st.dm.get("AuthCacheCtrlr", "LifeTime") or 0
                if compat.now() >= (rec[EXP] or rec[USED] + life):
                    s += " (expired)"
                if clear:
                    auth.cache.remove(key)
                    removed += 1
                    s = "Removed: " + s
                lines.append(s)
            info = auth.list.lookup(key)
            if info is not None:
                s = "Local Authorization List (version %d): %s" % (auth.list.version, _info_text(info))
                if clear:
                    kept += 1
                    s = "Kept: %s; only the CSMS changes this list (N10.FR.02)" % s
                lines.append(s)
        txb = st.blocks.get("transactions")
        if txb is not None:
            for what, evse_id, ref in _tx_data(txb, tok):
                if what == "open":
                    s = "Transaction %s on EVSE %d: open, this idToken authorized or stops it" % (ref, evse_id)
                elif what == "authorized":
                    s = "EVSE %d: authorized by this idToken, no transaction started yet" % evse_id
                elif what == "held":
                    s = "EVSE %d: cable held until this idToken is presented again" % evse_id
                else:
                    s = "%d TransactionEvents naming this idToken wait for room in the outbox" % ref
                if clear:
                    kept += 1
                    s = "Kept: %s (needed until the session ends and the CSMS has its events)" % s
                lines.append(s)
        n, tids, more = self._queued(tok)
        if n:
            s = "Outbox: %d TransactionEvents naming this idToken, of transaction(s) %s%s" % (
                n, ", ".join(tids), " and others" if more else "")
            if clear:
                kept += 1
                s = "Kept: %s; they leave the station once the CSMS has them" % s
            lines.append(s)
        return lines, removed, kept

    def _queued(self, tok):
        """(number of queued TransactionEvents carrying `tok`, the first LISTED_TX of their
        transactionIds, whether there are more)."""
        n = 0
        tids = []
        more = False
        scan = self.st.queue.pending()
        try:
            for _, action, p in scan:  # no await inside: one open journal handle
                if action == TX and same_token(p.get("idToken"), tok):
                    n += 1
                    tid = p["transactionInfo"]["transactionId"]
                    if tid in tids:
                        continue
                    if len(tids) < LISTED_TX:
                        tids.append(tid)
                    else:
                        more = True
        finally:
            scan.close()
        return n, tids, more

    async def send(self, request_id, texts):
        """NotifyCustomerInformation parts: seqNo from 0, tbc on all but the last."""
        self.reporting += 1
        try:
            last = len(texts) - 1
            for seq in range(len(texts)):
                p = {"data": texts[seq], "seqNo": seq, "generatedAt": compat.iso8601(),
                     "requestId": request_id}
                if seq < last:
                    p["tbc"] = True
                texts[seq] = None
                await self.st.call("NotifyCustomerInformation", p)
        except Exception as e:  # offline or refused: the CSMS may ask again
            self.st.log("warn", "NotifyCustomerInformation %s stopped: %r" % (request_id, e))
        finally:
            self.reporting -= 1
