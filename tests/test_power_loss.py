"""Nothing lost on power loss (issue 4, E11/E12/E13, part 2 E 1.3): charging sessions on two
EVSEs while the simulator is SIGKILLed at seeded random moments and restarted on the same
data directory. The CSMS must end up with, for every transaction, a Started and an Ended
event and every seqNo in between; a seqNo received twice carries the identical event; the
energy register never goes down."""
import random
import time

SESSION_ARGS = [
    "--evses", "2",
    "--set", "SampledDataCtrlr.TxUpdatedInterval=1",
    "--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
    "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=0",
]


def tx_frames(csms, cp):
    """[(time received, payload)] of every TransactionEvent CALL from `cp`, in order."""
    return [(m["t"], m["frame"][3]) for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and isinstance(m["frame"], list)
            and m["frame"][0] == 2 and m["frame"][2] == "TransactionEvent"]


def energy_of(payload):
    out = []
    for mv in payload.get("meterValue") or ():
        for sv in mv["sampledValue"]:
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                out.append(sv["value"])
    return out


def check_transactions(frames):
    """The completeness / identity / monotonic-energy assertions; returns {tid: [payloads]}."""
    by_tx = {}
    for _, p in frames:
        tid = p["transactionInfo"]["transactionId"]
        seen = by_tx.setdefault(tid, {})
        prev = seen.get(p["seqNo"])
        if prev is not None:
            assert prev == p, "seqNo %d of %s arrived twice with different content:\n%s\n%s" % (
                p["seqNo"], tid, prev, p)
        seen[p["seqNo"]] = p
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


def test_power_loss_50_sessions_sigkill(csms, station, tmp_path):
    rng = random.Random(4242)
    data = str(tmp_path / "pl-data")
    ident = "PL%d" % rng.randint(100, 999)
    st = station(args=SESSION_ARGS, identity=ident, data_dir=data)
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", ident), 15, "boot")
    drv = Driver(rng)
    kills = 0
    next_kill = time.monotonic() + rng.uniform(0.5, 3.0)
    deadline = time.monotonic() + 80
    while drv.started < 50:
        assert time.monotonic() < deadline, "too slow: %d sessions" % drv.started
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
    by_tx = check_transactions(tx_frames(csms, ident))
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
