"""Helpers shared by the test modules. Test modules import from here (or from harness, proxy,
pki), never from one another; fixtures shared by several modules live in conftest.py."""
import os
import time

from host.csms import CsmsThread
from tests.harness import ROOT

TOKEN = {"idToken": "AABBCCDD", "type": "ISO14443"}


# ------------------------------------------------------------------ station arguments
def set_args(*sets):
    """["--set", s, ...] for each "Component.Variable=value" in sets."""
    args = []
    for s in sets:
        args += ["--set", s]
    return args


# Reconnect after 1 s, no random part: the back-off of part 4 §5.3 doubling as configured.
FAST_RECONNECT = ("OCPPCommCtrlr.RetryBackOffWaitMinimum=1", "OCPPCommCtrlr.RetryBackOffRandomRange=0")
FAST_RECONNECT_ARGS = set_args(*FAST_RECONNECT)
# ... and never doubling: every reconnect attempt 1 s after the previous one.
RECONNECT_EVERY_1S_ARGS = set_args(*FAST_RECONNECT, "OCPPCommCtrlr.RetryBackOffRepeatTimes=0")


# ------------------------------------------------------------------ boot
def boot(csms, station, *sets, evses=1, url=None):
    """Start a station with `evses` EVSEs and the given variable settings; return it once it
    reported every connector."""
    st = station(args=["--evses", str(evses)] + set_args(*sets), url=url)
    # one StatusNotification per connector after boot (B01.FR.05), sent one after another
    csms.wait_for(lambda: len(csms.csms.calls("StatusNotification", st.identity)) >= evses, 15, "boot")
    return st


def booted(csms, cp, n=1, timeout=20):
    """Wait until the station has been Accepted n times (StatusNotifications follow each boot)."""
    def ok():
        boots = csms.csms.calls("BootNotification", cp)
        return len(boots) >= n and csms.csms.calls("StatusNotification", cp)
    csms.wait_for(ok, timeout, "boot %d of %s" % (n, cp))


# ------------------------------------------------------------------ transaction events
def tx_events(csms, cp):
    """Payloads of every TransactionEvent CALL from `cp` (retransmissions included), in order."""
    return [m["frame"][3] for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and isinstance(m["frame"], list)
            and m["frame"][0] == 2 and m["frame"][2] == "TransactionEvent"]


def tx_event_frames(csms, cp):
    """[(time received, payload)] of every TransactionEvent CALL from `cp`, in order."""
    return [(m["t"], m["frame"][3]) for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and isinstance(m["frame"], list)
            and m["frame"][0] == 2 and m["frame"][2] == "TransactionEvent"]


def wait_event(csms, st, pred, what, timeout=10):
    """The last TransactionEvent satisfying pred, waiting up to timeout for one."""
    return csms.wait_for(lambda: [e for e in tx_events(csms, st.identity) if pred(e)], timeout, what)[-1]


def started(e):
    return e["eventType"] == "Started"


def ended(e):
    return e["eventType"] == "Ended"


def charging(e):
    return e["transactionInfo"].get("chargingState") == "Charging"


def energies(e, context=None):
    """Energy.Active.Import.Register values of an event, optionally of one reading context."""
    return [sv["value"] for mv in e.get("meterValue") or () for sv in mv["sampledValue"]
            if sv.get("measurand") == "Energy.Active.Import.Register"
            and (context is None or sv.get("context") == context)]


def energy_transfer(csms, st, evse_id=1, token="AABBCCDD"):
    """Reusable state EnergyTransferStarted: plug in, tap a card, wait for Charging."""
    n = len(tx_events(csms, st.identity))
    st.cmd("plug %d" % evse_id)
    st.cmd("tap %s" % token)
    # the transaction's first event names its EVSE; later ones only carry the transactionId
    first = csms.wait_for(lambda: [x for x in tx_events(csms, st.identity)[n:]
                                   if x.get("evse", {}).get("id") == evse_id],
                          10, "transaction on EVSE %d" % evse_id)[0]
    tid = first["transactionInfo"]["transactionId"]
    csms.wait_for(lambda: [x for x in tx_events(csms, st.identity)[n:]
                           if charging(x) and x["transactionInfo"]["transactionId"] == tid],
                  10, "charging on EVSE %d" % evse_id)
    return tid


# ------------------------------------------------------------------ status and availability
def statuses(csms, cp):
    """(evseId, connectorId, connectorStatus) of every StatusNotification from `cp`."""
    return [(s["evseId"], s["connectorId"], s["connectorStatus"])
            for s in csms.csms.calls("StatusNotification", cp)]


def wait_status(csms, cp, evse_id, status, after=0, timeout=8):
    """Wait for a StatusNotification (evse_id, connector 1, status) among those after index `after`."""
    csms.wait_for(lambda: (evse_id, 1, status) in statuses(csms, cp)[after:], timeout,
                  "EVSE %d %s" % (evse_id, status))


def change(csms, st, op, evse_id=None, connector_id=None):
    """ChangeAvailability to `op` for the station, an EVSE or a connector; the response."""
    p = {"operationalStatus": op}
    evse = evse_ref(evse_id, connector_id)
    if evse is not None:
        p["evse"] = evse
    return csms.call(st.identity, "ChangeAvailability", p)


def evse_ref(evse_id=None, connector_id=None):
    """The EVSEType of a request: None for the station, {"id"} or {"id", "connectorId"}."""
    if evse_id is None:
        return None
    ref = {"id": evse_id}
    if connector_id is not None:
        ref["connectorId"] = connector_id
    return ref


# ------------------------------------------------------------------ variables
def set_var(csms, cp, comp, var, value):
    """SetVariables of one station-level variable; its setVariableResult."""
    r = csms.call(cp, "SetVariables", {"setVariableData": [
        {"component": {"name": comp}, "variable": {"name": var}, "attributeValue": value}]})
    return r["setVariableResult"][0]


def get_var(csms, cp, comp, var):
    """GetVariables of one station-level variable; its attributeValue (None if not given)."""
    r = csms.call(cp, "GetVariables", {"getVariableData": [
        {"component": {"name": comp}, "variable": {"name": var}}]})
    return r["getVariableResult"][0].get("attributeValue")


# ------------------------------------------------------------------ TriggerMessage (F06)
def after_reply(csms, cp, reply_t, action):
    """CALLs of `action` the station sent after time reply_t."""
    return [m["frame"][3] for m in csms.csms.messages if m["cp"] == cp and m["dir"] == "in"
            and m["frame"][0] == 2 and m["frame"][2] == action and m["t"] >= reply_t]


def trigger(csms, cp, msg, evse=None):
    """TriggerMessage; (response, time the CSMS received the response)."""
    p = {"requestedMessage": msg}
    if evse is not None:
        p["evse"] = evse
    r = csms.call(cp, "TriggerMessage", p)
    # F06.FR.04: the response leaves before the triggered message; the CSMS recorded it.
    t = [m["t"] for m in csms.csms.messages if m["cp"] == cp and m["dir"] == "in"
         and m["frame"][0] == 3][-1]
    return r, t


# ------------------------------------------------------------------ security events (A04)
def sent_security_events(csms, cp):
    """Types of the SecurityEventNotifications the station sent, in order."""
    return [p["type"] for p in csms.csms.calls("SecurityEventNotification", cp)]


# ------------------------------------------------------------------ link loss
def go_offline(proxy, st, timeout=10):
    """Cut the link through the proxy, refuse reconnects, wait until the station noticed."""
    proxy.refuse = True
    proxy.cut()
    st.wait_status(lambda s: not s["connected"], timeout, "offline")


def go_offline_since(proxy, st):
    """go_offline; return the UTC time (station clock format) after which every event the
    station generates is known to be generated offline. An event generated before may still
    be delivered later, so offline checks select by timestamp, not by arrival."""
    go_offline(proxy, st)
    # The station took its clock from the CSMS at boot, so it can only lag real time (by that
    # reply's latency): events from before the cut are stamped before `t`, and after a short
    # pause everything the test makes happen is stamped after it.
    t = time.time()
    time.sleep(0.2)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


# ------------------------------------------------------------------ more CSMSs
def extra_csms(ssl_context=None):
    """A further CSMS (plain, or TLS with ssl_context) on a free loopback port."""
    t = CsmsThread(quiet=True)
    t.start(ssl_context=ssl_context)
    return t


def stop_extra_csms(t):
    """Stop a CSMS from extra_csms; fail on any schema-invalid frame it received."""
    violations = list(t.csms.schema_violations)
    t.stop()
    assert not violations, "station sent schema-invalid messages: %s" % violations


def wss_url(t):
    return "wss://127.0.0.1:%d" % t.csms.port


# ------------------------------------------------------------------ power and network loss
# Two EVSEs, a TransactionEvent Updated every second, reconnect after 1 s.
SESSION_ARGS = ["--evses", "2"] + set_args("SampledDataCtrlr.TxUpdatedInterval=1", *FAST_RECONNECT)


def energy_of(payload):
    """Every energy register reading in a TransactionEvent (measurand defaults to energy)."""
    out = []
    for mv in payload.get("meterValue") or ():
        for sv in mv["sampledValue"]:
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                out.append(sv["value"])
    return out


def check_transactions(frames):
    """The completeness / identity / order / monotonic-energy assertions over
    tx_event_frames (in the order the CSMS received them); returns {tid: {seqNo: payload}}.
    Order: a transaction's new seqNos arrive strictly increasing (a resend repeats an
    earlier frame identically), and a Started arrives only after the Ended of the previous
    transaction on the same EVSE."""
    by_tx = {}
    evse_of = {}   # tid -> evse id, from its Started
    open_on = {}   # evse id -> tid whose Started arrived and whose Ended has not
    for _, p in frames:
        tid = p["transactionInfo"]["transactionId"]
        seen = by_tx.setdefault(tid, {})
        prev = seen.get(p["seqNo"])
        if prev is not None:
            assert prev == p, "seqNo %d of %s arrived twice with different content:\n%s\n%s" % (
                p["seqNo"], tid, prev, p)
            continue
        assert not seen or p["seqNo"] > max(seen), \
            "transaction %s: seqNo %d arrived after seqNo %d" % (tid, p["seqNo"], max(seen))
        seen[p["seqNo"]] = p
        if p["eventType"] == "Started" and p.get("evse"):
            evse = p["evse"]["id"]
            evse_of[tid] = evse
            other = open_on.get(evse)
            assert other is None, "EVSE %d: Started of %s arrived before the Ended of %s" % (
                evse, tid, other)
            open_on[evse] = tid
        elif p["eventType"] == "Ended" and open_on.get(evse_of.get(tid)) == tid:
            del open_on[evse_of[tid]]
    evse_txs = {}
    for tid, seen in by_tx.items():
        seqs = sorted(seen)
        assert seqs == list(range(len(seqs))), "transaction %s: seqNos %s" % (tid, seqs)
        events = [seen[s] for s in seqs]
        assert events[0]["eventType"] == "Started", (tid, events[0])
        assert events[-1]["eventType"] == "Ended", (tid, events[-1])
        assert [e["eventType"] for e in events[1:-1]] == ["Updated"] * (len(events) - 2), tid
        assert "stoppedReason" in events[-1]["transactionInfo"]
        evse = events[0]["evse"]["id"]
        evse_txs.setdefault(evse, []).append(events)
    for evse, txs in evse_txs.items():
        txs.sort(key=lambda evs: evs[0]["timestamp"])
        last = -1.0
        for events in txs:
            for e in events:
                for wh in energy_of(e):
                    assert wh >= last, "EVSE %d energy went down: %s after %s (%s)" % (
                        evse, wh, last, e["transactionInfo"]["transactionId"])
                    last = wh
    return by_tx


class Driver:
    """Plays EV drivers on every EVSE of a station: plug, tap, charge a little, stop by a
    second tap or by unplugging, unplug, wait."""

    def __init__(self, rng, n_evses=2, tokens=("AA11BB22", "CC33DD44")):
        self.rng = rng
        self.tokens = tokens
        self.state = {}
        self.started = 0
        self.known = set()  # transaction ids the station itself reported while charging
        self.reset(n_evses)

    def reset(self, n_evses=2):
        now = time.monotonic()
        self.state = {i: ["idle", now + self.rng.uniform(0, 0.4)] for i in range(1, n_evses + 1)}

    def step(self, st):
        now = time.monotonic()
        for i, rec in self.state.items():
            phase, due = rec
            if now < due:
                continue
            tok = self.tokens[i - 1]
            if phase == "idle":
                st.cmd("plug %d" % i)
                rec[:] = ["plugged", now + self.rng.uniform(0.1, 0.3)]
            elif phase == "plugged":
                st.cmd("tap %s" % tok)
                self.started += 1
                rec[:] = ["charging", now + self.rng.uniform(0.8, 2.0)]
            elif phase == "charging":
                tid = st.status()["evses"][i - 1]["transaction"]
                if tid:
                    self.known.add(tid)
                if self.rng.random() < 0.5:
                    st.cmd("tap %s" % tok)
                    rec[:] = ["stopped", now + self.rng.uniform(0.1, 0.4)]
                else:
                    st.cmd("unplug %d" % i)
                    rec[:] = ["idle", now + self.rng.uniform(0.1, 0.4)]
            elif phase == "stopped":
                st.cmd("unplug %d" % i)
                rec[:] = ["idle", now + self.rng.uniform(0.1, 0.4)]

    def finish(self, st):
        for i in self.state:
            st.cmd("unplug %d" % i)
        self.reset(len(self.state))


def wait_drained(csms, st, timeout=30):
    return st.wait_status(lambda s: s["queue"] == 0 and s["connected"]
                          and all(e["transaction"] is None for e in s["evses"]),
                          timeout, "all transactions ended and the queue drained")


# ------------------------------------------------------------------ referenced variables (TC_B_53)
# Part 2 "Referenced Components and Variables", vendored from the spec's appendix table; see
# tests/data/README.md for its origin.
REFERENCED_TSV = os.path.join(ROOT, "tests", "data", "referenced_variables.tsv")

# Blocks A and B, plus the controllers declared now for C (authorization), E (transactions)
# J (meter values) and K (smart charging), and the charging-infrastructure components.
IMPLEMENTED = ("OCPPCommCtrlr", "DeviceDataCtrlr", "ClockCtrlr", "SecurityCtrlr", "AuthCtrlr",
               "AuthCacheCtrlr", "LocalAuthListCtrlr", "TxCtrlr", "SampledDataCtrlr",
               "AlignedDataCtrlr", "SmartChargingCtrlr", "ChargingStation", "EVSE", "Connector")


def _component_names(cell):
    # "ChargingStation/EVSE (+Connector per errata)" -> the three; "ClockCtrl" -> "ClockCtrlr"
    cell = cell.replace("(+", "/").replace(" per errata)", "")
    out = []
    for part in cell.split("/"):
        part = part.strip()
        if part.endswith("Ctrl"):
            part += "r"
        out.append(part)
    return out


def _mutabilities(cell):
    return {m for m in ("ReadOnly", "ReadWrite", "WriteOnly") if m in cell.replace(" ", "")}


def referenced():
    """(required, component, variable, instance, allowed mutabilities, dataType) rows of the
    vendored table. A missing or empty table fails the calling test: it is part of the repo."""
    assert os.path.exists(REFERENCED_TSV), "%s missing (see tests/data/README.md)" % REFERENCED_TSV
    rows = []
    with open(REFERENCED_TSV) as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 8:
                continue
            req = cols[2].strip().lower()
            required = req.startswith("yes") or req.startswith("when localauthlistavailable")
            for comp in _component_names(cols[3]):
                rows.append((required, comp, cols[4].strip(), cols[5].strip() or None,
                             _mutabilities(cols[6]), cols[7].strip()))
    assert rows, "%s has no rows" % REFERENCED_TSV
    return rows


def required_rows():
    """The referenced rows marked required for a component this firmware implements."""
    rows = [r for r in referenced() if r[0] and r[1] in IMPLEMENTED]
    assert rows, "no required rows for %s in %s" % (IMPLEMENTED, REFERENCED_TSV)
    return rows


# ------------------------------------------------------------------ in-process station
def queued_tx_events(st):
    """Payloads of the TransactionEvents pending in the station's outbox, oldest first."""
    scan = st.queue.pending()
    out = [p for _, action, p in scan if action == "TransactionEvent"]
    scan.close()
    return out


async def charging_in_process(tmp_path):
    """(station, hw, transactions block, step) of an in-process station charging on EVSE 1.
    A station whose Safety only moves when the test steps it: a board-owned stepper
    that is never started (the block then runs none of its own)."""
    import asyncio
    from firmware import safety
    from firmware.station import Station
    from firmware.stepper import Stepper
    from host.sim_board import SimBoard
    board = SimBoard(1, str(tmp_path))
    hw = board.evses[0]
    hw.safety = safety.Safety(hw)
    board.stepper = Stepper([hw.safety])
    st = Station(board, "ws://127.0.0.1:9", "STOP1")
    st.emit("start")
    now = [1000]

    async def step(n=1):
        for _ in range(n):
            now[0] += 10
            board.stepper.step(now[0])   # its events reach the block as the thread's do
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)

    hw.pilot.ev_state = "C"
    await step()
    tx = st.blocks["transactions"]
    tx._authorized(1, TOKEN, {"status": "Accepted"}, "Authorized")
    await step(3)
    assert hw.relay.closed() and tx.active(1) is not None
    return st, hw, tx, step
