"""Crash-point fault injection (issue #11 item 4; E11-E13, part 2 E 1.3 "nothing lost", D01
local list), shared by tests/test_power_cut_points.py and `python -m tools cutpoints`.

1. record(): one run of a full script on the power-cut double (tests/cutfs.py): boot, a
   charging session with meter values, an offline period with events queued, the drain after
   the reconnect, a local list update (SendLocalList Full, then Differential), a second session
   and a Reset (plus an auth cache snapshot; the outbox is made small enough to be compacted
   on the way). The trace numbers every create, write, sync, rename and remove.
2. For a cut before operation N, snapshot(N) rebuilds what littlefs would have kept, and
   recover() starts a station on it against the CSMS under a fresh identity, lets it boot and
   drain, and stops it.
3. problems() checks, for that N: every outbox message whose put() had returned reached the
   CSMS (answered before the cut, or sent again by the recovered station, identical); no
   (transactionId, seqNo) came with two contents across the run and the recovery; every
   transaction is complete (Started, each seqNo, Ended) and its energy never goes down; every
   document is readable; the station booted to Accepted; the local list is at least at the
   last version whose SendLocalList the station had accepted, and holds exactly that
   version's cards.
Cuts that leave the same directory share one recovery run: the station cannot tell them apart.
"""
import binascii
import hashlib
import json
import os
import threading
import time

from tests.harness import StationProc, interpreter
from tests.helpers import FAST_RECONNECT, TOKEN, go_offline, set_args, check_transactions
from tests.proxy import LinkProxy

ARGS = ["--evses", "1"] + set_args("SampledDataCtrlr.TxUpdatedInterval=1", *FAST_RECONNECT)
TX = "TransactionEvent"
# The outbox of the script's station, in bytes: small enough that the journal is compacted
# (rewritten and renamed) during the run, large enough that the offline period fits.
OUTBOX_BYTES = 3000
CARDS = ("11AA22BB", "33CC44DD", "55EE66FF")
LIST_AT = {0: set(), 1: {CARDS[0], CARDS[1]}, 2: {CARDS[1], CARDS[2]}}  # by list version


# ------------------------------------------------------------------ the trace
class Trace:
    def __init__(self, path):
        self.ops = []      # mutating operations, in order: op N is self.ops[N]
        self.puts = []     # (count, msgId, action, payload)
        self.logged = []   # (count, security log record)
        self.sent = []     # (count, frame)
        self.received = []
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                kind = rec[0]
                if kind == "put":
                    self.puts.append((rec[1], rec[2], rec[3], rec[4]))
                elif kind == "log":
                    self.logged.append((rec[1], rec[2]))
                elif kind == "tx":
                    self.sent.append((rec[1], json.loads(rec[2])))
                elif kind == "rx":
                    self.received.append((rec[1], json.loads(rec[2])))
                else:
                    self.ops.append(rec)

    def kinds(self):
        out = {}
        for op in self.ops:
            out[op[0]] = out.get(op[0], 0) + 1
        return out

    def snapshot(self, n, base=None):
        """{name: bytes} that survives a cut before operation n (ops 0..n-1 done) of a run
        that started on the files `base`."""
        files = dict(base or {})
        for op in self.ops[:n]:
            kind = op[0]
            if kind == "c":
                files.setdefault(op[1], b"")
            elif kind == "s":
                data = binascii.unhexlify(op[3])
                files[op[1]] = data if op[2] else files.get(op[1], b"") + data
            elif kind == "r":
                if op[1] in files:
                    data = files.pop(op[1])
                    if op[2] is not None:
                        files[op[2]] = data
            elif kind == "x":
                files.pop(op[1], None)
        return files

    def snapshots(self, base=None):
        """[(key, files, [N, ...])]: every cut point 0..len(ops), grouped by surviving state."""
        groups = {}
        order = []
        for n in range(len(self.ops) + 1):
            files = self.snapshot(n, base)
            h = hashlib.sha1()
            for name in sorted(files):
                h.update(name.encode() + b"\0" + files[name] + b"\0")
            key = h.hexdigest()
            if key not in groups:
                groups[key] = (files, [])
                order.append(key)
            groups[key][1].append(n)
        return [(k, groups[k][0], groups[k][1]) for k in order]


# ------------------------------------------------------------------ 1. the recorded run
def record(target, csms, workdir, identity="CUT1", outbox_bytes=OUTBOX_BYTES):
    """Run the script on the double; returns the Trace. outbox_bytes: a smaller outbox, so
    the script also cuts inside its compaction."""
    trace_path = os.path.join(workdir, "trace.jsonl")
    data = os.path.join(workdir, "orig-data")
    proxy = LinkProxy(csms.csms.port)
    launcher = interpreter(target) + ["-m", "tests.cutfs", trace_path]
    if outbox_bytes:
        launcher += ["--outbox-bytes", str(outbox_bytes)]
    st = StationProc(target, proxy.url(), identity, data, ARGS, launcher=launcher)
    c = csms.csms
    try:
        # boot
        csms.wait_for(lambda: c.calls("StatusNotification", identity), 30, "boot")
        # a charging session with meter values
        st.cmd("plug 1")
        st.cmd("tap %s" % TOKEN["idToken"])
        csms.wait_for(lambda: len([e for e in c.calls(TX, identity)
                                   if e.get("meterValue") and e["eventType"] == "Updated"]) >= 2,
                      30, "two Updated events with meter values")
        # offline: events queued, the session ends offline
        go_offline(proxy, st, 30)
        st.wait_status(lambda s: s["queue"] >= 2, 30, "Updated events queued offline")
        st.cmd("tap %s" % TOKEN["idToken"])
        st.wait_status(lambda s: s["queue"] >= 3 and s["evses"][0]["transaction"] is None, 30,
                       "Ended queued offline")
        st.cmd("unplug 1")
        # reconnect and drain
        proxy.refuse = False
        st.wait_status(lambda s: s["connected"] and s["queue"] == 0, 60, "drained")
        # a local list update
        full = {"versionNumber": 1, "updateType": "Full", "localAuthorizationList": [
            {"idToken": {"idToken": t, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}
            for t in CARDS[:2]]}
        assert csms.call(identity, "SendLocalList", full)["status"] == "Accepted"
        diff = {"versionNumber": 2, "updateType": "Differential", "localAuthorizationList": [
            {"idToken": {"idToken": CARDS[2], "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}},
            {"idToken": {"idToken": CARDS[0], "type": "ISO14443"}}]}
        assert csms.call(identity, "SendLocalList", diff)["status"] == "Accepted"
        assert st.cmd("auth flush")["ok"]  # the auth cache: snapshot, then drop its journal
        # a second session, ended by a Reset
        n = len(c.calls(TX, identity))
        st.cmd("plug 1")
        st.cmd("tap %s" % CARDS[2])
        csms.wait_for(lambda: [e for e in c.calls(TX, identity)[n:]
                               if e["transactionInfo"].get("chargingState") == "Charging"],
                      30, "second session charging")
        boots = len(c.calls("BootNotification", identity))
        assert csms.call(identity, "Reset", {"type": "Immediate"})["status"] == "Accepted"
        csms.wait_for(lambda: len(c.calls("BootNotification", identity)) > boots, 30, "reboot")
        st.cmd("unplug 1")
        st.wait_status(lambda s: s["boot"] == "Accepted" and s["connected"] and s["queue"] == 0
                       and s["evses"][0]["transaction"] is None, 60, "drained after the reset")
    finally:
        st.quit()
        proxy.stop()
    return Trace(trace_path)


# ------------------------------------------------------------------ 2. recovery
def write_files(files, d):
    os.makedirs(d)
    for name, data in files.items():
        p = os.path.join(d, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def unreadable(d):
    """Names of documents (everything but unfinished .tmp rewrites) that do not parse."""
    bad = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".tmp") or name.startswith("diag.log"):
            continue  # the flash log (firmware/log.py) is text lines, no document
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        try:
            if name.endswith(".json"):
                json.loads(data)
            else:  # journals: one JSON value per line
                for line in data.splitlines():
                    json.loads(line)
        except ValueError as e:
            bad.append("%s (%s)" % (name, e))
    return bad


def recover(target, csms, files, identity, d, outbox_bytes=OUTBOX_BYTES):
    """Start a station on `files`, let it boot and drain, stop it. Returns what it showed.
    It runs on the double too, so its own trace ("trace") can be cut again (run(nested=))."""
    write_files(files, d)
    out = {"unreadable_before": unreadable(d), "boot": None, "list_version": None,
           "listed": set(), "error": None, "trace": d + ".trace.jsonl"}
    launcher = interpreter(target) + ["-m", "tests.cutfs", out["trace"]]
    if outbox_bytes:
        launcher += ["--outbox-bytes", str(outbox_bytes)]
    st = StationProc(target, csms.csms.url(), identity, d, ARGS, launcher=launcher)
    try:
        s = st.wait_status(lambda s: s["boot"] == "Accepted" and s["connected"] and s["queue"] == 0
                           and all(e["transaction"] is None for e in s["evses"]),
                           60, "booted and drained")
        out["boot"] = s["boot"]
        out["list_version"] = csms.call(identity, "GetLocalListVersion", {})["versionNumber"]
        # which cards the station itself finds in its list (not asking the CSMS first)
        assert st.cmd("set AuthCtrlr.LocalPreAuthorize true")["ok"]
        out["listed"] = {c for c in CARDS if st.cmd("auth %s" % c).get("source") == "list"}
    except AssertionError as e:
        out["error"] = str(e)[-2000:]
    finally:
        st.quit()
    out["unreadable_after"] = unreadable(d)
    out["seclog"] = []
    for name in sorted(os.listdir(d)):
        if name.startswith("seclog.") and name.endswith(".jnl"):
            with open(os.path.join(d, name), "rb") as f:
                out["seclog"] += [json.loads(line) for line in f if line.endswith(b"\n")]
    out["frames"] = [m["frame"] for m in csms.csms.messages
                     if m["cp"] == identity and m["dir"] == "in" and m["frame"][0] == 2]
    return out


# ------------------------------------------------------------------ 3. the checks
def problems(trace, n, rec, earlier=()):
    """What went wrong for a cut before operation n of `trace`, given the recovery `rec`;
    [] if nothing. earlier: [(trace, n)] of the runs cut before this one (a cut during a
    recovery), whose promises and frames count as well."""
    history = list(earlier) + [(trace, n)]
    out = []
    if rec["error"]:
        out.append("recovery: " + rec["error"])
    if rec["boot"] != "Accepted":
        out.append("boot status %s" % rec["boot"])
    for key in ("unreadable_before", "unreadable_after"):
        if rec[key]:
            out.append("%s: %s" % (key, rec[key]))
    sent = [f for t, m in history for c, f in t.sent if c <= m]
    answered = {f[1] for t, m in history for c, f in t.received if c <= m and f[0] == 3}
    calls = {}
    for f in sent:
        if f[0] == 2:
            calls.setdefault(f[1], []).append(f)
    resent = rec["frames"]
    for t, m in history:
        for c, mid, action, payload in t.puts:
            if c > m:
                continue
            frame = [2, mid, action, payload]
            if mid in answered and frame in calls.get(mid, ()):
                continue
            if frame not in resent:
                out.append("lost: acknowledged %s %s %s" % (action, mid, json.dumps(payload)[:200]))
        for c, entry in t.logged:
            if c <= m and entry not in rec["seclog"]:
                out.append("lost: acknowledged security log record %s" % (entry,))
    events = [(0, f[3]) for f in sent if f[0] == 2 and f[2] == TX]
    events += [(0, f[3]) for f in resent if f[2] == TX]
    try:
        check_transactions(events)
    except AssertionError as e:
        out.append("transactions: %s" % e)
    accepted = [v for t, m in history for v in _accepted_list_versions(t, m)]
    if accepted and (rec["list_version"] is None or rec["list_version"] < max(accepted)):
        out.append("local list version %s after SendLocalList %d was accepted"
                   % (rec["list_version"], max(accepted)))
    if rec["list_version"] is not None and LIST_AT.get(rec["list_version"]) != rec["listed"]:
        out.append("local list version %s holds %s" % (rec["list_version"], sorted(rec["listed"])))
    return out


def _accepted_list_versions(trace, n):
    asked = {f[1]: f[3].get("versionNumber") for c, f in trace.received
             if f[0] == 2 and f[2] == "SendLocalList"}
    return [asked[f[1]] for c, f in trace.sent
            if c <= n and f[0] == 3 and f[1] in asked and f[2].get("status") == "Accepted"]


# ------------------------------------------------------------------ the whole run
class Result:
    def __init__(self, trace):
        self.trace = trace
        self.cuts = 0
        self.states = 0
        self.failed = {}   # N, or (first N, N of the recovery) for a second cut -> [problem]
        self.nested_cuts = 0
        self.nested_states = 0

    def _count(self, second, lost):
        return sum(1 for n, ps in self.failed.items() if isinstance(n, tuple) == second
                   and any(p.startswith("lost") for p in ps) == lost)

    def lost(self, second=False):
        """Cut points (second=True: second cuts during a restart) where an event was lost."""
        return self._count(second, True)

    def other(self, second=False):
        """... where something else was wrong (and nothing lost)."""
        return self._count(second, False)

    def line(self, target):
        return "%s: %d cut points (%d distinct states), %d lost, %d with other problems" % (
            target, self.cuts + self.nested_cuts, self.states + self.nested_states,
            self.lost() + self.lost(True), self.other() + self.other(True))


def sample(states, trace, k):
    """k of the distinct states: those just before and just after each TransactionEvent
    Started/Ended became durable (the put's sync, the cut right after it), then evenly spread
    ones, so a short run still cuts where a transaction begins and ends."""
    index = {}
    for i, (_, _, ns) in enumerate(states):
        for n in ns:
            index[n] = i
    chosen = []
    for c, _, action, payload in trace.puts:
        if action == TX and payload.get("eventType") in ("Started", "Ended"):
            for n in (c - 1, c):
                if n in index and index[n] not in chosen:
                    chosen.append(index[n])
    chosen = chosen[:k // 2]
    step = len(states) / float(max(1, k - len(chosen)))
    spread = [int(j * step) for j in range(len(states))]
    for i in spread + list(range(len(states))):  # then any left, if the spread collided
        if len(chosen) >= k:
            break
        if i < len(states) and i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def _restart_all(target, csms, workdir, jobs, workers, check, progress=None):
    """jobs: [(tag, files, payload)]; restarts a station on each `files` (`workers` at a
    time) and calls check(payload, recovery) under a lock. Returns {tag: recovery}."""
    lock = threading.Lock()
    queue = list(jobs)
    recs = {}

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                tag, files, payload = queue.pop(0)
            ident = "R%s-%d" % (tag, int(time.time() * 1000) % 100000)
            rec = recover(target, csms, files, ident, os.path.join(workdir, "cut%s" % tag))
            with lock:
                recs[tag] = rec
                check(payload, rec)
                if progress is not None:
                    progress(tag, payload, rec)

    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return recs


def run(target, csms, workdir, states=None, workers=2, progress=None, nested=0,
        outbox_bytes=OUTBOX_BYTES):
    """Record the script, then check every cut point, or only those of `states` of the
    distinct states (see sample()). nested: for that many of the states restarted (sampled
    the same way), cut the restart itself at every one of its operations, restart on that,
    and check again (a second power cut during the recovery). Returns a Result."""
    trace = record(target, csms, workdir, outbox_bytes=outbox_bytes)
    res = Result(trace)
    all_states = trace.snapshots()
    keep = range(len(all_states)) if states is None else sample(all_states, trace, states)
    jobs = [(str(i), all_states[i][1], all_states[i][2]) for i in keep]
    res.states = len(jobs)
    res.cuts = sum(len(ns) for _, _, ns in jobs)

    def check(ns, rec):
        for n in ns:
            ps = problems(trace, n, rec)
            if ps:
                res.failed[n] = ps

    recs = _restart_all(target, csms, workdir, jobs, workers, check, progress)
    if not nested:
        return res
    picked = sample([all_states[i] for i in keep], trace, nested)
    jobs2 = []
    for j in picked:
        tag, files, ns = jobs[j]
        rec = recs[tag]
        if rec["error"] or not os.path.exists(rec["trace"]):
            continue
        t2 = Trace(rec["trace"])
        for k, (_, files2, ns2) in enumerate(t2.snapshots(files)):
            jobs2.append(("%s.%d" % (tag, k), files2, (ns, t2, ns2)))
    res.nested_states = len(jobs2)
    res.nested_cuts = sum(len(p[0]) * len(p[2]) for _, _, p in jobs2)

    def check2(payload, rec):
        ns, t2, ns2 = payload
        for n in ns:
            for n2 in ns2:
                ps = problems(t2, n2, rec, earlier=[(trace, n)])
                if ps:
                    res.failed[(n, n2)] = ps

    _restart_all(target, csms, workdir, jobs2, workers, check2, progress)
    return res


def describe(trace, n):
    """The operation a cut at n interrupts, for failure reports."""
    if isinstance(n, tuple):
        return "%s, then op %d of the restart" % (describe(trace, n[0]), n[1])
    if n >= len(trace.ops):
        return "after the last operation"
    op = trace.ops[n]
    return " ".join(str(x) for x in op[:3]) if op[0] != "s" else "sync %s" % op[1]
