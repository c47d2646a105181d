# CustomerInformation pieces on their own: NotifyCustomerInformation parts within the
# schema's 512 characters, and the Authorization Cache entry a clear removes staying removed
# across a restart (journal replay, generation change). Portable: runs under pytest and
# under micropython (driven by test_portable_micropython.py).
import os

from firmware import compat
from firmware.auth_cache import AuthCache
from firmware.customer_info import PART, parts
from firmware.storage import Store


def _store():
    d = "/tmp/citest-" + "".join("%02x" % b for b in os.urandom(6))
    compat.makedirs(d)
    return Store(d)


def test_parts_cut_between_lines_within_512_characters():
    a, b, c = "a" * 200, "b" * 200, "c" * 200
    assert parts([a, b, c]) == [a + "\n" + b, c]
    assert parts(["x" * 511, "y"]) == ["x" * 511, "y"]
    assert parts(["x" * 510, "y"]) == ["x" * 510 + "\ny"]
    # a line longer than a part is cut inside it
    long = "".join(chr(65 + i % 26) for i in range(1100))
    got = parts(["head", long, "tail"])
    assert got == ["head", long[:512], long[512:1024], long[1024:] + "\ntail"]
    assert all(len(p) <= PART for p in got)
    # non-ASCII counts in characters, as the schema's maxLength does
    got = parts(["\u00e9" * 600])
    assert [len(p) for p in got] == [512, 88]


def test_parts_of_nothing_is_one_empty_part():
    assert parts([]) == [""]


def test_N10_cache_entry_removed_stays_removed_after_restart():
    store = _store()
    c = AuthCache(store)
    c.put("k1", {"status": "Accepted"}, now=1000)
    c.put("k2", {"status": "Blocked"}, now=1000)
    assert c.remove("k1") is True
    assert c.remove("k1") is False
    assert sorted(AuthCache(store).entries) == ["k2"]       # journal replayed
    c.flush(force=True)                                     # new generation, journal gone
    assert sorted(AuthCache(store).entries) == ["k2"]
    c.put("k3", {"status": "Accepted"}, now=1001)
    c.remove("k2")
    assert sorted(AuthCache(store).entries) == ["k3"]


def test_N10_cache_remove_when_the_journal_is_full_writes_a_snapshot():
    store = _store()
    c = AuthCache(store, max_entries=4)
    for i in range(4):
        c.put("k%d" % i, {"status": "Accepted"}, now=1000 + i)
    for i in range(4):  # entries changed in place: the journal reaches max lines
        c.put("k%d" % i, {"status": "Invalid"}, now=2000 + i)
    assert c.remove("k0") and c.remove("k1")
    assert sorted(AuthCache(store, max_entries=4).entries) == ["k2", "k3"]
