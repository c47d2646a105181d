"""The connector's StatusNotification goes out before the TransactionEvent the same pilot
change causes, as the part 2 sequence diagrams draw it (E02 cable first, E03 card first) and
CSMSs written from them expect: Occupied before Started on plug-in. (On unplug the
transaction ends first: that may apply a scheduled Unavailable, and G01.FR.05 wants Occupied
to go straight to it; test_availability covers that.) Station on CPython and under micropython; several plug
cycles per test, since the order used to depend on which sender task ran first."""
from tests.helpers import boot, started, ended, tx_events

CYCLES = 4


def _order(csms, cp, since):
    """[(action, key)] of the station's StatusNotification and TransactionEvent CALLs after
    message index `since`, in the order the CSMS received them."""
    out = []
    for m in csms.csms.messages[since:]:
        f = m["frame"]
        if m["cp"] != cp or m["dir"] != "in" or not isinstance(f, list) or f[0] != 2:
            continue
        if f[2] == "StatusNotification":
            out.append(("Status", f[3]["connectorStatus"]))
        elif f[2] == "TransactionEvent":
            out.append(("Tx", f[3]["eventType"]))
    return out


def _cycle(csms, st, card_first):
    cp = st.identity
    since = len(csms.csms.messages)
    n = len([e for e in tx_events(csms, cp) if ended(e)])
    if card_first:
        st.cmd("tap AABBCCDD")
        st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "authorized")
        st.cmd("plug 1")
    else:
        st.cmd("plug 1")
        st.cmd("tap AABBCCDD")
    csms.wait_for(lambda: ("Tx", "Started") in _order(csms, cp, since)
                  and ("Status", "Occupied") in _order(csms, cp, since), 10, "Started and Occupied")
    st.cmd("unplug 1")
    csms.wait_for(lambda: len([e for e in tx_events(csms, cp) if ended(e)]) > n
                  and ("Status", "Available") in _order(csms, cp, since), 10, "Ended and Available")
    got = _order(csms, cp, since)
    assert got.index(("Status", "Occupied")) < got.index(("Tx", "Started")), got


def test_TC_E_04_CS_authorization_first_occupied_before_started(csms, station):
    """E03.FR.01 / E01 (TxStartPoint PowerPathClosed): card first, then the cable; the
    transaction starts at plug-in, the connector is reported Occupied first."""
    st = boot(csms, station)
    for _ in range(CYCLES):
        _cycle(csms, st, card_first=True)
    assert [e for e in tx_events(csms, st.identity) if started(e)]


def test_TC_E_03_CS_cable_first_occupied_before_started(csms, station):
    """E02.FR.01 with TxStartPoint EVConnected: the plug-in starts the transaction and
    makes the connector Occupied; the StatusNotification goes first."""
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EVConnected")
    for _ in range(CYCLES):
        _cycle(csms, st, card_first=False)


def _held_status_ids(csms, cp):
    return [m["frame"][1] for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and isinstance(m["frame"], list)
            and m["frame"][0] == 2 and m["frame"][2] == "StatusNotification"]


def test_TC_E_03_CS_occupied_first_while_the_previous_status_waits_for_its_reply(csms, station):
    """The race clean-clone CI once hit: the plug-in comes while the station still waits for
    the CSMS to answer the previous StatusNotification (the unplug's Available). Occupied and
    Started go out through different tasks; the transaction's must not take the CALL slot
    first when that reply arrives. The CSMS here holds every StatusNotification until the
    test answers it, so the window is open for as long as the test wants."""
    st = boot(csms, station, "TxCtrlr.TxStartPoint=EVConnected")
    cp = st.identity
    st.cmd("plug 1")
    csms.wait_for(lambda: ("Status", "Occupied") in _order(csms, cp, 0)
                  and ("Tx", "Started") in _order(csms, cp, 0), 10, "first session")
    csms.csms.hold.add("StatusNotification")
    answered = set(_held_status_ids(csms, cp))
    st.cmd("unplug 1")
    csms.wait_for(lambda: set(_held_status_ids(csms, cp)) - answered, 10, "Available sent")
    since = len(csms.csms.messages)
    st.cmd("plug 1")
    st.wait_status(lambda s: s["evses"][0]["transaction"] is not None, 10, "second transaction")
    # answer the held StatusNotifications one by one as they come, Available then Occupied
    for _ in range(2):
        mid = csms.wait_for(lambda: sorted(set(_held_status_ids(csms, cp)) - answered),
                            10, "a held StatusNotification")[0]
        answered.add(mid)
        csms.raw(cp, '[3, "%s", {}]' % mid)
    csms.csms.hold.discard("StatusNotification")
    csms.wait_for(lambda: ("Tx", "Started") in _order(csms, cp, since), 10, "second Started")
    got = _order(csms, cp, since)
    assert ("Status", "Occupied") in got and \
        got.index(("Status", "Occupied")) < got.index(("Tx", "Started")), got
