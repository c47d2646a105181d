# The station's connection state has one source, the WebSocket attached to its Rpc:
# `Station.connected`, `Rpc.link_ev` (what an offline call() waits on) and `Rpc.ws` agree at
# every point a listener or another task can look, through connect, drop, reconnect, stop,
# a stop during the handshake and a cancelled run(). Drives a real Station with scripted
# links in place of ws.connect. Portable: pytest and micropython (tests/fake_machine/mprun.py).
import json
import os

from fake_link import FakeWs
from firmware import compat
from firmware.rpc import Offline
from host.sim_board import SimBoard

COMM = "OCPPCommCtrlr"
NOW = "2026-01-01T00:00:00Z"


class Link(FakeWs):
    """A WebSocket stand-in: answers every CALL from the station, can be dropped."""

    def __init__(self):
        FakeWs.__init__(self)
        self.closed = False
        self.close_code = None
        self.aborted = False
        self.keepalive_ended = False

    def drop(self):
        self.closed = True
        self.feed(OSError("link lost"))

    async def send(self, text):
        if self.closed:
            raise OSError("closed")
        await FakeWs.send(self, text)
        frame = self.out[-1]
        if frame[0] == 2:
            self.feed(json.dumps([3, frame[1], {"currentTime": NOW}]))

    async def close(self, code=1000, reason=""):
        self.close_code = code
        self.drop()

    def abort(self, reason="aborted"):
        self.aborted = True
        if not self.closed:
            self.drop()

    async def keepalive(self, interval_s):
        try:
            while not self.closed:
                await compat.sleep_ms(5)
        finally:
            self.keepalive_ended = True


def _station():
    from firmware.station import Station
    d = "/tmp/connstate-" + "".join("%02x" % b for b in os.urandom(6))
    compat.makedirs(d)
    st = Station(SimBoard(1, d), "ws://127.0.0.1:9", "CONN1", blocks=(), on_demand=())
    st.dm.set(COMM, "RetryBackOffWaitMinimum", 0)  # reconnect at once
    st.dm.set(COMM, "RetryBackOffRandomRange", 0)
    st.set_boot_status("Accepted")
    return st


def _connector(st, links, gate=None):
    """Replace the handshake: each attempt returns the next link, after `gate` is set."""
    async def connect(profile):
        if gate is not None:
            await gate.wait()
        return links.pop(0)
    st._connect_once = connect


def _state(st):
    return st.connected, st.rpc.ws is not None, st.rpc.link_ev.is_set()


UP = (True, True, True)
DOWN = (False, False, False)


async def _until(cond, ms=2000):
    for _ in range(ms // 5):
        if cond():
            return True
        await compat.sleep_ms(5)
    return cond()


async def _offline_call_refused(st):
    try:
        await st.call("Heartbeat", {}, wait_online=False)
    except Offline:
        return True
    return False


def _run(coro):
    compat.run(coro)


def test_state_agrees_through_connect_drop_reconnect_and_stop():
    st = _station()
    a, b = Link(), Link()
    gate = compat.asyncio.Event()
    gate.set()
    _connector(st, [a, b], gate)
    seen = []  # what "connected"/"disconnected" listeners observe, synchronously
    st.on("connected", lambda: seen.append(("connected", _state(st))))
    st.on("disconnected", lambda: seen.append(("disconnected", _state(st))))
    r = {}

    async def scenario():
        task = compat.create_task(st.run())
        assert await _until(lambda: st.connected)
        r["up"] = _state(st)
        r["first"] = await st.call("Heartbeat", {})
        gate.clear()  # hold the reconnect so the offline state can be looked at
        a.drop()
        assert await _until(lambda: len(seen) == 2)
        r["down"] = _state(st)
        r["refused"] = await _offline_call_refused(st)
        queued = compat.create_task(st.call("Heartbeat", {}))  # waits for the link
        await compat.sleep_ms(30)
        r["queued_waits"] = not queued.done() and len(a.out) == 1 and b.out == []
        gate.set()
        r["second"] = await queued
        r["up_again"] = _state(st)
        await st.stop()
        r["stopped"] = _state(st)  # at once, not when the serve task gets round to it
        r["refused_after_stop"] = await _offline_call_refused(st)
        r["loop_ended"] = await _until(lambda: task.done())
        r["keepalive_ended"] = await _until(lambda: a.keepalive_ended and b.keepalive_ended)
    _run(scenario())
    assert r["up"] == UP and r["up_again"] == UP
    assert r["down"] == DOWN and r["stopped"] == DOWN
    assert r["first"] == {"currentTime": NOW} and r["second"] == {"currentTime": NOW}
    assert r["refused"] and r["refused_after_stop"] and r["queued_waits"]
    assert [f[2] for f in b.out] == ["Heartbeat"] and b.close_code == 1001
    assert r["loop_ended"] and r["keepalive_ended"]
    assert seen == [("connected", UP), ("disconnected", DOWN),
                    ("connected", UP), ("disconnected", DOWN)]


def test_stop_during_the_handshake_does_not_come_online():
    st = _station()
    link = Link()
    gate = compat.asyncio.Event()
    _connector(st, [link], gate)
    seen = []
    st.on("connected", lambda: seen.append(_state(st)))
    r = {}

    async def scenario():
        task = compat.create_task(st.run())
        await compat.sleep_ms(10)  # inside the handshake
        await st.stop()
        gate.set()  # the handshake completes after the stop
        r["loop_ended"] = await _until(lambda: task.done())
        r["state"] = _state(st)
    _run(scenario())
    assert r["loop_ended"] and r["state"] == DOWN
    assert seen == [] and link.aborted and link.out == []


def test_cancelled_run_leaves_the_station_offline():
    """host/sim.py cancels run() after stop(); any supervisor may cancel it outright."""
    st = _station()
    link = Link()
    _connector(st, [link])
    r = {}

    async def scenario():
        task = compat.create_task(st.run())
        assert await _until(lambda: st.connected)
        task.cancel()
        r["settled"] = await _until(lambda: task.done())
        r["state"] = _state(st)
        r["refused"] = await _offline_call_refused(st)
        r["keepalive_ended"] = await _until(lambda: link.keepalive_ended)
    _run(scenario())
    assert r["settled"] and r["state"] == DOWN and r["refused"]
    assert link.aborted and r["keepalive_ended"]
