"""Authorization storage and rules in-process (CPython): local list crash recovery and hash
collisions (D01.FR.10), cache generations (C11), learn() from TransactionEvent responses
(C10.FR.05, C02.FR.03), Master Pass (C12.FR.09, C16) with the variable added to the table."""
import random

from firmware import auth_requests, local_list as LL
from firmware.auth_cache import AuthCache
from firmware.authorization import Block, token_key
from firmware.device_model import DeviceModel
from firmware.local_list import LocalList
from firmware.storage import Store


class FakeStation:
    def __init__(self, tmp_path):
        self.store = Store(str(tmp_path))
        self.dm = DeviceModel(self.store, ())
        self.rpc = type("R", (), {"register": lambda *a: None})()
        self.connected = False
        self.boot_status = None

    def on(self, *a):
        pass


def test_D01_FR_10_unfinished_differential_is_dropped(tmp_path):
    ll = LocalList(Store(str(tmp_path)))
    ll.replace([("a" * 20, {"status": "Accepted"})], 1)
    assert ll.update([("b" * 20, {"status": "Accepted"})], 2) is None
    with open(ll.path, "ab") as f:                      # power cut in the middle of version 3
        f.write(b'["%s", {"status": "Blocked"}]\n["%s", null]\n{"v": 3' % (b"c" * 20, b"a" * 20))
    ll2 = LocalList(Store(str(tmp_path)))
    assert ll2.version == 2 and ll2.count == 2
    assert ll2.lookup("a" * 20) == {"status": "Accepted"} and ll2.lookup("c" * 20) is None
    assert ll2.update([("d" * 20, {"status": "Invalid"})], 3) is None  # after the dropped tail
    ll3 = LocalList(Store(str(tmp_path)))
    assert (ll3.version, ll3.count, ll3.lookup("d" * 20)) == (3, 3, {"status": "Invalid"})


def test_D01_local_list_matches_a_model_with_hash_collisions(tmp_path, monkeypatch):
    monkeypatch.setattr(LL, "_h", lambda key: int(key[:1], 16))  # 16 buckets: many collisions
    rnd = random.Random(7)
    store = Store(str(tmp_path))
    ll = LocalList(store)
    model = {}
    keys = ["%x%019d" % (rnd.randrange(16), i) for i in range(60)]
    for v in range(1, 120):
        batch = rnd.sample(keys, rnd.randint(1, 8))
        entries = [(k, None if rnd.random() < 0.3 else {"status": rnd.choice(["Accepted", "Blocked"])})
                   for k in batch]
        if v % 40 == 1:
            entries = [(k, i) for k, i in entries if i is not None]
            ll.replace(entries, v)
            model = dict(entries)
        else:
            assert ll.update(entries, v) is None
            for k, i in entries:
                if i is None:
                    model.pop(k, None)
                else:
                    model[k] = i
        assert ll.count == len(model)
        if v % 10 == 0:
            ll = LocalList(store)                       # reboot
        for k in keys:
            assert ll.lookup(k) == model.get(k), (v, k)
    assert ll.size() < 6000                             # compaction keeps the file bounded


def test_D01_differential_update_reads_each_record_once(tmp_path, monkeypatch):
    st = FakeStation(tmp_path)
    st.rpc.frame_len = 0
    b = Block(st)
    st.blocks = {"authorization": b}
    requests = auth_requests.Block(st)  # SendLocalList's on-demand block

    def send(version, update, items):
        return requests.send_local_list({"versionNumber": version, "updateType": update,
                                         "localAuthorizationList": items})["status"]

    def item(tok, status=None):
        e = {"idToken": {"idToken": tok, "type": "ISO14443"}}
        if status:
            e["idTokenInfo"] = {"status": status}
        return e

    assert send(1, "Full", [item("T%02d" % i, "Accepted") for i in range(12)]) == "Accepted"
    reads = []
    real = LL.LocalList._read_at

    def counting(self, f, off):
        reads.append(off)
        return real(self, f, off)
    monkeypatch.setattr(LL.LocalList, "_read_at", counting)
    # 4 updated, 4 removed, 4 new: the 8 records on flash are read once each (2x before);
    # a new key's hash is not in the index, so it costs no read
    diff = ([item("T%02d" % i, "Blocked") for i in range(4)]
            + [item("T%02d" % i) for i in range(4, 8)]
            + [item("N%02d" % i, "Accepted") for i in range(4)])
    assert send(2, "Differential", diff) == "Accepted"
    assert len(reads) == 8 and len(set(reads)) == 8, reads
    assert b.list.count == 12 and b.list.version == 2
    del reads[:]
    assert send(3, "Differential", [item("T00"), item("t00", "Accepted")]) == "Failed"  # D01.FR.06
    assert len(reads) == 1 and b.list.version == 2
    monkeypatch.undo()
    assert b.local_info({"idToken": "T00", "type": "ISO14443"})[0] == {"status": "Blocked"}
    assert b.local_info({"idToken": "T05", "type": "ISO14443"})[0] is None
    assert b.local_info({"idToken": "N03", "type": "ISO14443"})[0] == {"status": "Accepted"}


def test_C11_cleared_cache_is_not_resurrected_by_a_stale_journal(tmp_path):
    store = Store(str(tmp_path))
    c = AuthCache(store)
    c.put("k1", {"status": "Accepted"})
    journal = open(store.path("authcache.jl")).read()
    c.clear()
    with open(store.path("authcache.jl"), "w") as f:    # cut between snapshot and journal removal
        f.write(journal)
    assert len(AuthCache(store)) == 0


def test_C10_FR_05_learn_from_transaction_event_response(tmp_path):
    st = FakeStation(tmp_path)
    b = Block(st)
    tok = {"idToken": "04a1b2c3", "type": "ISO14443"}
    b.learn(tok, {"status": "Blocked", "groupIdToken": {"idToken": "G", "type": "Central"}})
    info, src = b.local_info({"idToken": "04A1B2C3", "type": "ISO14443"})
    assert src == "cache" and info["status"] == "Blocked" and info["groupIdToken"]["idToken"] == "G"
    b.learn({"idToken": "", "type": "NoAuthorization"}, {"status": "Accepted"})   # C02.FR.03
    assert len(b.cache) == 1
    assert token_key(tok) != token_key({"idToken": "04A1B2C3", "type": "ISO15693"})
    raw = open(st.store.path("authcache.jl")).read()
    assert "04A1B2C3" not in raw.upper()               # C10.FR.12: only hashes on flash


def test_TC_C_14_45_49_master_pass_cannot_start_but_stops_any(tmp_path):
    st = FakeStation(tmp_path)
    b = Block(st)
    st.dm.set("AuthCtrlr", "MasterPassGroupId", "Police")
    mp = {"status": "Accepted", "groupIdToken": {"idToken": "POLICE", "type": "Central"}}
    user = {"status": "Accepted", "groupIdToken": {"idToken": "FAM", "type": "Central"}}
    assert b.is_master_pass(mp) and not b.is_master_pass(user)
    assert not b.may_start(mp) and b.may_start(user)                      # C12.FR.09, C16.FR.03
    u, m = {"idToken": "U1", "type": "ISO14443"}, {"idToken": "M1", "type": "ISO14443"}
    assert b.stop_allowed(u, user, m, mp)                                   # C16.FR.02
    assert not b.stop_allowed(u, user, m, dict(mp, status="Blocked"))
