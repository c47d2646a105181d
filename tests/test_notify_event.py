"""NotifyEvent for hardware faults (N07 alerts, HardWiredNotification on the standard
components of part 2 appendix 3.2), station on CPython and under micropython; every frame is
schema-validated by the csms fixture."""
import time

from firmware.compat import parse_iso8601
from tests.helpers import boot, energy_transfer
from tests.proxy import LinkProxy

# fault -> (component, variable, on the connector); clear: seconds the safety holds it after
# the condition went away (None: too long for a test, only the raise is checked)
FAULTS = {
    "rcd": ("RCD", "Tripped", False, 0),
    "pilot": ("CPPWMController", "Problem", True, 0),
    "diode": ("CPPWMController", "Problem", True, 0),
    "meter": ("FiscalMetering", "Problem", False, 0),
    "lock": ("ConnectorPlugRetentionLock", "Problem", True, 5),
    "welding": ("PowerContactor", "Tripped", False, 5),
    "contactor": ("PowerContactor", "Problem", False, None),
    "overtemp": ("TemperatureSensor", "Active", False, None),
}


def events(csms, cp):
    return [d for p in csms.csms.calls("NotifyEvent", cp) for d in p["eventData"]]


def wait_events(csms, cp, pred, what, n=1, timeout=10):
    csms.wait_for(lambda: len([d for d in events(csms, cp) if pred(d)]) >= n, timeout, what)
    return [d for d in events(csms, cp) if pred(d)]


def check(d, name, evse_id, cleared):
    comp, var, on_conn, _ = FAULTS[name]
    evse = {"id": evse_id, "connectorId": 1} if on_conn else {"id": evse_id}
    assert d["component"] == {"name": comp, "evse": evse}, d
    assert d["variable"] == {"name": var}
    assert d["trigger"] == "Delta"
    assert d["eventNotificationType"] == "HardWiredNotification"
    assert d["cleared"] is cleared
    assert d["actualValue"] == ("false" if cleared else "true")


def test_N07_rcd_tripped_and_cleared(csms, station):
    st = boot(csms, station)
    cp = st.identity
    st.cmd("fault 1 rcd")
    d = wait_events(csms, cp, lambda d: d["techCode"] == "rcd", "RCD Tripped")[0]
    check(d, "rcd", 1, False)
    assert "transactionId" not in d
    st.wait_status(lambda s: s["evses"][0]["status"] == "Faulted", 5, "Faulted")
    st.cmd("clear 1 rcd")
    got = wait_events(csms, cp, lambda d: d["techCode"] == "rcd", "RCD cleared", 2)
    check(got[1], "rcd", 1, True)
    assert got[1]["eventId"] != got[0]["eventId"]
    for p in csms.csms.calls("NotifyEvent", cp):
        assert p["seqNo"] == 0 and not p.get("tbc")
    st.wait_status(lambda s: s["evses"][0]["status"] == "Available", 5, "Available again")


def test_N07_every_fault_on_its_standard_component(csms, station):
    st = boot(csms, station, evses=2)
    cp = st.identity
    for name in FAULTS:
        st.cmd("fault 2 %s" % name)
    for name in FAULTS:
        d = wait_events(csms, cp, lambda d, n=name: d["techCode"] == n, name)[0]
        check(d, name, 2, False)
    for name in FAULTS:
        if FAULTS[name][3] is not None:
            st.cmd("clear 2 %s" % name)
    for name in FAULTS:
        if FAULTS[name][3] is not None:
            got = wait_events(csms, cp, lambda d, n=name: d["techCode"] == n, name + " cleared", 2)
            check(got[1], name, 2, True)
    ids = [d["eventId"] for d in events(csms, cp)]
    assert len(ids) == len(set(ids)) == len(FAULTS) + 6
    assert not [d for d in events(csms, cp) if d["component"]["evse"]["id"] != 2]


def test_N07_fault_during_a_transaction_names_it(csms, station):
    st = boot(csms, station)
    cp = st.identity
    tid = energy_transfer(csms, st)
    st.cmd("fault 1 overtemp")
    d = wait_events(csms, cp, lambda d: d["techCode"] == "overtemp", "overtemp")[0]
    check(d, "overtemp", 1, False)
    assert d["transactionId"] == tid
    st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")


def test_N07_eventIds_stay_unique_across_a_restart(csms, station, tmp_path):
    data = str(tmp_path / "keep")
    st = station(data_dir=data, identity="CSEVID")
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", "CSEVID"), 15, "boot")
    st.cmd("fault 1 meter")
    wait_events(csms, "CSEVID", lambda d: True, "first event")
    st.kill()
    csms.wait_for(lambda: "CSEVID" not in csms.csms.sessions, 10, "gone")
    st = station(data_dir=data, identity="CSEVID")
    st.cmd("fault 1 meter")
    wait_events(csms, "CSEVID", lambda d: True, "second event", 2, 20)
    ids = [d["eventId"] for d in events(csms, "CSEVID")]
    assert len(set(ids)) == len(ids) == 2


def test_N07_events_raised_offline_are_sent_after_the_reconnect(csms, station):
    proxy = LinkProxy(csms.csms.port)
    try:
        st = station(url=proxy.url(), args=["--set", "OCPPCommCtrlr.RetryBackOffRepeatTimes=0",
                                            "--set", "OCPPCommCtrlr.RetryBackOffWaitMinimum=1",
                                            "--set", "OCPPCommCtrlr.RetryBackOffRandomRange=0"])
        cp = st.identity
        csms.wait_for(lambda: csms.csms.calls("StatusNotification", cp), 15, "boot")
        proxy.refuse = True
        proxy.cut()
        st.wait_status(lambda s: not s["connected"], 5, "offline")
        st.cmd("fault 1 rcd")
        st.cmd("fault 1 meter")
        time.sleep(0.5)
        st.cmd("clear 1 meter")
        time.sleep(0.5)
        assert events(csms, cp) == []
        t_reconnect = time.time()
        proxy.refuse = False
        got = wait_events(csms, cp, lambda d: True, "buffered events", 3, 15)
        # two faults raised within one 10 ms safety step have no order between them
        got_pairs = [(d["techCode"], d["cleared"]) for d in got]
        assert sorted(got_pairs[:2]) == [("meter", False), ("rcd", False)], got_pairs
        assert got_pairs[2] == ("meter", True), got_pairs
        # the timestamps are those of the moment the fault happened, before the reconnect
        assert all(parse_iso8601(d["timestamp"]) < t_reconnect for d in got), got
    finally:
        proxy.stop()


def test_N07_unanswered_notify_event_is_dropped_after_a_few_attempts(csms, station):
    csms.csms.hold.add("NotifyEvent")
    st = boot(csms, station, "OCPPCommCtrlr.MessageTimeout[Default]=1")
    cp = st.identity
    st.cmd("fault 1 rcd")
    csms.wait_for(lambda: len(csms.csms.calls("NotifyEvent", cp)) >= 3, 20, "3 attempts")
    time.sleep(4)
    assert len(csms.csms.calls("NotifyEvent", cp)) == 3
    csms.csms.hold.discard("NotifyEvent")
    st.cmd("fault 1 meter")  # the station is still sending, only the old event is gone
    got = wait_events(csms, cp, lambda d: d["techCode"] == "meter", "meter event")
    assert got[0]["cleared"] is False
