"""Nothing lost at any power cut (issue #11 item 4; DESIGN "Persistence"). SIGKILL keeps the
page cache, so test_power_loss.py only proves crash consistency; here a storage double with
littlefs semantics (tests/cutfs.py) decides what survives a cut before any create, write, sync,
rename or remove, and a station restarts on exactly that. The script (tests/cutpoints.py)
covers E11 connection loss during a transaction (TC_E_40), E12/E13 events queued offline and
delivered in order after the reconnect (TC_E_43, TC_E_44), D01 a local list that persists
(TC_D_07), B12 a Reset Immediate with a transaction open (TC_B_22). The suite checks a sample
of the cut points on both runtimes; `python -m tools cutpoints` checks every one."""
import json
import os

from firmware.storage import Store
from tests import cutfs, cutpoints

SAMPLE = 10  # distinct surviving states per runtime; each costs one station boot


def _report(res):
    lines = []
    for n, ps in sorted(res.failed.items(), key=str)[:8]:
        lines.append("cut before op %s (%s): %s" % (n, cutpoints.describe(res.trace, n),
                                                     "; ".join(p[:400] for p in ps[:3])))
    return "\n".join(lines)


def test_E11_E12_E13_D01_B12_power_cut_points_sampled(target, csms, tmp_path):
    res = cutpoints.run(target, csms, str(tmp_path), states=SAMPLE, workers=2)
    trace = res.trace
    kinds = trace.kinds()
    # the script did all its parts: writes and renames of documents, journal appends, removes
    assert all(kinds.get(k, 0) >= 5 for k in "cwsrx"), kinds
    txs = [p for _, _, a, p in trace.puts if a == "TransactionEvent"]
    assert any(p.get("offline") for p in txs), "no event was queued offline"
    assert [p["eventType"] for p in txs].count("Ended") >= 2, txs
    assert cutpoints._accepted_list_versions(trace, len(trace.ops)) == [1, 2]
    # the outbox was compacted: its journal rewritten and renamed into place
    assert ["r", "queue.jnl.tmp", "queue.jnl"] in trace.ops, "no outbox compaction"
    assert res.states == SAMPLE and res.cuts >= SAMPLE, (res.states, res.cuts)
    assert not res.failed, "%s\n%s" % (res.line(target), _report(res))


# ---------------------------------------------------------------- the double and the checks
def test_cutfs_keeps_what_littlefs_keeps(tmp_path):
    """Created files exist at once (empty); data and truncation only at a sync; rename and
    remove are atomic."""
    d = str(tmp_path / "d")
    os.makedirs(d)
    tp = str(tmp_path / "trace")
    cutfs.install_fs(d, tp)
    try:
        store = Store(d)
        store.save("a.json", {"v": 1})             # c w s r
        f = open(store.path("j.jnl"), "ab")         # c
        f.write(b"one\n")                           # w (not durable)
        f.flush()                                   # s
        f.write(b"two\n")                           # w
        marks = cutfs._count[0]                     # operations done so far
        f.close()                                   # s
        with open(store.path("b.txt"), "w") as g:   # c w s
            g.write("old")
        g = open(store.path("b.txt"), "w")          # truncation pending
        g.write("new")                              # w
        mark_new = cutfs._count[0]
        g.close()                                   # s
        store.save("a.json", {"v": 2})             # c w s r
        store.remove("b.txt")                       # x (b.txt), x (b.txt.tmp)
    finally:
        cutfs.uninstall_fs()
    tr = cutpoints.Trace(tp)
    assert [op[0] for op in tr.ops[:4]] == ["c", "w", "s", "r"]
    assert tr.snapshot(1) == {"a.json.tmp": b""}              # created, nothing synced yet
    assert tr.snapshot(3) == {"a.json.tmp": b'{"v": 1}'}      # synced, not renamed
    assert tr.snapshot(4) == {"a.json": b'{"v": 1}'}          # renamed
    assert tr.snapshot(5)["j.jnl"] == b""
    assert tr.snapshot(marks)["j.jnl"] == b"one\n"            # "two" written, not synced
    assert tr.snapshot(marks + 1)["j.jnl"] == b"one\ntwo\n"
    assert tr.snapshot(mark_new)["b.txt"] == b"old"           # open "w" truncates at the sync
    assert tr.snapshot(mark_new + 1)["b.txt"] == b"new"
    end = tr.snapshot(len(tr.ops))
    assert end == {"a.json": b'{"v": 2}', "j.jnl": b"one\ntwo\n"}, end
    # every state before the second save's rename still has {"v": 1}
    renames = [i for i, op in enumerate(tr.ops) if op[0] == "r"]
    assert json.loads(tr.snapshot(renames[1])["a.json"]) == {"v": 1}


def _trace_file(path, recs):
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return cutpoints.Trace(path)


def _recovery(frames=(), seclog=()):
    return {"error": None, "boot": "Accepted", "unreadable_before": [], "unreadable_after": [],
            "list_version": 0, "listed": set(), "frames": list(frames), "seclog": list(seclog)}


def _ev(seq, kind="Updated", **extra):
    p = {"eventType": kind, "timestamp": "2026-12-02T10:00:0%dZ" % seq, "triggerReason": "Trigger",
         "seqNo": seq, "transactionInfo": {"transactionId": "T1"}}
    if kind == "Started":
        p["evse"] = {"id": 1, "connectorId": 1}
    if kind == "Ended":
        p["transactionInfo"]["stoppedReason"] = "PowerLoss"
    p.update(extra)
    return p


def test_cut_checks_find_a_lost_event_and_a_reused_seqno(tmp_path):
    """problems() is what the cut test asserts on: it must see an acknowledged event that
    neither the CSMS answered before the cut nor the recovered station sent, and a seqNo that
    came back with other content."""
    started, upd, ended = _ev(0, "Started"), _ev(1), _ev(2, "Ended")
    tr = _trace_file(str(tmp_path / "t"), [
        ["c", "queue.jnl"], ["w", "queue.jnl", 10], ["s", "queue.jnl", 0, "00"],
        ["put", 3, "m1", "TransactionEvent", started],
        ["tx", 3, json.dumps([2, "m1", "TransactionEvent", started])],
        ["rx", 3, json.dumps([3, "m1", {}])],
        ["w", "queue.jnl", 10], ["s", "queue.jnl", 0, "00"],
        ["put", 5, "m2", "TransactionEvent", upd],
        ["log", 5, ["2026-12-02T10:00:00Z", "StartupOfTheDevice", None]],
        ["tx", 5, json.dumps([2, "m2", "TransactionEvent", upd])],
    ])
    end = [2, "e9", "TransactionEvent", ended]
    # before m2 became durable: nothing was promised beyond m1, which the CSMS answered
    assert cutpoints.problems(tr, 4, _recovery([[2, "x", "TransactionEvent", _ev(1, "Ended")]])) == []
    # after: m2 was sent but not answered, so the recovered station must send it again
    ps = cutpoints.problems(tr, 5, _recovery([end], [["2026-12-02T10:00:00Z", "StartupOfTheDevice", None]]))
    assert len(ps) == 1 and ps[0].startswith("lost: acknowledged TransactionEvent m2"), ps
    ok = cutpoints.problems(tr, 5, _recovery([[2, "m2", "TransactionEvent", upd], end],
                                             [["2026-12-02T10:00:00Z", "StartupOfTheDevice", None]]))
    assert ok == [], ok
    # the security log record acknowledged at 5 must survive
    ps = cutpoints.problems(tr, 5, _recovery([[2, "m2", "TransactionEvent", upd], end]))
    assert ps and ps[0].startswith("lost: acknowledged security log record"), ps
    # seqNo 1 sent before the cut as Updated, then again as Ended by the recovered station
    ps = cutpoints.problems(tr, 4, _recovery([[2, "m9", "TransactionEvent", _ev(1, "Ended")]]))
    assert ps == [], ps  # at 4, m2 had not been sent yet: seqNo 1 was free
    ps = cutpoints.problems(tr, 5, _recovery([[2, "m2", "TransactionEvent", upd],
                                              [2, "m9", "TransactionEvent", _ev(1, "Ended")]],
                                             [["2026-12-02T10:00:00Z", "StartupOfTheDevice", None]]))
    assert any("arrived twice with different content" in p for p in ps), ps
    # a local list whose version and cards disagree
    bad = _recovery()
    bad["list_version"], bad["listed"] = 2, {cutpoints.CARDS[0], cutpoints.CARDS[1]}
    ps = cutpoints.problems(tr, 0, bad)
    assert ps and ps[0].startswith("local list version 2 holds"), ps


def test_cut_checks_during_a_restart_count_the_first_run(tmp_path):
    """A second cut, during the restart: what the first run promised must still arrive, and
    what the restart itself got answered counts as delivered."""
    upd = _ev(0, "Started")
    first = _trace_file(str(tmp_path / "t1"), [
        ["w", "queue.jnl", 10], ["s", "queue.jnl", 0, "00"],
        ["put", 2, "m1", "TransactionEvent", upd],
        ["tx", 2, json.dumps([2, "m1", "TransactionEvent", upd])],
    ])
    again = _trace_file(str(tmp_path / "t2"), [
        ["tx", 0, json.dumps([2, "m1", "TransactionEvent", upd])],
        ["w", "queue.jnl", 10],
        ["rx", 1, json.dumps([3, "m1", {}])],
        ["s", "queue.jnl", 0, "00"],
    ])
    end = [2, "e1", "TransactionEvent", _ev(1, "Ended")]
    # cut before the restart received the answer: m1 is still owed
    ps = cutpoints.problems(again, 0, _recovery([end]), earlier=[(first, 2)])
    assert len(ps) == 1 and ps[0].startswith("lost: acknowledged TransactionEvent m1"), ps
    # cut after: the CSMS had answered m1
    assert cutpoints.problems(again, 1, _recovery([end]), earlier=[(first, 2)]) == []
