# Transactions block (OCPP 2.0.1 E01-E14): when a transaction starts and ends (TxStartPoint,
# TxStopPoint), what every TransactionEvent carries (seqNo, triggerReason, chargingState,
# evse, idToken, remoteStartId, meterValue, offline, stoppedReason), E05 invalid tokens,
# EVConnectionTimeOut, StopTxOnEVSideDisconnect, and recovery after a power cut. Cold parts
# live elsewhere so they take no heap between uses: the recovery in firmware/tx_recovery
# (imported at start-up only), GetTransactionStatus in the on-demand block
# firmware/transaction_status, and what names an idToken (N09) in firmware/customer_info.
#
# Every TransactionEvent goes through station.queue.put(), which persists it before it
# returns; the EVSE's small state document (tx<N>.json) is written right after, without
# yielding. A power cut between the two leaves the newer seqNo in the queue, so start-up
# re-derives the next seqNo from both. An event the outbox refuses is parked with its
# seqNo (tx_unsent.json) and queued later, see _enqueue. Transactions still open at
# start-up are ended with stoppedReason PowerLoss (Reboot after a local/remote reset): the
# EV and its authorization may be gone, and a new session needs a new authorization anyway.
#
# Energy stops before the transaction ends (E06/E07 "stops the energy transfer, then sends
# Ended"): a stop while the relay is closed first withdraws permission (safety stops the PWM
# at once and opens the relay when the EV leaves C, at the latest after STOP_REACTION_MS),
# and the Ended event, with its Transaction.End reading, is built only once the relay is
# open, so no energy flows after the billed reading. The stop (trigger, stoppedReason,
# idToken) is written to the document before permission is withdrawn: a power cut while
# waiting ends the transaction on restart with that reason, under the seqNo never used.
#
# Public API for other blocks:
#   tx.active(evse_id) -> dict | None          the open transaction ({"id", "seq", ...})
#   await tx.remote_start(evse_id, id_token, remote_start_id) -> transactionId | None
#   await tx.stop(evse_id, stopped_reason, trigger_reason)
#   tx.trigger_event(evse_id)                  TriggerMessage(TransactionEvent)
#   tx.meter_event(evse_id, tx_id, trigger, meter_values)   used by meter_values
#   tx.idle()
# Station events: "tx_started" (evse_id, tx), "tx_ended" (evse_id, tx), "idle".
from firmware import compat, log, safety
from firmware.auth_cache import normalise, same_token
from firmware.msg_queue import QueueFull
from firmware.safety import POLICY

TX = "TransactionEvent"
TXC = "TxCtrlr"
CONNECTED = ("B", "C", "D")
HOUSEKEEPING_MS = 250
# How much longer than safety's EV reaction bound a stop waits for the relay to open
# before it sends Ended anyway (a stalled safety loop; welding is safety's fault path).
STOP_MARGIN_MS = 1000
UNSENT = "tx_unsent.json"   # TransactionEvents the outbox refused, see _enqueue
MAX_UNSENT = 8
UNSENT_RETRY_MS = 5000
_DROPPED, _QUEUED, _PARKED, _PARKED_IN_RAM = 0, 1, 2, 3
# Replug-only faults end the session; the others suspend it until they clear.
FAULT_REASON = {"rcd": "GroundFault"}


def _doc(evse_id):
    return "tx%d.json" % evse_id


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self.tx = {}          # evse id -> open transaction dict (persisted without "_" keys)
        self._pending = {}    # evse id -> authorization waiting for a start point
        self._recovered = []  # transactions found open at start-up
        self._held = {}       # evse id -> token that releases a cable left locked (E09.FR.03)
        self._unsent = []     # TransactionEvent payloads the outbox refused, in order
        self._unsent_ms = None  # when _flush_unsent last ran
        self._closing = False   # a Reset is rebooting the station: no new authorization
        station.queue.on_reply(TX, self._on_reply)
        station.on("start", self._on_start)
        station.on("pilot", self._on_pilot)
        station.on("relay", self._on_relay)
        station.on("offer", self._on_offer)
        station.on("fault", self._on_fault)
        station.on("fault_cleared", self._on_fault_cleared)
        station.on("token", self._token)
        station.on("reset", self._on_reset)
        self._recover()

    # ---------------------------------------------------------------- helpers
    def _evse(self):
        return self.st.blocks.get("evse")

    def _mv(self):
        return self.st.blocks.get("meter_values")

    def _start_points(self):
        return self.dm.get_list(TXC, "TxStartPoint")

    def _stop_points(self):
        return self.dm.get_list(TXC, "TxStopPoint")

    def _connected(self, evse_id):
        ev = self._evse()
        return ev is not None and ev.connected(evse_id)

    def _energy(self, evse_id):
        mv = self._mv()
        return mv.energy_wh(evse_id) if mv is not None else 0.0

    def online(self):
        return self.st.online()

    def _permit(self, evse_id):
        tx = self.tx.get(evse_id)
        ok = (tx is not None and tx.get("auth") and not tx.get("hold")) or \
            (tx is None and evse_id in self._pending)
        ev = self._evse()
        if ev is not None:
            ev.permit(evse_id, ok)

    def charging_state(self, evse_id, tx):
        ev = self._evse()
        if ev is None or not ev.connected(evse_id):
            return "Idle"
        if ev.relay_closed(evse_id):
            # stopping, or a charging limit below 6 A: the offer is withdrawn and the EV has
            # not opened its S2 yet
            return "SuspendedEVSE" if tx.get("ending") or ev.limited(evse_id) else "Charging"
        if tx.get("auth"):
            e = ev.get(evse_id)
            if tx.get("hold") or ev.blocked(evse_id) or not e.available or \
                    ev.limited(evse_id):
                return "SuspendedEVSE"
            return "SuspendedEV"
        return "EVConnected"

    # ---------------------------------------------------------------- API
    def active(self, evse_id):
        return self.tx.get(evse_id)

    def idle(self):
        return not self.tx

    def find(self, transaction_id):
        for evse_id, tx in self.tx.items():
            if tx["id"] == transaction_id:
                return evse_id, tx
        return None, None

    async def remote_start(self, evse_id, id_token, remote_start_id):
        """F01/F02: authorize `id_token` on `evse_id` (AuthorizeRemoteStart) after the
        response went out; returns the transactionId already running there, if any."""
        tx = self.tx.get(evse_id)
        self.st.spawn(self._remote_authorize(evse_id, id_token, remote_start_id))
        return tx["id"] if tx else None

    async def _remote_authorize(self, evse_id, id_token, rsid):
        await compat.sleep_ms(0)
        info = {"status": "Accepted"}
        auth = self.st.blocks.get("authorization")
        if auth is not None and self.dm.get("AuthCtrlr", "AuthorizeRemoteStart"):
            info = await auth.authorize(id_token)
        if info.get("status") == "Accepted":
            self._authorized(evse_id, id_token, info, "RemoteStart", rsid)
        else:
            log.info("tx", "remote start on EVSE %d not authorized: %s" % (evse_id, info.get("status")))

    async def stop(self, evse_id, stopped_reason, trigger_reason):
        """End the authorization (Remote / Local: the transaction ends when TxStopPoint
        says so, F03) or, for any other reason (ImmediateReset, ...), the transaction."""
        if evse_id not in self.tx:
            if self._pending.pop(evse_id, None) is not None:
                self._permit(evse_id)
            return False
        if stopped_reason in ("Remote", "Local"):
            self._end_authorization(evse_id, trigger_reason, stopped_reason)
        else:
            self._end(evse_id, trigger_reason, stopped_reason)
        return True

    def trigger_event(self, evse_id):
        """TriggerMessage(TransactionEvent): an Updated event with triggerReason Trigger."""
        tx = self.tx.get(evse_id)
        if tx is None:
            return False
        mv = self._mv()
        self._event(evse_id, tx, "Updated", "Trigger",
                    meter=mv.triggered(evse_id) if mv is not None else None)
        return True

    def meter_event(self, evse_id, tx_id, trigger, meter_values):
        tx = self.tx.get(evse_id)
        if tx is not None and tx["id"] == tx_id and meter_values:
            self._event(evse_id, tx, "Updated", trigger, meter=meter_values)

    # ---------------------------------------------------------------- events out
    def _event(self, evse_id, tx, event_type, trigger, id_token=None, meter=None,
               stopped_reason=None, force_state=None):
        info = {"transactionId": tx["id"]}
        state = force_state or self.charging_state(evse_id, tx)
        # TriggerMessage(TransactionEvent) reports the current state even if unchanged (F06)
        if state != tx.get("state") or event_type == "Started" or trigger == "Trigger":
            info["chargingState"] = state
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        if tx.get("rsid") is not None:
            info["remoteStartId"] = tx["rsid"]
        p = {"eventType": event_type, "timestamp": compat.iso8601(), "triggerReason": trigger,
             "seqNo": tx["seq"], "transactionInfo": info}
        if not self.online():
            p["offline"] = True
        if not tx.get("evse_sent"):
            p["evse"] = {"id": evse_id, "connectorId": 1}
        if id_token:
            p["idToken"] = id_token
        if meter:
            p["meterValue"] = meter
        kept = self._enqueue(p)
        if kept == _DROPPED:
            return  # the transaction is as before: the next event reuses this seqNo
        # the event is queued or parked: what it reported is now the CSMS's view
        if "chargingState" in info:
            tx["state"] = state
        tx["rsid"] = None
        tx["evse_sent"] = True
        # no await between put() and this save: see the header comment
        tx["seq"] += 1
        tx["wh"] = self._energy(evse_id)
        if event_type == "Ended" and kept != _PARKED_IN_RAM:
            self.st.store.remove(_doc(evse_id))
        elif event_type != "Ended":
            self._save(evse_id, tx)

    # An event the outbox refused (QueueFull, or OSError from a full flash) is parked in
    # UNSENT, with its seqNo, and put again in order every UNSENT_RETRY_MS: the CSMS sees it
    # late but sees it, with no seqNo gap and no seqNo reused. While a transaction has
    # parked events every later event is parked behind them (order across transactions);
    # only an Updated that finds the park full is dropped, and then it consumes no seqNo.
    def _enqueue(self, p):
        tid = p["transactionInfo"]["transactionId"]
        why = "earlier TransactionEvents wait"
        if self._unsent:
            self._flush_unsent()
        # while anything is parked every event is parked behind it: a later transaction's
        # Started must not overtake an earlier one's Ended (delivery in order, E12)
        if not self._unsent:
            try:
                self.st.queue.put(TX, p)
                return _QUEUED
            except (QueueFull, OSError) as e:
                why = repr(e)
        if p["eventType"] == "Updated" and len(self._unsent) >= MAX_UNSENT:
            log.error("tx", "TransactionEvent Updated of %s dropped (seqNo %d stays free): %s"
                      % (tid, p["seqNo"], why))
            return _DROPPED
        self._unsent.append(p)
        log.error("tx", "TransactionEvent %s seqNo %d of %s not queued (%s): kept, and retried"
                  % (p["eventType"], p["seqNo"], tid, why))
        return _PARKED if self._save_unsent() else _PARKED_IN_RAM

    def _save_unsent(self):
        try:
            if self._unsent:
                self.st.store.save(UNSENT, self._unsent)
            else:
                self.st.store.remove(UNSENT)
            return True
        except OSError as e:
            log.error("tx", "cannot save the parked TransactionEvents: %r" % e)
            return False

    def _flush_unsent(self):
        n = 0
        while self._unsent:
            try:
                self.st.queue.put(TX, self._unsent[0])
            except (QueueFull, OSError):
                break
            p = self._unsent.pop(0)
            n += 1
            if p.get("eventType") == "Ended":
                self._ended_queued(p["transactionInfo"]["transactionId"])
        if n:
            self._save_unsent()  # no await since put(): see the header comment
            log.info("tx", "%d parked TransactionEvents queued, %d still waiting"
                     % (n, len(self._unsent)))

    def _ended_queued(self, tid):
        """An Ended parked only in RAM kept its transaction's document (a restart then ends
        the transaction itself); once queued, the document goes unless a later transaction
        on that EVSE has replaced it. Without this the next boot sent a second Ended."""
        for evse_id in self.st.board.ids:
            d = self.st.store.load(_doc(evse_id))
            if d and d.get("id") == tid:
                self.st.store.remove(_doc(evse_id))

    def _save(self, evse_id, tx):
        doc = {}
        for k in tx:
            if not k.startswith("_"):
                doc[k] = tx[k]
        self.st.store.save(_doc(evse_id), doc)

    def _start(self, evse_id, trigger):
        if evse_id in self.tx:
            return self.tx[evse_id]
        if self._closing:
            return None  # the reboot would end it at once with PowerLoss/Reboot
        ev = self._evse()
        if ev is not None and not ev.get(evse_id).available:
            return None  # Unavailable (G03/G04): no new transaction, e.g. at EVConnected
        tx = {"id": compat.uuid4(), "seq": 0, "evse": evse_id, "token": None, "info": None,
              "auth": False, "state": None, "evse_sent": False,
              "wh": self._energy(evse_id), "rsid": None, "stop_reason": None,
              "_plugged": self._connected(evse_id), "_auth_ms": None,
              "_offer": ev.offered(evse_id) if ev is not None else 0}
        pend = self._pending.pop(evse_id, None)
        tok = None
        if pend is not None:
            tok = pend["token"]
            tx["token"], tx["info"], tx["auth"] = tok, pend["info"], True
            tx["rsid"] = pend.get("rsid")
            tx["_rsid"] = tx["rsid"]  # rsid is cleared once reported; this stays (smart charging)
            tx["_auth_ms"] = pend["ms"]
        self.tx[evse_id] = tx
        mv = self._mv()
        log.info("tx", "EVSE %d transaction %s started (%s)" % (evse_id, tx["id"], trigger))
        self._event(evse_id, tx, "Started", trigger, id_token=tok,
                    meter=mv.started(evse_id) if mv is not None else None)
        self._permit(evse_id)
        self.st.emit("tx_started", evse_id, tx)
        return tx

    def _end(self, evse_id, trigger, reason, id_token=None, final_wh=None, state=None):
        """End the transaction: at once when no energy flows, else once the relay is open
        (see the header comment). A second stop while waiting changes nothing."""
        tx = self.tx.get(evse_id)
        if tx is None:
            return
        if tx.get("ending"):
            self._check_ending(evse_id, tx)
            return
        reason = tx.get("stop_reason") or reason
        tx["auth"] = False
        ev = self._evse()
        if ev is None or not ev.relay_closed(evse_id):
            self._finish(evse_id, tx, trigger, reason, id_token, final_wh, state)
            return
        tx["ending"] = [trigger, reason, id_token]
        tx["stop_reason"] = reason  # no new authorization takes this EVSE meanwhile
        tx["_end_ms"] = compat.ticks_ms()
        tx["_end_state"] = state
        self._save(evse_id, tx)  # before the offer goes: a cut from here on ends it on restart
        log.info("tx", "EVSE %d stopping (%s): waiting for the relay to open" % (evse_id, reason))
        self._permit(evse_id)

    def _check_ending(self, evse_id, tx, now=None):
        """Send the Ended of a stopping transaction once its relay is open, or anyway after
        safety's bound plus a margin (reported: energy may still flow)."""
        ev = self._evse()
        if ev is not None and ev.relay_closed(evse_id):
            now = compat.ticks_ms() if now is None else now
            t0 = tx.get("_end_ms")
            if t0 is None:
                tx["_end_ms"] = t0 = now
            waited = compat.ticks_diff(now, t0)
            if waited <= safety.STOP_REACTION_MS + STOP_MARGIN_MS:
                return
            log.error("tx", "EVSE %d relay still closed %d ms after the stop: Ended sent with "
                      "the reading taken now" % (evse_id, waited))
        trigger, reason, tok = tx["ending"]
        self._finish(evse_id, tx, trigger, reason, tok, None, tx.get("_end_state"))

    def _finish(self, evse_id, tx, trigger, reason, id_token, final_wh, state):
        if state is None and self._connected(evse_id):
            state = "EVConnected"
        mv = self._mv()
        meter = mv.ended(evse_id, final_wh) if mv is not None else None
        self._event(evse_id, tx, "Ended", trigger, id_token=id_token, meter=meter,
                    stopped_reason=reason, force_state=state)
        del self.tx[evse_id]
        ev = self._evse()
        if ev is not None and ev.get(evse_id).held:
            self._held[evse_id] = tx["token"]
        log.info("tx", "EVSE %d transaction %s ended (%s, %s)" % (evse_id, tx["id"], trigger, reason))
        self._permit(evse_id)
        self.st.emit("tx_ended", evse_id, tx)
        if not self.tx:
            self.st.emit("idle")

    def _update(self, evse_id, trigger="ChargingStateChanged"):
        """Report a charging-state change (E01.FR.18); with TxStopPoint EnergyTransfer the
        end of charging ends the transaction (E06.FR.07)."""
        tx = self.tx.get(evse_id)
        if tx is None:
            return
        if tx.get("ending"):
            self._check_ending(evse_id, tx)  # the Ended event reports the new state
            return
        state = self.charging_state(evse_id, tx)
        if state == tx.get("state"):
            return
        if tx.get("state") == "Charging" and "EnergyTransfer" in self._stop_points():
            self._end(evse_id, trigger, "StoppedByEV" if tx.get("auth") else "Local")
            return
        self._event(evse_id, tx, "Updated", trigger)

    # ---------------------------------------------------------------- authorization
    def _authorized(self, evse_id, id_token, info, trigger, rsid=None):
        if self._closing:
            log.info("tx", "authorization on EVSE %d ignored: the station is resetting" % evse_id)
            return
        tx = self.tx.get(evse_id)
        now = compat.ticks_ms()
        if tx is not None:
            tx["token"], tx["info"], tx["auth"], tx["hold"] = id_token, info, True, False
            tx["_auth_ms"] = now
            tx.pop("inv_wh", None)
            if rsid is not None:
                tx["rsid"] = rsid
            self._permit(evse_id)
            self._event(evse_id, tx, "Updated", trigger, id_token=id_token)
            return
        self._pending[evse_id] = {"token": id_token, "info": info, "rsid": rsid, "ms": now,
                                  "trigger": trigger}
        self._permit(evse_id)
        sp = self._start_points()
        if "Authorized" in sp or (self._connected(evse_id) and
                                  ("PowerPathClosed" in sp or "EVConnected" in sp)):
            self._start(evse_id, trigger)

    def _end_authorization(self, evse_id, trigger, reason, id_token=None, state=None):
        """The driver or the CSMS ended the authorization (E06.FR.03/06, E07, F03; E05.FR.09/10
        for an invalid token): the transaction ends when TxStopPoint says so, else an Updated
        event reports it (with chargingState `state` when given)."""
        tx = self.tx.get(evse_id)
        if tx is None or tx.get("ending"):
            return  # ending already: its first stop reason stands
        tx["auth"] = False
        stop = self._stop_points()
        if "Authorized" in stop or "PowerPathClosed" in stop or "EnergyTransfer" in stop:
            self._end(evse_id, trigger, reason, id_token=id_token)
            return
        tx["stop_reason"] = reason
        self._permit(evse_id)
        self._event(evse_id, tx, "Updated", trigger, id_token=id_token, force_state=state)

    async def _token(self, tok):
        tok = normalise(tok)
        auth = self.st.blocks.get("authorization")
        ev = self._evse()
        if ev is None:
            return
        for i in list(self._held):
            if not ev.get(i).held:
                del self._held[i]  # the hold ended another way (a new session took the cable)
            elif same_token(self._held[i], tok):
                del self._held[i]
                return ev.release(i)
        busy = [i for i in ev.ids() if (i in self.tx and self.tx[i].get("auth")) or i in self._pending]
        for i in busy:  # the token that started it may always stop it (C01.FR.03a)
            start_tok = self.tx[i]["token"] if i in self.tx else self._pending[i]["token"]
            if same_token(start_tok, tok):
                ev.release(i)
                return self._local_stop(i, tok)
        free = [i for i in ev.ids() if i not in busy and ev.get(i).available
                and not ev.blocked(i) and not (i in self.tx and self.tx[i].get("stop_reason"))]
        if not free:
            for i in busy:
                if auth is None or i not in self.tx:
                    continue
                tx = self.tx[i]
                ok, info = await auth.authorize_stop(tx["token"], tx["info"], tok)
                if ok and i in self.tx and self.tx[i] is tx:
                    return self._local_stop(i, tok)
            log.info("tx", "token ignored: no free EVSE")
            return
        target = free[0]
        for i in free:
            if ev.connected(i):
                target = i
                break
        info = {"status": "Accepted"} if auth is None else await auth.authorize(tok)
        if self._closing:
            return  # a Reset came while we waited for the CSMS (B11/B12)
        if auth is not None and info.get("status") == "Accepted" and auth.is_master_pass(info):
            for i in busy:  # C16: without a UI a Master Pass stops every transaction
                if i in self.tx:
                    self._end(i, "StopAuthorized", "MasterPass", id_token=tok)
            return
        if auth is not None and not auth.may_start(info, target):
            log.info("tx", "token not accepted (%s)" % info.get("status"))
            return  # E02.FR.20: no event
        if target in self._pending or (target in self.tx and self.tx[target].get("auth")) \
                or not ev.get(target).available:
            return  # changed while we waited for the CSMS
        self._authorized(target, tok, info, "Authorized")

    def _local_stop(self, evse_id, tok):
        if evse_id not in self.tx:
            self._pending.pop(evse_id, None)
            self._permit(evse_id)
            return
        self._end_authorization(evse_id, "StopAuthorized", "Local", id_token=tok)

    def _on_reply(self, payload, resp):
        """TransactionEventResponse: update the cache (C10.FR.05), E05 invalid idToken."""
        info = resp.get("idTokenInfo") if isinstance(resp, dict) else None
        tok = payload.get("idToken")
        if not info or not tok:
            return
        auth = self.st.blocks.get("authorization")
        if auth is not None:
            auth.learn(tok, info)
        if info.get("status") == "Accepted":
            return
        evse_id, tx = self.find(payload["transactionInfo"]["transactionId"])
        if tx is None or not tx.get("auth") or not same_token(tx.get("token"), tok):
            return
        self._invalid(evse_id, tx)

    def _invalid(self, evse_id, tx):
        tx["info"] = None
        if self.dm.get(TXC, "StopTxOnInvalidId"):
            self._end_authorization(evse_id, "Deauthorized", "DeAuthorized", state="EVConnected")
            return
        limit = self.dm.get(TXC, "MaxEnergyOnInvalidId")
        if limit > 0:
            tx["inv_wh"] = self._energy(evse_id)  # E05.FR.03: charge on up to the limit
            self._save(evse_id, tx)
            return
        self._hold(evse_id, tx)

    def _hold(self, evse_id, tx):
        tx["hold"] = True  # E05.FR.02
        self._permit(evse_id)
        self._event(evse_id, tx, "Updated", "ChargingStateChanged", force_state="SuspendedEVSE")

    # ---------------------------------------------------------------- hardware events
    def _on_pilot(self, evse_id, old, new):
        was = old in CONNECTED
        now = new in CONNECTED
        tx = self.tx.get(evse_id)
        if now and not was:
            if tx is not None:
                tx["evse_sent"] = False  # E01.FR.16
                tx["_plugged"] = True
                self._event(evse_id, tx, "Updated", "CablePluggedIn")
                return
            sp = self._start_points()
            pend = self._pending.get(evse_id)
            if "EVConnected" in sp:
                self._start(evse_id, "CablePluggedIn")
            elif "PowerPathClosed" in sp and pend is not None:
                # the authorization came first: it is what started the session (F02.FR.21)
                self._start(evse_id, pend.get("trigger") or "Authorized")
            return
        if was and not now:
            if tx is None:
                return
            stop = self._stop_points()
            if "EVConnected" in stop or "PowerPathClosed" in stop or \
                    self.dm.get(TXC, "StopTxOnEVSideDisconnect"):
                self._end(evse_id, "EVCommunicationLost", "EVDisconnected")  # E06.FR.02, E09
            else:
                self._event(evse_id, tx, "Updated", "EVCommunicationLost")  # E10 suspend
            return
        self._update(evse_id)

    def _on_relay(self, evse_id, closed):
        tx = self.tx.get(evse_id)
        if closed and tx is None and evse_id in self._pending and \
                "EnergyTransfer" in self._start_points():
            self._start(evse_id, "ChargingStateChanged")  # E01.FR.06
            return
        self._update(evse_id)

    def _on_offer(self, evse_id, amps):
        """The pilot offer changed: a limit below 6 A suspends (ChargingStateChanged, via
        _update); a rate change of more than LimitChangeSignificance percent while charging
        is reported with ChargingRateChanged (K11.FR.04, K13.FR.03)."""
        tx = self.tx.get(evse_id)
        if tx is None:
            return
        old = tx.get("_offer")
        tx["_offer"] = amps
        # a new rate that also changed the charging state (the offer reached the pilot and the
        # EV reacted before this ran) is that state change: reported by _update
        if old and amps and tx.get("state") == "Charging" and not tx.get("ending") \
                and self.charging_state(evse_id, tx) == "Charging":
            sig = self.dm.get("SmartChargingCtrlr", "LimitChangeSignificance")
            if abs(amps - old) * 100.0 > (sig or 0) * old:
                self._event(evse_id, tx, "Updated", "ChargingRateChanged")
                return
        self._update(evse_id)

    def _on_fault(self, evse_id, name):
        tx = self.tx.get(evse_id)
        blocks, replug, _ = POLICY.get(name, (True, False, 0))
        if tx is None or not blocks:
            return
        if replug:
            self._end(evse_id, "AbnormalCondition", FAULT_REASON.get(name, "Other"))  # E06.FR.16
        else:
            self._event(evse_id, tx, "Updated", "AbnormalCondition")

    def _on_fault_cleared(self, evse_id, name):
        self._update(evse_id)

    def _on_reset(self, kind):
        # Both kinds reboot once the listeners are done: Immediate ends the transactions now
        # (B11), OnIdle comes only once they ended (B12; until then availability keeps the
        # EVSEs Unavailable). A late authorization must not start a session that the reboot
        # would end at once, so from here on nothing starts (remote starts included).
        self._closing = True
        if kind == "Immediate" and self.tx:
            return self._end_all("ResetCommand", "ImmediateReset")
        return None

    async def _end_all(self, trigger, reason):
        # the station stops the energy: a connected EV is left in EVConnected (TC_B_22)
        for evse_id in list(self.tx):
            self._end(evse_id, trigger, reason,
                      state="EVConnected" if self._connected(evse_id) else None)
        # the reset waits (up to its hook time) for the relays; an EV that does not react
        # is ended on restart from the persisted stop
        while self.stopping():
            await compat.sleep_ms(20)

    def stopping(self):
        for tx in self.tx.values():
            if tx.get("ending"):
                return True
        return False

    # ---------------------------------------------------------------- timers
    def _on_start(self):
        self._flush_unsent()  # parked events go before the Ended of a recovered transaction
        self._end_recovered()
        self.st.spawn(self._housekeeping())

    async def _housekeeping(self):
        while True:
            await compat.sleep_ms(HOUSEKEEPING_MS)
            try:
                self._timers()
            except Exception as e:
                log.exc("tx", "housekeeping", e)

    def _timers(self):
        now = compat.ticks_ms()
        if self._unsent and (self._unsent_ms is None or
                             compat.ticks_diff(now, self._unsent_ms) >= UNSENT_RETRY_MS):
            self._unsent_ms = now
            self._flush_unsent()
        if not self._pending and not self.tx:
            return  # no session: nothing to time out (runs every HOUSEKEEPING_MS)
        now = compat.ticks_ms()
        timeout_ms = self.dm.get(TXC, "EVConnectionTimeOut") * 1000
        for evse_id in list(self._pending):
            p = self._pending[evse_id]
            if not self._connected(evse_id) and compat.ticks_diff(now, p["ms"]) > timeout_ms:
                log.info("tx", "EVSE %d authorization expired: no cable" % evse_id)
                del self._pending[evse_id]
                self._permit(evse_id)
        for evse_id in list(self.tx):
            tx = self.tx[evse_id]
            if tx.get("ending"):
                self._check_ending(evse_id, tx, now)
                continue
            if self._connected(evse_id):
                tx["_plugged"] = True
            elif tx.get("auth") and not tx.get("_plugged") and tx.get("_auth_ms") is not None \
                    and compat.ticks_diff(now, tx["_auth_ms"]) > timeout_ms:
                self._end(evse_id, "EVConnectTimeout", "Timeout")  # E03.FR.05
                continue
            inv = tx.get("inv_wh")
            if inv is not None and not tx.get("hold"):
                limit = self.dm.get(TXC, "MaxEnergyOnInvalidId")
                if self._energy(evse_id) - inv >= limit:
                    self._hold(evse_id, tx)

    # ---------------------------------------------------------------- power-loss recovery
    # in firmware/tx_recovery, imported for each of its two steps and dropped again: it runs
    # once per boot and need not stay resident
    def _recover(self):
        self._recovery("recover")

    def _end_recovered(self):
        if self._recovered:
            self._recovery("end_recovered")

    def _recovery(self, step):
        from firmware import tx_recovery
        try:
            getattr(tx_recovery, step)(self)
        finally:
            compat.unload("firmware.tx_recovery")
