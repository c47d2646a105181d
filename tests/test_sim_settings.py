"""--set (installer configuration) may set read-only variables but checks them like
SetVariables does: a bad value stops the start-up with a readable message."""
import pytest

from firmware.console import ConsoleError
from firmware.station import Station
from host.sim import apply_settings
from host.sim_board import SimBoard


def _station(tmp_path):
    return Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "SET1")


def test_installer_sets_read_only_values_within_range(tmp_path):
    st = _station(tmp_path)
    apply_settings(st, ["OCPPCommCtrlr.MessageTimeout[Default]=5",
                        "OCPPCommCtrlr.HeartbeatInterval=42"])
    assert st.dm.get("OCPPCommCtrlr", "MessageTimeout", vi="Default") == 5
    assert st.message_timeout_ms() == 5000
    assert st.dm.get("OCPPCommCtrlr", "HeartbeatInterval") == 42


@pytest.mark.parametrize("setting, reason", [
    ("OCPPCommCtrlr.MessageTimeout[Default]=0", "ValueOutOfRange"),
    ("DeviceDataCtrlr.ReportingValueSize=-5", "ValueOutOfRange"),
    ("OCPPCommCtrlr.MessageTimeout[Default]=soon", "InvalidValue"),
    ("OCPPCommCtrlr.NoSuchThing=1", "UnknownVariable"),
])
def test_installer_values_are_checked(tmp_path, setting, reason):
    st = _station(tmp_path)
    with pytest.raises(ConsoleError) as e:
        apply_settings(st, [setting])
    assert reason in str(e.value)
    assert st.dm.get("OCPPCommCtrlr", "MessageTimeout", vi="Default") == 30
