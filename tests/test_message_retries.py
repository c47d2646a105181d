"""Part 6 Core E13 cases: a TransactionEvent the CSMS does not answer (or answers with a
CALLERROR) is resent MessageAttempts times, the wait growing by MessageAttemptInterval per
preceding transmission, and then given up so the queue moves on. Station on CPython and
under micropython; every frame is schema-validated by the fixture."""
import time

from tests.helpers import boot

ATTEMPTS = 3
INTERVAL = 1  # s
TIMEOUT = 1   # s, OCPPCommCtrlr.MessageTimeout[Default]
SLACK = 0.25  # s the CSMS may see a frame early: process start-up, loopback jitter

SETTINGS = ("OCPPCommCtrlr.MessageAttempts[TransactionEvent]=%d" % ATTEMPTS,
            "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]=%d" % INTERVAL,
            "OCPPCommCtrlr.MessageTimeout[Default]=%d" % TIMEOUT)


def tx_transmissions(csms, cp):
    """(time, messageId, payload) of every TransactionEvent CALL received, retries included."""
    return [(m["t"], m["frame"][1], m["frame"][3]) for m in csms.csms.messages
            if m["cp"] == cp and m["dir"] == "in" and isinstance(m["frame"], list)
            and m["frame"][0] == 2 and m["frame"][2] == "TransactionEvent"]


def sends_of_first(csms, cp):
    frames = tx_transmissions(csms, cp)
    if not frames:
        return []
    return [f for f in frames if f[1] == frames[0][1]]


def start_session(csms, station):
    """Reusable states Authorized, EVConnectedPreSession: the Started event is the one tried."""
    st = boot(csms, station, *SETTINGS)
    st.cmd("tap AABBCCDD")
    st.wait_status(lambda s: s["evses"][0]["authorized"], 5, "authorized")
    st.cmd("plug 1")
    return st


def check_gaps(sends, extra):
    """Transmission k+1 follows transmission k after INTERVAL*k (+ MessageTimeout when the
    CSMS stayed silent). The lower bound is the requirement (a wait that does not grow with
    k fails it); the upper one only catches a retry that waits for something else, with
    room for a stall of the loaded test machine."""
    for k in range(1, len(sends)):
        gap = sends[k][0] - sends[k - 1][0]
        want = INTERVAL * k + extra
        assert want - SLACK <= gap <= want + 5.0, ("gap before transmission %d" % (k + 1), gap, want)


def check_given_up(csms, st, first_id):
    """E13.FR.04: after the last attempt the message is dropped and the next one goes out;
    the dropped one is never seen again, even one more (longer) retry interval later."""
    cp = st.identity
    st.cmd("unplug 1")  # queues the Ended event behind the failing one
    csms.wait_for(lambda: [f for f in tx_transmissions(csms, cp) if f[1] != first_id], 15,
                  "next message")
    time.sleep(INTERVAL * (ATTEMPTS + 1) + TIMEOUT + 0.5)
    assert len([f for f in tx_transmissions(csms, cp) if f[1] == first_id]) == ATTEMPTS


def test_TC_E_41_CS_retry_max_count_reached_no_response(csms, station):
    csms.csms.hold.add("TransactionEvent")
    st = start_session(csms, station)
    cp = st.identity
    sends = csms.wait_for(lambda: len(sends_of_first(csms, cp)) >= ATTEMPTS and sends_of_first(csms, cp),
                          20, "%d transmissions" % ATTEMPTS)
    assert sends[0][2]["eventType"] == "Started"
    assert all(s[2] == sends[0][2] for s in sends)  # the same message, unchanged
    check_gaps(sends, TIMEOUT)
    check_given_up(csms, st, sends[0][1])


def test_TC_E_42_CS_retry_success_before_max_count_no_response(csms, station):
    csms.csms.hold.add("TransactionEvent")
    st = start_session(csms, station)
    cp = st.identity
    csms.wait_for(lambda: sends_of_first(csms, cp), 10, "first transmission")
    csms.csms.hold.discard("TransactionEvent")  # ignore only the first request
    sends = csms.wait_for(lambda: len(sends_of_first(csms, cp)) >= 2 and sends_of_first(csms, cp),
                          10, "second transmission")
    assert sends[1][2] == sends[0][2]
    check_gaps(sends, TIMEOUT)
    # answered: the queue moves on and the Started event is never sent a third time
    st.cmd("unplug 1")
    csms.wait_for(lambda: [f for f in tx_transmissions(csms, cp) if f[1] != sends[0][1]], 10,
                  "next message")
    time.sleep(INTERVAL * 2 + TIMEOUT + 0.5)
    assert len(sends_of_first(csms, cp)) == 2
    st.wait_status(lambda s: s["queue"] == 0, 10, "queue drained")


def test_TC_E_50_CS_retry_max_count_reached_callerror(csms, station):
    csms.csms.call_errors["TransactionEvent"] = lambda cp, p: "InternalError"
    st = start_session(csms, station)
    cp = st.identity
    sends = csms.wait_for(lambda: len(sends_of_first(csms, cp)) >= ATTEMPTS and sends_of_first(csms, cp),
                          20, "%d transmissions" % ATTEMPTS)
    assert sends[0][2]["eventType"] == "Started"
    assert all(s[2] == sends[0][2] for s in sends)
    check_gaps(sends, 0)
    check_given_up(csms, st, sends[0][1])


def test_TC_E_51_CS_retry_success_before_max_count_callerror(csms, station):
    seen = []

    def fail_but_second(cp, payload):
        seen.append(payload)
        return None if len(seen) == 2 else "InternalError"
    csms.csms.call_errors["TransactionEvent"] = fail_but_second
    st = start_session(csms, station)
    cp = st.identity
    sends = csms.wait_for(lambda: len(sends_of_first(csms, cp)) >= 2 and sends_of_first(csms, cp),
                          10, "second transmission")
    assert sends[1][2] == sends[0][2] and sends[0][2]["eventType"] == "Started"
    check_gaps(sends, 0)
    st.cmd("unplug 1")
    csms.wait_for(lambda: [f for f in tx_transmissions(csms, cp) if f[1] != sends[0][1]], 10,
                  "next message")
    time.sleep(INTERVAL * 2 + 0.5)
    assert len(sends_of_first(csms, cp)) == 2


def test_message_timeout_is_read_once_and_follows_a_change(tmp_path):
    """A CALL takes MessageTimeout from a cache, not the device model; the installer's
    change (the CSMS cannot make one: ReadOnly) reaches the next CALL."""
    from firmware import compat, dm_csms
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "MT1", blocks=(), on_demand=())
    reads = []
    get = st.dm.get

    def counting_get(component, variable, *a, **k):
        if variable == "MessageTimeout":
            reads.append(variable)
        return get(component, variable, *a, **k)
    st.dm.get = counting_get
    timeouts = []

    async def rpc_call(action, payload, timeout_ms, msg_id):
        timeouts.append(timeout_ms)
        return {}
    st.rpc.call = rpc_call
    st.rpc.ws = object()  # connected
    st.set_boot_status("Accepted")

    def calls(n):
        for _ in range(n):
            compat.run(st.call("Heartbeat", {}))

    calls(3)
    assert timeouts == [30000] * 3 and len(reads) == 1
    item = {"component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "MessageTimeout", "instance": "Default"}, "attributeValue": "5"}
    assert dm_csms.set_many(st.dm, [item])[0]["attributeStatus"] == "Rejected"
    assert dm_csms.set_many(st.dm, [item], installer=True)[0]["attributeStatus"] == "Accepted"
    calls(2)
    st.dm.set("OCPPCommCtrlr", "MessageTimeout", 7, vi="Default")
    calls(1)
    assert timeouts == [30000] * 3 + [5000] * 2 + [7000] and len(reads) == 3
