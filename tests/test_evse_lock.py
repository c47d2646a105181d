"""Socket lock during a session, station on CPython and under micropython: locked before energy
flows, held while the relay is closed, released once the session has ended and the relay is
open, so a driver can always take the cable after an ended session but never under load."""
import time

from tests.helpers import boot, energy_transfer


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
