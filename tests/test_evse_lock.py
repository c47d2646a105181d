"""Socket lock during a session, station on CPython and under micropython: locked before energy
flows, held while the relay is closed, released once the session has ended and the relay is
open, so a driver can always take the cable after an ended session but never under load."""
import asyncio
import time

from firmware.station import Station
from host.sim_board import SimBoard, SimPilot, SimRelay
from tests.helpers import boot, energy_transfer, statuses


def evse1(st):
    return st.status()["evses"][0]


def test_connector_locked_while_charging_and_released_after(csms, station):
    st = boot(csms, station)
    st.cmd("plug 1")
    time.sleep(0.3)
    assert evse1(st)["locked"] is False  # plugged but nothing authorised yet
    energy_transfer(csms, st)
    s = st.wait_status(lambda s: s["evses"][0]["relay"], 5, "relay closed")["evses"][0]
    assert s["locked"] is True
    st.cmd("tap AABBCCDD")  # the same card ends the session
    s = st.wait_status(lambda s: not s["evses"][0]["locked"], 10, "lock released")["evses"][0]
    assert s["relay"] is False
    assert s["transaction"] is None


def test_unplug_releases_the_lock(csms, station):
    st = boot(csms, station)
    energy_transfer(csms, st)
    st.wait_status(lambda s: s["evses"][0]["locked"], 5, "locked")
    st.cmd("unplug 1")
    s = st.wait_status(lambda s: not s["evses"][0]["locked"], 5, "lock released")["evses"][0]
    assert s["relay"] is False


# ---------------------------------------------------------------- the order, recorded
class RecordingRelay(SimRelay):
    def __init__(self, log):
        SimRelay.__init__(self)
        self.log = log

    def set(self, closed):
        self.log.append(("relay", bool(closed)))
        SimRelay.set(self, closed)


class SlowLock:
    """A lock whose feedback the test moves by hand (the actuator's travel time)."""

    def __init__(self, log):
        self.log = log
        self.fb = False
        self.want = False

    def set(self, locked):
        self.want = bool(locked)
        self.log.append(("lock", bool(locked)))

    def locked(self):
        return self.fb

    def commanded(self):
        return self.want


class CountingPilot(SimPilot):
    """Counts the reads of the pilot state: one per safety step."""

    def __init__(self):
        SimPilot.__init__(self)
        self.reads = 0

    def state(self):
        self.reads += 1
        return SimPilot.state(self)


def test_lock_confirmed_before_relay_closes_and_relay_open_before_unlock(tmp_path):
    """The real evse block and safety loop on the simulated board, with relay and lock
    recording into one list: lock(True) -> (feedback) -> relay closed; relay open -> unlock."""
    board = SimBoard(1, str(tmp_path))
    log = []
    hw = board.evses[0]
    hw.relay = RecordingRelay(log)
    hw.meter.relay = hw.relay
    hw.lock = SlowLock(log)
    hw.pilot = CountingPilot()

    async def until(pred, what, limit_s=10):
        t0 = time.monotonic()
        while not pred():
            assert time.monotonic() - t0 < limit_s, what
            await asyncio.sleep(0.01)

    async def scenario():
        st = Station(board, "ws://127.0.0.1:9", "LOCK1")
        evse = st.blocks["evse"]
        st.emit("start")
        hw.pilot.ev_state = "C"                      # plugged, the EV wants to charge
        await until(lambda: evse.get(1).pilot == "B", "pilot B")
        start.append(len(log))
        evse.permit(1, True)                         # what the transactions block does
        await until(lambda: evse.get(1).pilot == "C", "EV answers the PWM with C")
        seen = hw.pilot.reads
        await until(lambda: hw.pilot.reads >= seen + 30, "30 safety steps in C")
        assert ("relay", True) not in log, "relay closed before the lock confirmed: %s" % log
        hw.lock.fb = True                            # the actuator has travelled
        await until(lambda: ("relay", True) in log, "relay closes once locked")
        evse.permit(1, False)                        # session over: PWM stops, EV leaves C
        await until(lambda: ("lock", False) in log[start[0]:], "unlocked after the session")
        hw.lock.fb = False
        start.append(len(log))                       # stop() opens every relay once more
        await st.stop()

    start = []
    asyncio.run(scenario())
    order = []
    for x in log[start[0]:start[1]]:
        if not order or order[-1] != x:              # the lock is re-commanded on events
            order.append(x)
    assert order == [("lock", True), ("relay", True), ("relay", False), ("lock", False)], log


def test_broken_lock_opens_the_relay_and_faults_the_connector(csms, station):
    st = boot(csms, station)
    energy_transfer(csms, st)
    st.wait_status(lambda s: s["evses"][0]["relay"], 5, "relay closed")
    n = len(statuses(csms, st.identity))
    assert st.cmd("lock 1 broken")["ok"]             # forced open under load
    s = st.wait_status(lambda s: not s["evses"][0]["relay"], 5, "relay open")["evses"][0]
    assert "lock" in s["faults"] and s["locked"] is False
    csms.wait_for(lambda: (1, 1, "Faulted") in statuses(csms, st.identity)[n:], 5, "Faulted")
    assert st.cmd("lock 1 ok")["ok"]                 # mended: 5 s of lock policy, then energy
    st.wait_status(lambda s: s["evses"][0]["relay"] and not s["evses"][0]["faults"], 15,
                   "charging again")
