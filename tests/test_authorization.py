"""Authorization (C01-C16) and Local Authorization List management (D01, D02), end to end: the
station (CPython and micropython) driven through its `auth` console command, the CSMS scripting
Authorize answers and sending ClearCache / SendLocalList / GetLocalListVersion."""
import time

import pytest

from host.csms import CsmsCallError
from tests.helpers import go_offline
from tests.proxy import LinkProxy

PRE = ["--set", "AuthCtrlr.LocalPreAuthorize=true"]


def authorize_replies(table, default="Unknown"):
    """Authorize responder: idToken -> status, or -> full idTokenInfo dict."""
    def responder(cp, payload):
        v = table.get(payload["idToken"]["idToken"], default)
        return {"idTokenInfo": v if isinstance(v, dict) else {"status": v}}
    return responder


def started(csms, st):
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    return st


def authorizes(csms, st):
    return [p["idToken"]["idToken"] for p in csms.csms.calls("Authorize", st.identity)]


def auth(st, token, typ=None):
    r = st.cmd("auth %s%s" % (token, " " + typ if typ else ""))
    assert r["ok"], r
    return r


def status_of(st, token):
    return auth(st, token)["idTokenInfo"]["status"]


def send_list(csms, st, version, update, entries=None):
    payload = {"versionNumber": version, "updateType": update}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    return csms.call(st.identity, "SendLocalList", payload)["status"]


def entry(token, status=None, group=None):
    e = {"idToken": {"idToken": token, "type": "ISO14443"}}
    if status:
        e["idTokenInfo"] = {"status": status}
        if group:
            e["idTokenInfo"]["groupIdToken"] = {"idToken": group, "type": "Central"}
    return e


def list_version(csms, st):
    return csms.call(st.identity, "GetLocalListVersion", {})["versionNumber"]


def get_var(csms, st, comp, var):
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": {"name": comp}, "variable": {"name": var}}]})["getVariableResult"][0]
    assert r["attributeStatus"] == "Accepted", r
    return r["attributeValue"]


# ---------------------------------------------------------------- C01, C02: Authorize
def test_TC_C_02_06_07_56_CS_authorize_statuses_from_csms(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies(
        {"04A1B2C3": "Accepted", "BAD1": "Invalid", "BLK1": "Blocked", "EXP1": "Expired"})
    st = started(csms, station())
    # C01.FR.02 + ISO14443 UIDs travel as upper-case hex whatever the reader gave.
    r = auth(st, "04a1b2c3")
    assert r["idTokenInfo"]["status"] == "Accepted" and r["mayStart"] is True
    sent = csms.csms.calls("Authorize", st.identity)[-1]
    assert sent == {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
    for token, want in (("BAD1", "Invalid"), ("BLK1", "Blocked"), ("EXP1", "Expired"), ("NEW1", "Unknown")):
        r = auth(st, token)
        assert r["idTokenInfo"]["status"] == want and r["mayStart"] is False, r
    assert authorizes(csms, st) == ["04A1B2C3", "BAD1", "BLK1", "EXP1", "NEW1"]
    # C02: a start button (NoAuthorization) is accepted without an Authorize request.
    r = st.cmd("auth - NoAuthorization")
    assert r["idTokenInfo"]["status"] == "Accepted"
    assert len(authorizes(csms, st)) == 5
    # C01.FR.21: a token limited to EVSE 2 may not start on EVSE 1.
    csms.csms.responders["Authorize"] = authorize_replies({"EV2ONLY": {"status": "Accepted", "evseId": [2]}})
    assert st.cmd("auth EV2ONLY ISO14443 1")["mayStart"] is False
    assert st.cmd("auth EV2ONLY ISO14443 2")["mayStart"] is True


def test_C01_auth_disabled_accepts_everything(csms, station):
    st = started(csms, station(args=["--set", "AuthCtrlr.Enabled=false"]))
    assert status_of(st, "ANY1") == "Accepted"
    assert authorizes(csms, st) == []


# ---------------------------------------------------------------- C10, C12: cache
def test_TC_C_08_33_CS_cache_hit_without_authorize_when_local_pre_authorize(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({"AA01": "Accepted"})
    st = started(csms, station(args=PRE))
    assert auth(st, "AA01")["source"] == "csms"      # C10.FR.04: response stored
    r = auth(st, "aa01")                                # case-insensitive match
    assert r["source"] == "cache" and r["idTokenInfo"]["status"] == "Accepted"
    assert authorizes(csms, st) == ["AA01"]             # C12.FR.02: no second Authorize


def test_TC_C_36_CS_cache_ignored_without_local_pre_authorize(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({"AA01": "Accepted"})
    st = started(csms, station())
    for _ in range(3):
        assert status_of(st, "AA01") == "Accepted"
    assert authorizes(csms, st) == ["AA01"] * 3


def test_TC_C_09_10_11_12_57_CS_cached_not_accepted_is_rechecked(csms, station):
    table = {"INV1": "Invalid", "BLK1": "Blocked", "EXP1": "Expired"}
    csms.csms.responders["Authorize"] = authorize_replies(table)
    st = started(csms, station(args=PRE))
    for t in table:
        auth(st, t)
    # C10.FR.03 / C12.FR.05: not Accepted in the cache -> ask the CSMS again.
    for t, want in table.items():
        r = auth(st, t)
        assert r["source"] == "csms" and r["idTokenInfo"]["status"] == want
    assert authorizes(csms, st) == list(table) * 2
    # TC_C_12: the CSMS now accepts INV1; the cache learns it (C12.FR.06) and is used next time.
    table["INV1"] = "Accepted"
    assert status_of(st, "INV1") == "Accepted"
    assert auth(st, "INV1")["source"] == "cache"
    assert authorizes(csms, st).count("INV1") == 3
    # TC_C_57: AuthCacheCtrlr.DisablePostAuthorize -> the cached status stands, no Authorize.
    assert st.cmd("set AuthCacheCtrlr.DisablePostAuthorize true")["ok"]
    n = len(authorizes(csms, st))
    r = auth(st, "BLK1")
    assert r["source"] == "cache" and r["idTokenInfo"]["status"] == "Blocked"
    assert len(authorizes(csms, st)) == n


def test_TC_C_46_CS_cache_lifetime(csms, station):
    # Last-use times have 1 s resolution, so an age the station computes can be up to 1 s
    # more than the real one. Two uses USE_GAP apart are together more than LIFETIME + 1 s
    # (an entry aged from the Authorize would have expired), each alone leaves 2.4 s of
    # margin below LIFETIME for a stall of the loaded test machine.
    lifetime = 8
    use_gap = lifetime / 2 + 0.6
    csms.csms.responders["Authorize"] = authorize_replies({"LT01": "Accepted"})
    st = started(csms, station(args=PRE + ["--set", "AuthCacheCtrlr.LifeTime=%d" % lifetime]))
    auth(st, "LT01")
    time.sleep(use_gap)
    assert auth(st, "LT01")["source"] == "cache"
    time.sleep(use_gap)                                 # LifeTime + 1.2 s after the Authorize ...
    assert auth(st, "LT01")["source"] == "cache"       # C10.FR.08: ... but use_gap since last use
    time.sleep(lifetime + 1.1)
    assert auth(st, "LT01")["source"] == "csms"        # C10.FR.10: expired -> gone
    assert authorizes(csms, st) == ["LT01", "LT01"]


def test_C10_FR_13_cache_expiry_date_time(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({
        "OLD1": {"status": "Accepted", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"},
        "NEW1": {"status": "Accepted", "cacheExpiryDateTime": "2099-01-01T00:00:00Z"}})
    st = started(csms, station(args=PRE + ["--set", "AuthCacheCtrlr.LifeTime=1"]))
    auth(st, "OLD1")
    auth(st, "NEW1")
    time.sleep(1.2)
    assert auth(st, "OLD1")["source"] == "csms"
    assert auth(st, "NEW1")["source"] == "cache"       # its own expiry overrides LifeTime


def test_C10_FR_07_cache_full_evicts_invalid_then_least_recently_used(csms, station):
    table = dict(("T%02d" % i, "Accepted") for i in range(31))
    table["BAD"] = "Invalid"
    table["NEW1"] = table["NEW2"] = "Accepted"
    csms.csms.responders["Authorize"] = authorize_replies(table)
    st = started(csms, station(args=PRE))
    for t in ["T%02d" % i for i in range(31)] + ["BAD"]:
        auth(st, t)
    assert st.cmd("auth cache")["entries"] == 32
    auth(st, "NEW1")                                    # full: the Invalid entry goes first
    assert st.cmd("auth cache")["entries"] == 32
    n = len(authorizes(csms, st))
    time.sleep(1.1)                                     # last-use times have 1 s resolution
    for t in ["T%02d" % i for i in range(31) if i != 5] + ["NEW1"]:
        assert auth(st, t)["source"] == "cache", t
    assert len(authorizes(csms, st)) == n
    auth(st, "NEW2")                                    # evicts T05, the least recently used
    assert auth(st, "T05")["source"] == "csms"
    assert st.cmd("auth cache")["entries"] == 32


def test_TC_C_32_CS_cache_persistent_over_reboot(csms, station, tmp_path):
    csms.csms.responders["Authorize"] = authorize_replies({"PR01": "Accepted", "PR02": "Blocked"})
    d = str(tmp_path / "cs-persist")
    st = started(csms, station(args=PRE, data_dir=d, identity="CSAUTHP"))
    auth(st, "PR01")
    auth(st, "PR02")
    st.kill()                                           # power cut right after the answers
    csms.csms.messages.clear()
    st2 = started(csms, station(data_dir=d, identity="CSAUTHP"))
    assert st2.cmd("auth cache")["entries"] == 2
    r = auth(st2, "PR01")
    assert r["source"] == "cache" and r["idTokenInfo"]["status"] == "Accepted"
    assert authorizes(csms, st2) == []


# ---------------------------------------------------------------- C11: ClearCache
def test_TC_C_37_CS_clear_cache_accepted(csms, station, tmp_path):
    csms.csms.responders["Authorize"] = authorize_replies({"CC01": "Accepted"})
    d = str(tmp_path / "cs-clear")
    st = started(csms, station(args=PRE, data_dir=d, identity="CSAUTHC"))
    auth(st, "CC01")
    assert csms.call(st.identity, "ClearCache", {})["status"] == "Accepted"
    assert st.cmd("auth cache")["entries"] == 0
    assert auth(st, "CC01")["source"] == "csms"
    assert csms.call(st.identity, "ClearCache", {})["status"] == "Accepted"
    st.kill()                                           # cleared stays cleared after a reboot
    csms.csms.messages.clear()
    st2 = started(csms, station(data_dir=d, identity="CSAUTHC"))
    assert st2.cmd("auth cache")["entries"] == 0


def test_TC_C_38_CS_clear_cache_rejected_when_disabled(csms, station):
    st = started(csms, station(args=["--set", "AuthCacheCtrlr.Enabled=false"]))
    assert csms.call(st.identity, "ClearCache", {})["status"] == "Rejected"
    # C10.FR.11: a disabled cache learns nothing.
    auth(st, "X1")
    assert st.cmd("auth cache")["entries"] == 0


# ---------------------------------------------------------------- C13, C15: offline
def test_TC_C_21_22_23_24_25_CS_offline_local_list_has_priority(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({"LL02": "Accepted", "CA01": "Accepted"})
    proxy = LinkProxy(csms.csms.port)
    try:
        st = started(csms, station(url=proxy.url()))
        auth(st, "LL02")                                # cached Accepted ...
        auth(st, "CA01")
        assert send_list(csms, st, 1, "Full", [entry("LL01", "Accepted"), entry("LL02", "Invalid"),
                                               entry("LL03", "Blocked"), entry("LL04", "Expired")]) == "Accepted"
        go_offline(proxy, st)
        assert auth(st, "LL01")["idTokenInfo"]["status"] == "Accepted"
        r = auth(st, "LL02")                            # ... but Invalid in the list (C13.FR.01)
        assert r["source"] == "list" and r["idTokenInfo"]["status"] == "Invalid" and not r["mayStart"]
        assert status_of(st, "LL03") == "Blocked"
        assert status_of(st, "LL04") == "Expired"
        r = auth(st, "CA01")                            # C12 offline: cache with LocalAuthorizeOffline
        assert r["source"] == "cache" and r["idTokenInfo"]["status"] == "Accepted"
        assert status_of(st, "UNK1") == "Unknown"       # OfflineTxForUnknownIdEnabled false
        assert st.cmd("set AuthCtrlr.LocalAuthorizeOffline false")["ok"]
        assert status_of(st, "LL01") == "Unknown"
        assert status_of(st, "CA01") == "Unknown"
    finally:
        proxy.stop()


def test_TC_C_26_CS_offline_unknown_id(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({})
    proxy = LinkProxy(csms.csms.port)
    try:
        st = started(csms, station(url=proxy.url(), args=[
            "--set", "AuthCtrlr.OfflineTxForUnknownIdEnabled=true",
            "--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
            "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=0"]))
        go_offline(proxy, st)
        r = auth(st, "UNK1")
        assert r["idTokenInfo"]["status"] == "Accepted" and r["source"] == "offline-unknown"
        assert st.cmd("auth cache")["entries"] == 0     # C15.FR.01
        proxy.refuse = False
        st.wait_status(lambda s: s["connected"], 15, "back online")
        assert status_of(st, "UNK1") == "Unknown"       # online again: the CSMS decides
        assert authorizes(csms, st) == ["UNK1"]
    finally:
        proxy.stop()


# ---------------------------------------------------------------- C14: online local list
def test_TC_C_27_28_31_58_CS_online_local_list(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({"LL02": "Accepted"})
    st = started(csms, station(args=PRE))
    assert send_list(csms, st, 3, "Full", [entry("LL01", "Accepted"), entry("LL02", "Invalid"),
                                           entry("LL03", "Blocked")]) == "Accepted"
    r = auth(st, "LL01")
    assert r["source"] == "list" and r["idTokenInfo"]["status"] == "Accepted"   # C14.FR.02
    r = auth(st, "LL02")                                # C14.FR.03 -> Authorize; CSMS accepts
    assert r["source"] == "csms" and r["idTokenInfo"]["status"] == "Accepted"
    assert status_of(st, "LL03") == "Unknown"           # C14.FR.03 (TC_C_28/29)
    assert authorizes(csms, st) == ["LL02", "LL03"]
    # The cache learned LL02 Accepted, but the list (D01.FR.09: never changed locally) wins.
    assert auth(st, "LL02")["source"] == "csms"
    # TC_C_58: LocalAuthListCtrlr.DisablePostAuthorize -> no Authorize for non-Accepted entries.
    assert st.cmd("set LocalAuthListCtrlr.DisablePostAuthorize true")["ok"]
    r = auth(st, "LL03")
    assert r["source"] == "list" and r["idTokenInfo"]["status"] == "Blocked"
    assert len(authorizes(csms, st)) == 3


# ---------------------------------------------------------------- C09, C16: stop rules
def test_TC_C_39_04_42_CS_group_id_stop_rules(csms, station):
    g = {"idToken": "FAMILY", "type": "Central"}
    csms.csms.responders["Authorize"] = authorize_replies({
        "GA01": {"status": "Accepted", "groupIdToken": g},
        "GB01": {"status": "Accepted", "groupIdToken": g},
        "GC01": {"status": "Blocked", "groupIdToken": g},
        "OT01": {"status": "Accepted"}})
    st = started(csms, station())
    r = st.cmd("auth stop GA01 GA01")
    assert r["allowed"] is True                          # C01.FR.03a: the same token
    r = st.cmd("auth stop GA01 GB01")
    assert r["allowed"] is True                          # C09.FR.03, via Authorize (C09.FR.05)
    assert st.cmd("auth stop GA01 OT01")["allowed"] is False   # TC_C_04
    assert st.cmd("auth stop GA01 GC01")["allowed"] is False   # TC_C_42 / C09.FR.11


def test_TC_C_41_40_CS_group_stop_decided_locally(csms, station):
    g = {"idToken": "FAMILY", "type": "Central"}
    csms.csms.responders["Authorize"] = authorize_replies({
        "GA01": {"status": "Accepted", "groupIdToken": g},
        "GB01": {"status": "Accepted", "groupIdToken": g}})
    st = started(csms, station(args=PRE))
    auth(st, "GA01")
    auth(st, "GB01")
    n = len(authorizes(csms, st))
    r = st.cmd("auth stop GA01 GB01")                    # both cached: C09.FR.07, no Authorize
    assert r["allowed"] is True and r["source"] == "cache"
    assert len(authorizes(csms, st)) == n
    # TC_C_40 / TC_C_43: from the Local Authorization List.
    send_list(csms, st, 1, "Full", [entry("LA01", "Accepted", "TEAM"), entry("LB01", "Accepted", "TEAM"),
                                    entry("LC01", "Invalid", "TEAM")])
    r = st.cmd("auth stop LA01 LB01")
    assert r["allowed"] is True and r["source"] == "list"
    assert len(authorizes(csms, st)) == n
    assert st.cmd("auth stop LA01 LC01")["allowed"] is False


def test_TC_C_45_49_CS_master_pass(csms, station):
    st = started(csms, station())
    assert st.cmd("get AuthCtrlr.MasterPassGroupId")["ok"]
    assert st.cmd("set AuthCtrlr.MasterPassGroupId POLICE")["ok"]
    csms.csms.responders["Authorize"] = authorize_replies({
        "MP01": {"status": "Accepted", "groupIdToken": {"idToken": "POLICE", "type": "Central"}},
        "US01": {"status": "Accepted"}})
    r = auth(st, "MP01")
    assert r["idTokenInfo"]["status"] == "Accepted" and r["mayStart"] is False   # C16.FR.03
    assert st.cmd("auth stop US01 MP01")["allowed"] is True                         # C16.FR.02


# ---------------------------------------------------------------- D01, D02
def test_TC_D_01_02_03_04_05_08_CS_send_local_list(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({})
    st = started(csms, station(args=PRE))
    assert list_version(csms, st) == 0                  # D02.FR.02: nothing sent yet
    assert send_list(csms, st, 5, "Full", [entry("D1", "Accepted"), entry("D2", "Accepted"),
                                           entry("D3", "Blocked")]) == "Accepted"
    assert list_version(csms, st) == 5                  # TC_D_08 / D02.FR.01
    assert get_var(csms, st, "LocalAuthListCtrlr", "Entries") == "3"   # D01.FR.12
    # TC_D_02: differential add + update
    assert send_list(csms, st, 6, "Differential", [entry("D4", "Accepted"), entry("D3", "Accepted")]) == "Accepted"
    assert st.cmd("auth list")["entries"] == 4 and list_version(csms, st) == 6
    r = auth(st, "D3")
    assert r["source"] == "list" and r["idTokenInfo"]["status"] == "Accepted"
    # TC_D_03: differential remove (no idTokenInfo)
    assert send_list(csms, st, 7, "Differential", [entry("D1"), entry("D9")]) == "Accepted"
    assert st.cmd("auth list")["entries"] == 3
    assert auth(st, "D1")["source"] == "csms"
    # TC_D_05: differential without entries: only the version changes (D01.FR.05)
    assert send_list(csms, st, 8, "Differential") == "Accepted"
    r = st.cmd("auth list")
    assert {k: v for k, v in r.items() if k != "bytes"} == {"ok": True, "entries": 3, "version": 8,
                                                             "enabled": True}
    assert r["bytes"] > 0  # the three entries are still stored
    # TC_D_04: full without entries empties the list, version kept (D01.FR.04)
    assert send_list(csms, st, 10, "Full") == "Accepted"
    assert st.cmd("auth list")["entries"] == 0 and list_version(csms, st) == 10
    # D01.FR.15: a full list may carry any version, also a lower one
    assert send_list(csms, st, 2, "Full", [entry("D1", "Accepted")]) == "Accepted"
    assert list_version(csms, st) == 2


def test_TC_D_06_CS_version_mismatch_and_bad_content(csms, station):
    csms.csms.responders["Authorize"] = authorize_replies({})
    st = started(csms, station(args=PRE))
    assert send_list(csms, st, 4, "Full", [entry("V1", "Accepted")]) == "Accepted"
    assert send_list(csms, st, 4, "Differential", [entry("V2", "Accepted")]) == "VersionMismatch"
    assert send_list(csms, st, 3, "Differential", [entry("V2", "Accepted")]) == "VersionMismatch"
    assert st.cmd("auth list")["entries"] == 1 and list_version(csms, st) == 4
    # D01.FR.06 duplicates, D01.FR.18 version 0: refused, list unchanged
    assert send_list(csms, st, 5, "Differential", [entry("V2", "Accepted"), entry("v2", "Blocked")]) == "Failed"
    assert send_list(csms, st, 0, "Full", [entry("V2", "Accepted")]) == "Failed"
    assert list_version(csms, st) == 4
    # D01.FR.11: more entries than ItemsPerMessage -> CALLERROR
    items = int(get_var(csms, st, "LocalAuthListCtrlr", "ItemsPerMessage"))
    with pytest.raises(CsmsCallError) as e:
        send_list(csms, st, 5, "Full", [entry("M%03d" % i, "Accepted") for i in range(items + 1)])
    assert e.value.code == "OccurrenceConstraintViolation"
    # LocalAuthListCtrlr.Entries maxLimit: an update that would overflow the list fails whole
    v = 5
    for base in range(0, 96, items):
        n = min(items, 96 - base)
        assert send_list(csms, st, v, "Differential", [entry("F%03d" % (base + i), "Accepted")
                                                       for i in range(n)]) == "Accepted"
        v += 1
    assert st.cmd("auth list")["entries"] == 97
    assert send_list(csms, st, v, "Differential", [entry("G%03d" % i, "Accepted") for i in range(4)]) == "Failed"
    assert send_list(csms, st, v, "Differential", [entry("G%03d" % i, "Accepted") for i in range(3)]) == "Accepted"
    assert st.cmd("auth list")["entries"] == 100
    assert status_of(st, "F000") == "Accepted" and auth(st, "F095")["source"] == "list"


def test_TC_D_07_CS_local_list_persistent_over_reboot(csms, station, tmp_path):
    csms.csms.responders["Authorize"] = authorize_replies({})
    d = str(tmp_path / "cs-list")
    st = started(csms, station(data_dir=d, identity="CSAUTHL"))
    send_list(csms, st, 1, "Full", [entry("P1", "Accepted"), entry("P2", "Blocked")])
    for v in range(2, 40):                              # enough differentials to compact the file
        send_list(csms, st, v, "Differential", [entry("Q%02d" % v, "Accepted"), entry("Q%02d" % (v - 1))])
    st.kill()
    csms.csms.messages.clear()
    st2 = started(csms, station(data_dir=d, identity="CSAUTHL", args=PRE))
    assert list_version(csms, st2) == 39
    assert st2.cmd("auth list")["entries"] == 3
    assert auth(st2, "P1")["source"] == "list"
    assert auth(st2, "Q39")["source"] == "list"
    assert status_of(st2, "P2") == "Unknown" and auth(st2, "Q38")["source"] == "csms"


def test_TC_D_10_CS_get_local_list_version_disabled(csms, station):
    st = started(csms, station())
    send_list(csms, st, 3, "Full", [entry("X1", "Accepted")])
    assert st.cmd("set LocalAuthListCtrlr.Enabled false")["ok"]
    assert list_version(csms, st) == 0                  # D02.FR.03
    assert auth(st, "X1")["source"] == "csms"           # a disabled list is not consulted
