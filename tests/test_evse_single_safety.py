"""On a board, board/main.py runs the safety stepper: the charging side must reuse its Safety
objects and consume its events, never step a second state machine on the same relay."""
import asyncio

from firmware import safety as safety_mod
from firmware.station import Station
from firmware.stepper import Stepper
from host.sim_board import SimBoard


def _run(coro):
    return asyncio.run(coro)


def test_board_owned_safety_is_reused_and_its_events_drive_the_evse(tmp_path, monkeypatch):
    board = SimBoard(2, str(tmp_path))
    board.safeties = []
    for hw in board.evses:
        hw.safety = safety_mod.Safety(hw)
        board.safeties.append(hw.safety)
    board.stepper = Stepper(board.safeties)   # not started: the test steps it
    made = []
    real = safety_mod.Safety

    def counting(*a, **k):
        made.append(1)
        return real(*a, **k)
    monkeypatch.setattr("firmware.evse.Safety", counting)

    async def scenario():
        st = Station(board, "ws://127.0.0.1:9", "SAFE1")
        evse = st.blocks["evse"]
        assert [e.safety for e in evse.evses] == board.safeties
        st.emit("start")
        await asyncio.sleep(0.05)
        assert made == [], "the evse block created its own Safety"
        # the board's stepper steps the machine; the evse block consumes its events
        board.evses[0].pilot.ev_state = "B"
        board.stepper.step(1000)
        await asyncio.sleep(0.05)
        assert evse.get(1).pilot == "B"
        assert evse.connector_status(1) == "Occupied"
        await st.stop()
    _run(scenario())


def test_simulator_without_board_loop_steps_its_own_safety(tmp_path):
    board = SimBoard(1, str(tmp_path))

    async def scenario():
        st = Station(board, "ws://127.0.0.1:9", "SAFE2")
        st.emit("start")
        board.evses[0].pilot.ev_state = "B"
        for _ in range(50):
            await asyncio.sleep(0.02)
            if st.blocks["evse"].get(1).pilot == "B":
                break
        assert st.blocks["evse"].get(1).pilot == "B"
        await st.stop()
    _run(scenario())
