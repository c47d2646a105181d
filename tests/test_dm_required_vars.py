# TC_B_53_CS and the "Referenced Components and Variables" appendix: every variable that
# tests/data/referenced_variables.tsv marks required for the blocks this firmware implements
# is in the device model (and in a FullInventory report) with the spec's mutability and dataType.
# Also runs the portable device-model tests under micropython and measures the model's heap.
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from firmware import dm_csms, dm_table as T
from firmware.device_model import DeviceModel
from firmware.storage import Store
from tests.harness import ROOT
from tests.helpers import referenced, required_rows

SCHEMAS = os.path.join(ROOT, ".venv", "lib", "python%d.%d" % sys.version_info[:2], "site-packages",
                       "ocpp", "v201", "schemas")


class Ev:
    def __init__(self, i):
        self.id = i
        self.max_current = 32
        self.phases = 3
        self.connector_type = "cType2"


def _schema(name):
    try:
        import ocpp.v201
        base = os.path.join(os.path.dirname(ocpp.v201.__file__), "schemas")
    except ImportError:
        base = SCHEMAS
    with open(os.path.join(base, name + ".json")) as f:
        return json.load(f)


def _model(tmp_path, evses=2):
    return DeviceModel(Store(str(tmp_path / "dm")), [Ev(i + 1) for i in range(evses)])


def _row(dm, comp, var, vi):
    for r in dm.rows:
        if r[0] == comp and r[1] == var and r[2] == vi:
            return r
    return None


def test_TC_B_53_every_required_variable_declared_with_spec_mutability_and_type(tmp_path):
    dm = _model(tmp_path)
    missing, wrong = [], []
    for _, comp, var, vi, muts, dtype in required_rows():
        r = _row(dm, comp, var, vi)
        if r is None:
            missing.append((comp, var, vi))
            continue
        if T.MUTABILITY[r[3] & T.MUT_MASK] not in muts:
            wrong.append((comp, var, "mutability", T.MUTABILITY[r[3] & T.MUT_MASK], muts))
        if r[4].lower() != dtype.lower():
            wrong.append((comp, var, "dataType", r[4], dtype))
    assert not missing, "required variables missing: %s" % missing
    assert not wrong, "required variables declared wrongly: %s" % wrong


def test_declared_optional_variables_also_match_the_appendix(tmp_path):
    rows = referenced()
    dm = _model(tmp_path)
    wrong = []
    checked = 0
    for required, comp, var, vi, muts, dtype in rows:
        r = _row(dm, comp, var, vi)
        if r is None or required:
            continue
        checked += 1
        if T.MUTABILITY[r[3] & T.MUT_MASK] not in muts or r[4].lower() != dtype.lower():
            wrong.append((comp, var, T.MUTABILITY[r[3] & T.MUT_MASK], r[4], muts, dtype))
    assert checked > 10 and not wrong, (checked, wrong)


def test_TC_B_53_full_inventory_reports_required_variables_schema_valid(tmp_path):
    dm = _model(tmp_path)
    schema = _schema("NotifyReportRequest")
    items = list(dm_csms.report(dm, "FullInventory"))
    # One NotifyReport part per ItemsPerMessage items, each valid against the official schema.
    for i in range(0, len(items), T.ITEMS):
        part = {"requestId": 1, "generatedAt": "2026-01-01T00:00:00.000Z", "seqNo": i // T.ITEMS,
                "tbc": i + T.ITEMS < len(items), "reportData": items[i:i + T.ITEMS]}
        jsonschema.validate(part, schema)
    seen = {}
    for rd in items:
        key = (rd["component"]["name"], rd["variable"]["name"], rd["variable"].get("instance"))
        seen.setdefault(key, []).append(rd)
    for _, comp, var, vi, muts, dtype in required_rows():
        got = seen.get((comp, var, vi))
        assert got, "FullInventory lacks %s.%s[%s]" % (comp, var, vi)
        for rd in got:
            assert rd["variableAttribute"][0]["mutability"] in muts
            assert rd["variableCharacteristics"]["dataType"].lower() == dtype.lower()
            if rd["variableAttribute"][0]["mutability"] != "WriteOnly":
                assert "value" in rd["variableAttribute"][0]
    # Per-EVSE / per-connector components appear once per EVSE.
    assert len(seen[("EVSE", "AvailabilityState", None)]) == 2
    assert len(seen[("Connector", "ConnectorType", None)]) == 2
    # EVSE Power is required for its maxLimit (2.13.7).
    for rd in seen[("EVSE", "Power", None)]:
        assert rd["variableCharacteristics"]["maxLimit"] == 32 * 3 * 230
        assert rd["variableCharacteristics"]["unit"] == "W"


def test_B05_B06_results_are_schema_valid(tmp_path):
    dm = _model(tmp_path)
    gets = [{"component": {"name": c}, "variable": {"name": v}} for c, v in
            (("OCPPCommCtrlr", "HeartbeatInterval"), ("Nope", "X"), ("OCPPCommCtrlr", "X"),
             ("SecurityCtrlr", "BasicAuthPassword"))]
    gets.append({"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"},
                 "attributeType": "Target"})
    jsonschema.validate({"getVariableResult": [dm_csms.get(dm, g) for g in gets]},
                        _schema("GetVariablesResponse"))
    sets = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": v}, "attributeValue": val}
            for v, val in (("HeartbeatInterval", "10"), ("HeartbeatInterval", "x"),
                           ("MessageTimeout", "5"), ("Nope", "1"))]
    res = dm_csms.set_many(dm, sets)
    jsonschema.validate({"setVariableResult": res}, _schema("SetVariablesResponse"))


def test_every_row_is_well_formed():
    seen = set()
    dtypes = ("string", "decimal", "integer", "dateTime", "boolean", "OptionList",
              "SequenceList", "MemberList")
    assert len(T.TABLE) < 16384  # row offsets are packed into 14 bits of a value key
    for r in T.Rows():
        assert len(r) == 10, r
        key = (r[0], r[1], r[2])
        assert key not in seen, key
        seen.add(key)
        assert r[4] in dtypes, r
        assert len(r[0]) <= 50 and len(r[1]) <= 50
        if r[4] in ("OptionList", "MemberList") or (r[4] == "SequenceList" and r[8]):
            assert r[8], r
            if r[9] is not None:
                allowed = r[8].split(",")
                assert all(x in allowed for x in r[9].split(",") if r[9]), r
        if r[4] == "integer" and r[9] is not None:
            assert isinstance(r[9], int) and not isinstance(r[9], bool)
            assert (r[6] is None or r[9] >= r[6]) and (r[7] is None or r[9] <= r[7]), r
        if r[4] == "boolean" and r[9] is not None:
            assert isinstance(r[9], bool)


# ------------------------------------------------------------------ under micropython
def _micropython():
    from tests.harness import micropython_exe
    exe = micropython_exe()
    if exe is None:
        pytest.skip("micropython executable not installed")
    return exe


HEAP_SCRIPT = """
import gc, sys
sys.path.insert(0, sys.argv[1])
from firmware import compat, storage, log
gc.collect(); a0 = gc.mem_alloc()
from firmware import dm_table
from firmware.device_model import DeviceModel
class E:
    def __init__(s, i):
        s.id = i; s.max_current = 32; s.phases = 3; s.connector_type = "cType2"
ev = [E(1), E(2)]
gc.collect(); a1 = gc.mem_alloc()
dm = DeviceModel(storage.Store(sys.argv[2]), ev)
gc.collect(); a2 = gc.mem_alloc()
dm.set("OCPPCommCtrlr", "HeartbeatInterval", 60)
from firmware import dm_csms
n = 0
for rd in dm_csms.report(dm, "FullInventory"):
    n += 1
gc.collect(); a3 = gc.mem_alloc()
for _ in range(5):
    for rd in dm_csms.report(dm, "FullInventory"):
        n += 1
gc.collect(); a4 = gc.mem_alloc()
print("HEAP", a1 - a0, a2 - a1, a3 - a2, a4 - a3, n)
"""


def test_heap_of_the_loaded_model_under_micropython(tmp_path):
    exe = _micropython()
    script = tmp_path / "heap.py"
    script.write_text(HEAP_SCRIPT)
    p = subprocess.run([exe, str(script), ROOT, str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=60)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("HEAP")]
    assert line, p.stdout + p.stderr
    code, instance, first, second, n = (int(x) for x in line[0].split()[1:])
    print("device model heap (64-bit unix port): code+table %d B, instance %d B" % (code, instance))
    # 64-bit unix port; an ESP32 (32-bit words) needs roughly half.
    assert code + instance < 40000
    assert instance < 6000
    # A leak would keep report dicts (KBs per run); allow GC noise of stale stack words.
    assert second < 1024
    assert n == 6 * len(list(dm_csms.report(_model(tmp_path), "FullInventory")))
