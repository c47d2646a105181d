"""Device-model Core test cases (B05, B06, B07) end to end: the test CSMS sends Get/SetVariables
and GetBaseReport to one station per runtime (CPython and micropython); every frame the station
sends is schema-validated."""
import time

import pytest

from host.csms import CsmsThread
from tests.harness import TARGETS, StationProc, micropython_exe
from tests.helpers import required_rows

COMM = "OCPPCommCtrlr"


@pytest.fixture(scope="module", params=TARGETS)
def dm(request, tmp_path_factory):
    if request.param == "micropython" and micropython_exe() is None:
        pytest.skip("micropython executable not installed")
    t = CsmsThread(quiet=True)
    t.start()
    cp = "DM-" + request.param
    d = tmp_path_factory.mktemp("dm-" + request.param)
    p = StationProc(request.param, t.csms.url(), cp, str(d / "data"), ["--evses", "2"])
    t.wait_for(lambda: t.csms.calls("StatusNotification", cp), 20, "boot")
    yield t, cp
    p.kill()
    violations = list(t.csms.schema_violations)
    t.stop()
    assert not violations, "station sent schema-invalid messages: %s" % violations


def _cv(comp, var, vi=None, evse=None):
    c = {"name": comp}
    if evse is not None:
        c["evse"] = evse
    v = {"name": var}
    if vi is not None:
        v["instance"] = vi
    return {"component": c, "variable": v}


def get(t, cp, *items):
    return t.call(cp, "GetVariables", {"getVariableData": list(items)})["getVariableResult"]


def set_(t, cp, *items):
    return t.call(cp, "SetVariables", {"setVariableData": list(items)})["setVariableResult"]


def sv(comp, var, value, **kw):
    d = _cv(comp, var)
    d["attributeValue"] = value
    d.update(kw)
    return d


def test_TC_B_06_CS_get_variables_single_value(dm):
    t, cp = dm
    r = get(t, cp, _cv(COMM, "OfflineThreshold"))
    assert len(r) == 1
    assert r[0]["attributeStatus"] == "Accepted" and r[0]["attributeValue"].isdigit()
    assert r[0]["component"] == {"name": COMM} and r[0]["variable"] == {"name": "OfflineThreshold"}
    assert r[0].get("attributeType", "Actual") == "Actual"  # B06.FR.11


def test_TC_B_07_CS_get_variables_multiple_values(dm):
    t, cp = dm
    r = get(t, cp, _cv(COMM, "OfflineThreshold"), _cv(COMM, "MessageTimeout", "Default"),
            _cv("EVSE", "AvailabilityState", evse={"id": 2}))
    assert [x["attributeStatus"] for x in r] == ["Accepted"] * 3
    assert r[1]["variable"] == {"name": "MessageTimeout", "instance": "Default"}
    assert r[2]["component"]["evse"] == {"id": 2}


def test_TC_B_32_CS_get_variables_unknown_component(dm):
    t, cp = dm
    assert get(t, cp, _cv("NoSuchCtrlr", "OfflineThreshold"))[0]["attributeStatus"] == "UnknownComponent"


def test_TC_B_33_CS_get_variables_unknown_variable(dm):
    t, cp = dm
    assert get(t, cp, _cv(COMM, "NoSuchVariable"))[0]["attributeStatus"] == "UnknownVariable"


def test_TC_B_34_CS_get_variables_not_supported_attribute_type(dm):
    t, cp = dm
    item = _cv(COMM, "OfflineThreshold")
    item["attributeType"] = "Target"
    r = get(t, cp, item)[0]
    assert r["attributeStatus"] == "NotSupportedAttributeType" and r["attributeType"] == "Target"


def test_TC_B_09_CS_set_variables_single_value(dm):
    t, cp = dm
    r = set_(t, cp, sv(COMM, "OfflineThreshold", "123"))
    assert r[0]["attributeStatus"] == "Accepted"
    assert get(t, cp, _cv(COMM, "OfflineThreshold"))[0]["attributeValue"] == "123"


def test_TC_B_10_CS_set_variables_multiple_values(dm):
    t, cp = dm
    r = set_(t, cp, sv(COMM, "OfflineThreshold", "124"), sv(COMM, "MessageAttemptInterval", "7"))
    assert r[0]["attributeStatus"] == "Accepted"
    assert r[1]["attributeStatus"] == "UnknownVariable"  # B06.FR.15: it exists only with an instance
    r = set_(t, cp, sv(COMM, "OfflineThreshold", "125"),
             dict(sv(COMM, "MessageAttemptInterval", "7"), variable={
                 "name": "MessageAttemptInterval", "instance": "TransactionEvent"}))
    assert [x["attributeStatus"] for x in r] == ["Accepted", "Accepted"]
    got = get(t, cp, _cv(COMM, "OfflineThreshold"), _cv(COMM, "MessageAttemptInterval", "TransactionEvent"))
    assert [x["attributeValue"] for x in got] == ["125", "7"]


def test_TC_B_35_CS_set_variables_unknown_component(dm):
    t, cp = dm
    assert set_(t, cp, sv("NoSuchCtrlr", "OfflineThreshold", "1"))[0]["attributeStatus"] == "UnknownComponent"


def test_TC_B_36_CS_set_variables_unknown_variable(dm):
    t, cp = dm
    assert set_(t, cp, sv(COMM, "NoSuchVariable", "1"))[0]["attributeStatus"] == "UnknownVariable"


def test_TC_B_37_CS_set_variables_not_supported_attribute_type(dm):
    t, cp = dm
    r = set_(t, cp, sv(COMM, "OfflineThreshold", "1", attributeType="MaxSet"))[0]
    assert r["attributeStatus"] == "NotSupportedAttributeType" and r["attributeType"] == "MaxSet"


def test_TC_B_11_CS_set_variables_invalidly_formatted_values(dm):
    t, cp = dm
    before = get(t, cp, _cv(COMM, "OfflineThreshold"))[0]["attributeValue"]
    for value in ("12.1", "true", "2026-11-24T10:00:00Z", "abc"):
        r = set_(t, cp, sv(COMM, "OfflineThreshold", value))[0]
        assert r["attributeStatus"] == "Rejected", value
        assert r["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    r = set_(t, cp, sv("AuthCtrlr", "Enabled", "maybe"))[0]
    assert r["attributeStatus"] == "Rejected"
    assert get(t, cp, _cv(COMM, "OfflineThreshold"))[0]["attributeValue"] == before


def test_TC_B_38_CS_set_variables_out_of_range(dm):
    t, cp = dm
    r = set_(t, cp, sv(COMM, "HeartbeatInterval", "0"))[0]
    assert r["attributeStatus"] == "Rejected"


def test_TC_B_39_CS_set_variables_read_only(dm):
    t, cp = dm
    r = set_(t, cp, sv(COMM, "MessageTimeout", "5", variable={"name": "MessageTimeout",
                                                              "instance": "Default"}))[0]
    assert r["attributeStatus"] == "Rejected"
    assert r["attributeStatusInfo"]["reasonCode"] == "ReadOnly"


def _report(t, cp, base, request_id):
    n0 = len(t.csms.calls("NotifyReport", cp))
    # The station shares this module; it answers Rejected while the previous report's last
    # part still awaits its response (B07.FR.13), so wait until it accepts.
    deadline = time.time() + 10
    while True:
        r = t.call(cp, "GetBaseReport", {"requestId": request_id, "reportBase": base})
        if r["status"] != "Rejected" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r["status"] == "Accepted"

    def done():
        parts = [p for p in t.csms.calls("NotifyReport", cp)[n0:] if p["requestId"] == request_id]
        return parts if parts and not parts[-1].get("tbc") else None
    parts = t.wait_for(done, 20, "%s report" % base)
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))  # B07.FR.04
    assert all(p.get("tbc") for p in parts[:-1])
    return [d for p in parts for d in p.get("reportData", [])]


def test_TC_B_12_CS_get_base_report_configuration_inventory(dm):
    t, cp = dm
    data = _report(t, cp, "ConfigurationInventory", 12)
    assert data
    for d in data:
        assert all(a.get("mutability", "ReadWrite") != "ReadOnly" for a in d["variableAttribute"])
        assert "variableCharacteristics" in d


def test_TC_B_13_CS_get_base_report_full_inventory(dm):
    t, cp = dm
    data = _report(t, cp, "FullInventory", 13)
    names = {(d["component"]["name"], d["variable"]["name"]) for d in data}
    assert (COMM, "HeartbeatInterval") in names and ("Connector", "ConnectorType") in names
    evses = {d["component"].get("evse", {}).get("id") for d in data if d["component"]["name"] == "EVSE"}
    assert evses == {1, 2}


def test_TC_B_53_CS_mandatory_variables_in_full_inventory(dm):
    t, cp = dm
    data = _report(t, cp, "FullInventory", 53)
    have = {}
    for d in data:
        key = (d["component"]["name"], d["variable"]["name"], d["variable"].get("instance"))
        have[key] = d
    missing = []
    for _, comp, var, vi, muts, dtype in required_rows():
        d = have.get((comp, var, vi or None))
        if d is None:
            missing.append((comp, var, vi))
            continue
        assert d["variableCharacteristics"]["dataType"].lower() == dtype.lower(), (comp, var)
        assert d["variableAttribute"][0].get("mutability", "ReadWrite") in muts, (comp, var)
        if d["variableAttribute"][0].get("mutability") == "WriteOnly":
            assert "value" not in d["variableAttribute"][0]
    assert not missing, missing

