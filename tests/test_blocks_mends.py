"""Store.recover_tmp (shared by the message queue and the local list) and the clock
adjustment reporting threshold (ClockCtrlr.TimeAdjustmentReportingThreshold)."""
import os

from firmware import compat
from firmware.device_model import DeviceModel
from firmware.provisioning import adopt_time
from firmware.storage import Store


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read(path):
    with open(path) as f:
        return f.read()


def test_recover_tmp_removes_a_tmp_next_to_the_file(tmp_path):
    s = Store(str(tmp_path))
    _write(s.path("j"), "old\n")
    _write(s.path("j") + ".tmp", "unfinished")   # cut while rewriting: the old file is intact
    s.recover_tmp("j")
    assert _read(s.path("j")) == "old\n" and not os.path.exists(s.path("j") + ".tmp")


def test_recover_tmp_renames_a_lone_tmp(tmp_path):
    s = Store(str(tmp_path))
    _write(s.path("j") + ".tmp", "new\n")       # cut between remove and rename
    s.recover_tmp("j")
    assert _read(s.path("j")) == "new\n" and not os.path.exists(s.path("j") + ".tmp")
    s.recover_tmp("j")                           # nothing to do
    assert _read(s.path("j")) == "new\n"


class _ClockStation:
    def __init__(self, tmp_path):
        self.dm = DeviceModel(Store(str(tmp_path)), ())
        self.events = []

    def security_event(self, kind, text):
        self.events.append(kind)

    def emit(self, event, *args):
        pass


def test_time_adjustment_threshold_0_reports_every_adjustment(tmp_path):
    st = _ClockStation(tmp_path)
    adopt_time({"currentTime": compat.iso8601(compat.now() + 2)}, st)
    assert st.events == []                     # unset: the table's 60 s
    st.dm.set("ClockCtrlr", "TimeAdjustmentReportingThreshold", 0)
    adopt_time({"currentTime": compat.iso8601(compat.now() - 2)}, st)  # (and back again)
    assert st.events == ["SettingSystemTime"]  # 0 is a threshold (every adjustment), not unset
