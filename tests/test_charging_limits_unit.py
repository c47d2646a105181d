"""Charging limits through the evse block on an in-process station, on a simulated clock:
the safety stepper only moves when the test steps it. A limit changes the offer within one
stepper period, below 6 A the EVSE suspends (offer 0, SuspendedEVSE with trigger
ChargingStateChanged) and the relay waits for the EV's reaction time, a lifted limit
restores the maximum, the station-wide limit caps every EVSE, the cable (PP) caps a limit.
Issue #14 items 2 and 3."""
import asyncio

from firmware import safety as safety_mod
from tests.helpers import TOKEN, charging_in_process, queued_tx_events


def _updates(st, trigger):
    return [e for e in queued_tx_events(st) if e["triggerReason"] == trigger]


def test_K11_FR_01_limit_16A_then_off_restores_the_maximum(tmp_path):
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        assert hw.pilot.offered == 32
        st.emit("charging_limit", 1, "local", 16)
        assert hw.pilot.offered == 32          # nothing before the stepper's next period
        await step(1)
        assert hw.pilot.offered == 16 and hw.relay.closed()
        assert st.blocks["evse"].status(1)["limit"] == 16
        st.emit("charging_limit", 1, "local", None)
        await step(1)
        assert hw.pilot.offered == 32
        await st.stop()
    asyncio.run(scenario())


def test_limit_below_6A_suspends_with_ChargingStateChanged_and_waits_for_the_EV(tmp_path):
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        hw.pilot.stubborn = True               # keeps drawing: the reaction bound applies
        await step(2)
        n0 = len(queued_tx_events(st))
        st.emit("charging_limit", 1, "local", 5)
        await step(1)
        assert hw.pilot.offered == 0           # no PWM: state x1
        assert hw.relay.closed()               # the EV gets its reaction time
        ev = queued_tx_events(st)[n0:]
        assert [e["triggerReason"] for e in ev] == ["ChargingStateChanged"], ev
        assert ev[0]["eventType"] == "Updated"
        assert ev[0]["transactionInfo"]["chargingState"] == "SuspendedEVSE"
        assert tx.active(1) is not None        # suspended, not ended
        await step(safety_mod.STOP_REACTION_MS // 10 - 5)
        assert hw.relay.closed()               # still inside the 6 s
        await step(10)
        assert not hw.relay.closed()           # the EV did not react: the EVSE opens
        assert queued_tx_events(st)[-1]["transactionInfo"].get("chargingState", "SuspendedEVSE") \
            == "SuspendedEVSE"
        st.emit("charging_limit", 1, "local", None)
        await step(3)
        assert hw.pilot.offered == 32 and hw.relay.closed()
        last = queued_tx_events(st)[-1]
        assert last["transactionInfo"]["chargingState"] == "Charging"
        assert last["triggerReason"] == "ChargingStateChanged"
        await st.stop()
    asyncio.run(scenario())


def test_limit_below_6A_a_reacting_EV_opens_the_relay_itself(tmp_path):
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        st.emit("charging_limit", 0, "external", 0)
        await step(1)
        assert hw.pilot.offered == 0
        await step(2)                          # the simulated EV goes to B: relay opens
        assert not hw.relay.closed()
        states = [e["transactionInfo"].get("chargingState") for e in queued_tx_events(st)]
        assert states[-1] == "SuspendedEVSE" and "SuspendedEV" not in states[-2:]
        await st.stop()
    asyncio.run(scenario())


def test_cable_PP_13A_caps_a_32A_limit(tmp_path):
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        hw.max_current = 13                    # what a board's PP reading does
        st.emit("charging_limit", 1, "profile", 32)
        await step(1)
        assert hw.pilot.offered == 13
        st.emit("charging_limit", 1, "profile", 10)
        await step(1)
        assert hw.pilot.offered == 10
        await st.stop()
    asyncio.run(scenario())


def test_K12_FR_01_station_wide_limit_caps_every_EVSE(tmp_path):
    from firmware import safety
    from firmware.station import Station
    from firmware.stepper import Stepper
    from host.sim_board import SimBoard

    async def scenario():
        board = SimBoard(2, str(tmp_path))
        for hw in board.evses:
            hw.safety = safety.Safety(hw)
        board.stepper = Stepper([hw.safety for hw in board.evses])
        st = Station(board, "ws://127.0.0.1:9", "LIM2")
        st.emit("start")
        now = [1000]

        async def step(n=1):
            for _ in range(n):
                now[0] += 10
                board.stepper.step(now[0])
                await asyncio.sleep(0)
            await asyncio.sleep(0.02)
        ev = st.blocks["evse"]
        for i in (1, 2):
            ev.permit(i, True)
        await step(1)
        offers = lambda: [hw.pilot.offered for hw in board.evses]  # noqa: E731
        assert offers() == [32, 32]
        st.emit("charging_limit", 0, "profile", 20)
        st.emit("charging_limit", 0, "local", 10)
        await step(1)
        assert offers() == [10, 10]
        st.emit("charging_limit", 1, "profile", 8)
        st.emit("charging_limit", 2, "profile", 16)   # above the station-wide 10 A
        await step(1)
        assert offers() == [8, 10]
        st.emit("charging_limit", 0, "local", None)   # the 20 A profile remains
        await step(1)
        assert offers() == [8, 16]
        st.emit("charging_limit", 0, "profile", None)
        st.emit("charging_limit", 1, "profile", None)
        await step(1)
        assert offers() == [32, 16]
        await st.stop()
    asyncio.run(scenario())


def test_K11_FR_04_rate_change_beyond_LimitChangeSignificance_is_reported(tmp_path):
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        st.dm.set("SmartChargingCtrlr", "LimitChangeSignificance", 10.0)
        await step(2)
        st.emit("charging_limit", 1, "local", 16)   # 32 -> 16: 50 %
        await step(1)
        ev = _updates(st, "ChargingRateChanged")
        assert len(ev) == 1 and ev[0]["eventType"] == "Updated"
        st.emit("charging_limit", 1, "local", 15)   # 16 -> 15: 6 %, under 10 %
        await step(1)
        assert len(_updates(st, "ChargingRateChanged")) == 1
        st.emit("charging_limit", 1, "local", None)  # 15 -> 32
        await step(1)
        assert len(_updates(st, "ChargingRateChanged")) == 2
        assert hw.pilot.offered == 32 and tx.active(1)["token"] == TOKEN
        await st.stop()
    asyncio.run(scenario())


def test_K12_FR_02_NotifyChargingLimit_only_for_significant_changes_and_clear_only_if_reported(
        tmp_path):
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "LIM3")
    cl = st.blocks["charging_limits"]
    st.dm.set("SmartChargingCtrlr", "LimitChangeSignificance", 10.0)
    st.emit("charging_limit", 1, "profile", 10)          # the CSMS's own: never reported back
    assert cl._due == []
    st.emit("charging_limit", 1, "external", 20)
    assert cl._due == [(1, "external")]
    cl._due = []
    cl.reported[(1, "external")] = 20
    st.emit("charging_limit", 1, "external", 21)         # 5 %
    assert cl._due == []
    st.emit("charging_limit", 1, "external", 23)         # 15 %
    assert cl._due == [(1, "external")]
    st.emit("charging_limit", 0, "local", None)          # never reported: nothing to clear
    assert cl._due == [(1, "external")]
    assert cl.payload(1, "external", 23) == ("NotifyChargingLimit", {
        "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": False}, "evseId": 1})
    assert cl.payload(0, "local", None) == ("ClearedChargingLimit",
                                            {"chargingLimitSource": "Other"})
    st.dm.set("SmartChargingCtrlr", "ExternalControlSignalsEnabled", False)
    cl._due = []
    st.emit("charging_limit", 1, "external", 6)
    assert cl._due == [] and cl.now[(1, "external")] == 6


def _sender_calls(tmp_path, monkeypatch, error):
    """How often the sender tries a NotifyChargingLimit in 0.3 s when every call fails with
    `error` (RETRY_MS shortened to 10 ms)."""
    from firmware import charging_limits
    from firmware.station import Station
    from host.sim_board import SimBoard
    monkeypatch.setattr(charging_limits, "RETRY_MS", 10)
    st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "LIMERR")
    cl = st.blocks["charging_limits"]
    calls = []

    async def call(action, payload):
        calls.append(action)
        raise error
    st.call = call
    st.online = lambda: True

    async def run():
        st.emit("charging_limit", 1, "external", 20)
        try:
            await asyncio.wait_for(cl._sender(), 0.3)
        except asyncio.TimeoutError:
            pass
    asyncio.run(run())
    return calls, cl


def test_K12_NotifyChargingLimit_CALLERROR_is_not_retried_a_timeout_is(tmp_path, monkeypatch):
    from firmware.rpc import CallError
    calls, cl = _sender_calls(tmp_path / "e", monkeypatch,
                              CallError("NotImplemented", "no K12 here"))
    assert calls == ["NotifyChargingLimit"] and cl._due == []
    calls, cl = _sender_calls(tmp_path / "t", monkeypatch, asyncio.TimeoutError())
    assert len(calls) >= 3 and cl._due == [(1, "external")]


def test_K11_FR_04_a_limit_under_6A_is_a_state_change_not_a_rate_change(tmp_path):
    """32 -> 4 A: the EVSE suspends (no PWM under 6 A), so the event that carries
    chargingState SuspendedEVSE is a ChargingStateChanged (E02), never a ChargingRateChanged,
    whatever order the offer and the state change reach the transactions block in."""
    async def scenario():
        st, hw, tx, step = await charging_in_process(tmp_path)
        st.dm.set("SmartChargingCtrlr", "LimitChangeSignificance", 10.0)
        await step(2)                                # the clock is at 1060 ms now
        st.emit("charging_limit", 1, "local", 10)
        st.board.stepper.step(1070)  # the offer of 10 A waits for the event loop, as the
        st.emit("charging_limit", 1, "local", 4)   # thread's events do, when 4 A comes
        await step(2)
        ev = [e for e in queued_tx_events(st) if e["eventType"] == "Updated"]
        sus = [e for e in ev if e["transactionInfo"].get("chargingState") == "SuspendedEVSE"]
        assert [e["triggerReason"] for e in sus] == ["ChargingStateChanged"], ev
        assert [e for e in _updates(st, "ChargingRateChanged")
                if "chargingState" in e["transactionInfo"]] == [], ev
        await st.stop()
    asyncio.run(scenario())
