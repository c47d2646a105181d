# Runs the portable board and safety tests under the unix `micropython` binary with the
# fake `machine` module, so the drivers are proven on the real target interpreter too.
import pytest

from fake_machine import portable

MODULES = ("test_safety", "test_board_pilot", "test_board_rfid", "test_board_meter",
           "test_board_config", "test_board_device")


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_under_micropython(module):
    rc, out = portable.run_micropython([module], timeout=120)
    if rc is None:
        pytest.skip(out)
    assert "SUMMARY" in out, out[-2000:]
    summary = [ln for ln in out.splitlines() if ln.startswith("SUMMARY")][-1]
    passed, failed = (int(x) for x in summary.split()[1:3])
    assert rc == 0 and failed == 0 and passed > 0, out[-3000:]
