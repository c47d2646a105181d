"""CustomerInformation (N09 get, N10 clear) end to end, on CPython and micropython: the CSMS
puts an idToken into the Authorization Cache (Authorize) and the Local Authorization List
(SendLocalList), a card starts a transaction, and CustomerInformation reports / clears what
the station holds about it through NotifyCustomerInformation parts."""
from tests.helpers import TOKEN, boot, energy_transfer, set_args, tx_events, wait_drained

PRE = ("AuthCtrlr.LocalPreAuthorize=true",)
EXPIRY = "2099-01-01T00:00:00.000Z"
CARD = TOKEN["idToken"]


def accept_with_expiry(cp, payload):
    return {"idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": EXPIRY,
                            "groupIdToken": {"idToken": "FLEET7", "type": "Central"}}}


def tx_reply(cp, payload):
    return accept_with_expiry(cp, payload) if payload.get("idToken") else {}


def cache_card(csms, st, card=CARD):
    """The CSMS accepts every card with an expiry and a group (Authorize and TransactionEvent
    answers alike, so the cache keeps them); `card` is put in the cache."""
    csms.csms.responders["Authorize"] = accept_with_expiry
    csms.csms.responders["TransactionEvent"] = tx_reply
    r = st.cmd("auth %s" % card)
    assert r["ok"] and r["source"] == "csms", r


def list_card(csms, st, version=1, card=CARD):
    r = csms.call(st.identity, "SendLocalList", {
        "versionNumber": version, "updateType": "Full", "localAuthorizationList": [
            {"idToken": {"idToken": card, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}]})
    assert r["status"] == "Accepted", r


def cache_entries(st):
    return st.cmd("auth cache")["entries"]


def notifies(csms, st, request_id):
    return [p for p in csms.csms.calls("NotifyCustomerInformation", st.identity)
            if p["requestId"] == request_id]


def customer_information(csms, st, request_id, report=True, clear=False, **ref):
    """The CustomerInformation status and, when Accepted, the NotifyCustomerInformation
    parts of the request (all of them: up to the one without tbc)."""
    p = {"requestId": request_id, "report": report, "clear": clear}
    p.update(ref)
    r = csms.call(st.identity, "CustomerInformation", p)
    if r["status"] != "Accepted":
        return r, None
    uid = "csms-%d" % csms.csms._uids
    got = csms.wait_for(lambda: [x for x in notifies(csms, st, request_id) if not x.get("tbc")],
                        15, "last NotifyCustomerInformation of request %d" % request_id)
    assert len(got) == 1
    parts = notifies(csms, st, request_id)
    # seqNo from 0, tbc on all but the last (the last has none, i.e. false)
    assert [x["seqNo"] for x in parts] == list(range(len(parts)))
    assert all(x.get("tbc") is True for x in parts[:-1])
    # part 2 "CustomerInformation -> NotifyCustomerInformation": the response goes first
    msgs = [m for m in csms.csms.messages if m["cp"] == st.identity and m["dir"] == "in"]
    i_resp = [i for i, m in enumerate(msgs) if m["frame"][0] == 3 and m["frame"][1] == uid][0]
    i_first = [i for i, m in enumerate(msgs) if m["frame"][0] == 2
               and m["frame"][2] == "NotifyCustomerInformation"
               and m["frame"][3]["requestId"] == request_id][0]
    assert i_resp < i_first
    return r, parts


def text(parts):
    return "".join(x["data"] for x in parts)


def by_token(card=CARD):
    return {"idToken": {"idToken": card, "type": "ISO14443"}}


# ---------------------------------------------------------------- N09: get
def test_TC_N_27_CS_N09_FR_02_05_report_cache_list_and_transaction(csms, station):
    st = boot(csms, station, *PRE)
    cache_card(csms, st)
    list_card(csms, st)
    tid = energy_transfer(csms, st, token=CARD)   # State is Authorized (local), charging
    # ISO14443 UIDs compare as upper-case hex: the CSMS may name the card in lower case
    r, parts = customer_information(csms, st, 27, idToken={"idToken": CARD.lower(), "type": "ISO14443"})
    assert r["status"] == "Accepted"
    data = text(parts)
    assert all(x["data"] for x in parts)  # TC_N_27_CS: data not empty
    assert "idToken ISO14443 %s" % CARD in data
    assert "Authorization Cache: status Accepted, valid until 2099-01-01T00:00:00" in data
    assert "group Central FLEET7" in data
    assert "Local Authorization List (version 1): status Accepted" in data
    assert "Transaction %s on EVSE 1: open" % tid in data
    assert "Removed" not in data and "Kept" not in data
    # a report alone changes nothing
    assert cache_entries(st) == 1
    assert st.cmd("auth list")["entries"] == 1


def test_TC_N_28_CS_N09_FR_06_report_no_data(csms, station):
    st = boot(csms, station, *PRE)
    cache_card(csms, st)
    # Memory state: the CSMS cleared the customer information of the card first
    r, _ = customer_information(csms, st, 1, report=False, clear=True, **by_token())
    assert r["status"] == "Accepted"
    r, parts = customer_information(csms, st, 28, **by_token())
    assert r["status"] == "Accepted"
    assert len(parts) == 1 and "tbc" not in parts[0]
    assert parts[0]["data"] == "No customer information found for idToken ISO14443 %s: " \
                               "nothing stored" % CARD
    # another card's data is not this card's
    cache_card(csms, st, "CAFE0001")
    r, parts = customer_information(csms, st, 29, **by_token())
    assert parts[0]["data"].startswith("No customer information found")


def test_TC_N_29_CS_N09_FR_09_no_or_several_references_invalid(csms, station):
    st = boot(csms, station)
    r, _ = customer_information(csms, st, 1)
    assert r["status"] == "Invalid" and r["statusInfo"]["reasonCode"] == "MissingParam"
    r, _ = customer_information(csms, st, 2, customerIdentifier="C-1", **by_token())
    assert r["status"] == "Invalid"
    r, _ = customer_information(csms, st, 3, clear=True, customerIdentifier="C-1",
                                customerCertificate={"hashAlgorithm": "SHA256", "issuerNameHash": "aa",
                                                     "issuerKeyHash": "bb", "serialNumber": "01"})
    assert r["status"] == "Invalid"
    assert csms.csms.calls("NotifyCustomerInformation", st.identity) == []


def test_N09_FR_07_N10_FR_07_neither_report_nor_clear_rejected(csms, station):
    st = boot(csms, station, *PRE)
    cache_card(csms, st)
    r, _ = customer_information(csms, st, 7, report=False, clear=False, **by_token())
    assert r["status"] == "Rejected"
    assert csms.csms.calls("NotifyCustomerInformation", st.identity) == []
    assert cache_entries(st) == 1


def test_N09_FR_03_third_request_while_two_reports_wait_rejected(csms, station):
    st = boot(csms, station, "OCPPCommCtrlr.MessageTimeout[Default]=3")
    csms.csms.hold.add("NotifyCustomerInformation")   # parts stay unanswered: the reports wait
    for rid in (1, 2):
        r = csms.call(st.identity, "CustomerInformation",
                      dict(requestId=rid, report=True, clear=False, **by_token()))
        assert r["status"] == "Accepted"
    csms.wait_for(lambda: notifies(csms, st, 1), 10, "first report's part")
    r = csms.call(st.identity, "CustomerInformation", dict(requestId=3, report=True, clear=False, **by_token()))
    assert r["status"] == "Rejected"
    # the unanswered parts time out: the reports are over, the block is dropped, requests go again
    csms.wait_for(lambda: notifies(csms, st, 2), 10, "second report's part")
    csms.csms.hold.discard("NotifyCustomerInformation")
    csms.wait_for(lambda: "firmware.customer_info" not in st.cmd("modules")["modules"], 20,
                  "customer_info dropped")
    r, parts = customer_information(csms, st, 4, **by_token())
    assert r["status"] == "Accepted" and len(parts) == 1
    assert notifies(csms, st, 3) == []


def test_N09_customer_certificate_none_held(csms, station):
    st = boot(csms, station)
    cert = {"hashAlgorithm": "SHA256", "issuerNameHash": "a" * 64, "issuerKeyHash": "b" * 64,
            "serialNumber": "1f"}
    r, parts = customer_information(csms, st, 9, customerCertificate=cert)
    assert r["status"] == "Accepted" and len(parts) == 1
    assert parts[0]["data"].startswith("No customer information found for customer certificate "
                                       "serialNumber 1f: ")


# ---------------------------------------------------------------- N10: clear
def test_TC_N_30_CS_N10_FR_01_03_clear_and_report_except_local_list(csms, station, tmp_path):
    d = str(tmp_path / "cs-n30")
    st = station(args=["--evses", "1"] + set_args(*PRE), data_dir=d, identity="CSN30")
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    cache_card(csms, st)
    cache_card(csms, st, "CAFE0001")   # another customer's entry stays
    list_card(csms, st)
    assert cache_entries(st) == 2
    r, parts = customer_information(csms, st, 30, clear=True, **by_token())
    assert r["status"] == "Accepted"
    data = text(parts)
    assert all(x["data"] for x in parts)
    assert "Customer information cleared for idToken ISO14443 %s" % CARD in data
    assert "Removed: Authorization Cache: status Accepted" in data
    assert "Kept: Local Authorization List (version 1)" in data
    assert cache_entries(st) == 1
    # removed on flash: a power cut right after the response does not bring it back
    st.kill()
    csms.csms.messages.clear()
    st = station(args=["--evses", "1"] + set_args(*PRE), data_dir=d, identity="CSN30")
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "reboot")
    assert cache_entries(st) == 1
    assert st.cmd("auth list")["entries"] == 1
    # step 5: a report afterwards finds only what a clear keeps
    r, parts = customer_information(csms, st, 31, **by_token())
    assert r["status"] == "Accepted"
    data = text(parts)
    assert "Authorization Cache" not in data and "Local Authorization List (version 1)" in data
    # and the other customer's entry is still there
    r, parts = customer_information(csms, st, 32, **by_token("CAFE0001"))
    assert "Authorization Cache: status Accepted" in text(parts)


def test_TC_N_31_CS_N10_FR_04_clear_and_report_no_data(csms, station):
    st = boot(csms, station)
    r, parts = customer_information(csms, st, 31, clear=True, **by_token())
    assert r["status"] == "Accepted"
    assert len(parts) == 1 and "tbc" not in parts[0]
    assert parts[0]["data"].startswith("No customer information found for idToken ISO14443 %s" % CARD)


def test_TC_N_32_CS_N10_FR_06_clear_without_report_sends_one_cleared_message(csms, station):
    st = boot(csms, station, *PRE)
    # as TC_N_32_CS: nothing stored about the card
    r, parts = customer_information(csms, st, 32, report=False, clear=True, **by_token())
    assert r["status"] == "Accepted"
    assert len(parts) == 1 and "tbc" not in parts[0]
    assert parts[0]["data"] == "Customer information for idToken ISO14443 %s cleared: " \
                               "nothing was stored" % CARD
    # with a cache entry: removed, and the message says so without reporting the data
    cache_card(csms, st)
    r, parts = customer_information(csms, st, 33, report=False, clear=True, **by_token())
    assert len(parts) == 1
    assert parts[0]["data"] == "Customer information for idToken ISO14443 %s cleared: " \
                               "1 removed" % CARD
    assert cache_entries(st) == 0


def test_TC_N_62_CS_customer_identifier_nothing_stored(csms, station):
    # This station stores nothing by customerIdentifier (no way to store one exists), so the
    # test case's precondition cannot be set up: both steps find no data.
    st = boot(csms, station)
    for rid, clear in ((62, True), (63, False)):
        r, parts = customer_information(csms, st, rid, clear=clear, customerIdentifier="CUST-0042")
        assert r["status"] == "Accepted" and len(parts) == 1
        assert parts[0]["data"] == "No customer information found for customerIdentifier " \
                                   "CUST-0042: this station stores nothing by customerIdentifier"


def test_N10_clear_keeps_undelivered_transaction_events(csms, station):
    # The Started event (carrying the card) stays unanswered, so it sits in the outbox while
    # the CSMS clears the customer: it is reported as kept and then delivered unchanged.
    st = boot(csms, station, *PRE, "OCPPCommCtrlr.MessageTimeout[Default]=3",
              "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=1")
    cache_card(csms, st)
    csms.csms.hold.add("TransactionEvent")
    st.cmd("plug 1")
    st.cmd("tap %s" % CARD)
    first = csms.wait_for(lambda: [e for e in tx_events(csms, st.identity) if e.get("idToken")],
                          10, "Started with the card")[0]
    tid = first["transactionInfo"]["transactionId"]
    assert st.status()["queue"] >= 1
    r, parts = customer_information(csms, st, 40, clear=True, **by_token())
    data = text(parts)
    assert "Removed: Authorization Cache" in data
    assert "Kept: Transaction %s on EVSE 1: open" % tid in data
    assert "Kept: Outbox: " in data and "of transaction(s) %s" % tid in data
    csms.csms.hold.discard("TransactionEvent")
    st.cmd("unplug 1")
    wait_drained(csms, st)
    sent = [e for e in tx_events(csms, st.identity) if e["seqNo"] == first["seqNo"]
            and e["transactionInfo"]["transactionId"] == tid]
    assert all(e == first for e in sent) and len(sent) >= 2   # resent as it was
    # delivered: the outbox no longer holds it; the cache learnt the card again from the
    # CSMS's answer to that event (C10.FR.05)
    r, parts = customer_information(csms, st, 41, **by_token())
    data = text(parts)
    assert "Outbox" not in data and "Transaction" not in data
