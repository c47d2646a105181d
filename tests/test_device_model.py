# Device model (B05, B06, B07 semantics, persistence) and the variables block (GetVariables,
# SetVariables, GetBaseReport -> NotifyReport) with a fake station. Portable: runs under
# pytest and under micropython (tests/fake_machine/mprun.py, driven from
# test_portable_micropython.py).
import json
import os

from firmware import compat
from firmware import dm_csms, dm_table as T
from firmware.device_model import DeviceModel
from firmware.rpc import CallError
from firmware.storage import Store
from firmware.variables import Block

COMM = "OCPPCommCtrlr"
PASSWORD = "s3cret-Passw0rd-XYZ"


class Ev:
    def __init__(self, i, amps=32, phases=3, ctype="cType2"):
        self.id = i
        self.max_current = amps
        self.phases = phases
        self.connector_type = ctype


class CountingStore(Store):
    def __init__(self, d):
        Store.__init__(self, d)
        self.saves = 0

    def save(self, name, obj):
        self.saves += 1
        Store.save(self, name, obj)


def _dir():
    d = "/tmp/dmtest-" + "".join("%02x" % b for b in os.urandom(6))
    return d


def _cleanup(d):
    try:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
        os.rmdir(d)
    except OSError:
        pass


def _model(d=None, evses=None, table=T.TABLE):
    d = d or _dir()
    evs = evses if evses is not None else [Ev(1), Ev(2, amps=16, phases=1, ctype="sType2")]
    return DeviceModel(CountingStore(d), evs, table), d


def _gv(comp, var, attr=None, ci=None, vi=None, evse=None, conn=None):
    c = {"name": comp}
    if ci is not None:
        c["instance"] = ci
    if evse is not None:
        c["evse"] = {"id": evse}
        if conn is not None:
            c["evse"]["connectorId"] = conn
    v = {"name": var}
    if vi is not None:
        v["instance"] = vi
    item = {"component": c, "variable": v}
    if attr is not None:
        item["attributeType"] = attr
    return item


def _sv(comp, var, value, **kw):
    item = _gv(comp, var, **kw)
    item["attributeValue"] = value
    return item


# ------------------------------------------------------------------ typed get / set
def test_defaults_are_typed_values_from_the_table():
    dm, d = _model()
    assert dm.get(COMM, "HeartbeatInterval") == 300
    assert dm.get(COMM, "MessageTimeout", vi="Default") == 30
    assert dm.get(COMM, "RetryBackOffWaitMinimum") == 10
    assert dm.get(COMM, "RetryBackOffRandomRange") == 10
    assert dm.get(COMM, "RetryBackOffRepeatTimes") == 5
    assert dm.get(COMM, "WebSocketPingInterval") == 30
    assert dm.get(COMM, "UnlockOnEVSideDisconnect") is True
    assert dm.get("DeviceDataCtrlr", "ItemsPerMessage", vi="GetReport") == T.ITEMS
    assert dm.get(COMM, "Bogus") is None
    assert dm.get("Bogus", "HeartbeatInterval") is None
    assert dm.get(COMM, "MessageTimeout") is None  # exists only with instance Default
    _cleanup(d)


def test_evse_values_come_from_the_hardware():
    dm, d = _model()
    assert dm.max_limit("EVSE", "Power", evse=1) == 32 * 3 * 230
    assert dm.max_limit("EVSE", "Power", evse=2) == 16 * 1 * 230
    assert dm.get("EVSE", "SupplyPhases", evse=1) == 3
    assert dm.get("EVSE", "SupplyPhases", evse=2) == 1
    assert dm.get("Connector", "ConnectorType", evse=2, connector=1) == "sType2"
    assert dm.get("Connector", "SupplyPhases", evse=2, connector=1) == 1
    assert dm.get("ChargingStation", "SupplyPhases") == 3
    assert dm.get("EVSE", "AvailabilityState") is None  # an EVSE component needs its id
    assert dm.get("EVSE", "AvailabilityState", evse=3) is None
    assert dm.get("EVSE", "AvailabilityState", evse=1) == "Available"
    _cleanup(d)


def test_clock_datetime_is_computed_on_read():
    dm, d = _model()
    v = dm.get("ClockCtrlr", "DateTime")
    assert abs(compat.parse_iso8601(v) - compat.now()) < 5
    _cleanup(d)


def test_set_converts_text_and_rejects_unknown_names():
    dm, d = _model()
    assert dm.set(COMM, "HeartbeatInterval", "120") is True
    assert dm.get(COMM, "HeartbeatInterval") == 120
    assert dm.set(COMM, "HeartbeatInterval", 120) is False  # unchanged
    dm.set("EVSE", "Power", 7000, evse=1)
    assert dm.get("EVSE", "Power", evse=1) == 7000.0
    assert isinstance(dm.get("EVSE", "Power", evse=1), float)
    for args in ((COMM, "Nope", 1), ("Nope", "HeartbeatInterval", 1)):
        try:
            dm.set(*args)
        except KeyError:
            continue
        raise AssertionError("no KeyError for %r" % (args,))
    _cleanup(d)


def test_readwrite_values_persist_across_reboot():
    dm, d = _model()
    dm.set(COMM, "HeartbeatInterval", 77)
    r = dm_csms.set_many(dm, [_sv(COMM, "OfflineThreshold", "500"),
                              _sv("SecurityCtrlr", "BasicAuthPassword", PASSWORD)])
    assert [x["attributeStatus"] for x in r] == ["Accepted", "Accepted"]
    dm.set("SecurityCtrlr", "SecurityProfile", 2)  # ReadOnly but firmware-owned and persistent
    dm2, _ = _model(d)
    assert dm2.get(COMM, "HeartbeatInterval") == 77
    assert dm2.get(COMM, "OfflineThreshold") == 500
    assert dm2.get("SecurityCtrlr", "BasicAuthPassword") == PASSWORD
    assert dm2.get("SecurityCtrlr", "SecurityProfile") == 2
    _cleanup(d)


def test_start_up_code_leaves_once_the_model_is_made():
    # firmware.dm_boot (hardware values, reading dm.json) runs in DeviceModel() only
    import sys
    dm, d = _model()
    dm.set(COMM, "HeartbeatInterval", 77)
    dm2, _ = _model(d)
    assert "firmware.dm_boot" not in sys.modules
    assert dm2.get(COMM, "HeartbeatInterval") == 77
    assert dm2.get("EVSE", "SupplyPhases", evse=2) == 1
    assert dm2.max_limit("EVSE", "Power", evse=2) == 16 * 230.0
    _cleanup(d)


def test_document_holds_only_persistent_values_that_differ_from_defaults():
    dm, d = _model()
    dm.set(COMM, "HeartbeatInterval", 60)
    dm.set("EVSE", "AvailabilityState", "Unavailable", evse=1)  # runtime state, not persisted
    doc = dm.store.load("dm.json")
    assert doc == {"OCPPCommCtrlr/HeartbeatInterval": 60}
    dm.set(COMM, "HeartbeatInterval", 300)  # back to the default
    assert dm.store.load("dm.json") == {}
    _cleanup(d)


def test_corrupt_or_stale_document_entries_are_ignored():
    d = _dir()
    Store(d).save("dm.json", {"OCPPCommCtrlr/HeartbeatInterval": "abc",
                              "OCPPCommCtrlr/Removed": 5, "garbage": 1,
                              "OCPPCommCtrlr/OfflineThreshold": 99,
                              "ChargingStation/AvailabilityState": "Unavailable"})
    dm, _ = _model(d)
    assert dm.get(COMM, "HeartbeatInterval") == 300
    assert dm.get(COMM, "OfflineThreshold") == 99
    assert dm.get("ChargingStation", "AvailabilityState") == "Available"
    _cleanup(d)


def test_listeners_fire_once_per_change():
    dm, d = _model()
    seen = []
    dm.on_change(lambda c, v, val: seen.append((c, v, val)))
    dm.set(COMM, "HeartbeatInterval", 90)
    dm.set(COMM, "HeartbeatInterval", 90)
    dm_csms.set_many(dm, [_sv(COMM, "WebSocketPingInterval", "15"), _sv(COMM, "Nope", "1")])
    assert seen == [(COMM, "HeartbeatInterval", 90), (COMM, "WebSocketPingInterval", 15)]
    _cleanup(d)


def test_redacted_marks_only_secrets():
    dm, d = _model()
    assert dm_csms.redacted(dm, "SecurityCtrlr", "BasicAuthPassword") is True
    assert dm_csms.redacted(dm, "SecurityCtrlr", "Identity") is False
    assert dm_csms.redacted(dm, COMM, "HeartbeatInterval") is False
    assert dm_csms.redacted(dm, "Nope", "Nope") is False
    _cleanup(d)


# ------------------------------------------------------------------ B06 GetVariables
def test_B06_FR_01_02_04_10_TC_B_06_07_values_echo_component_and_variable():
    dm, d = _model()
    items = [_gv(COMM, "HeartbeatInterval"), _gv(COMM, "MessageTimeout", vi="Default"),
             _gv("EVSE", "Power", evse=1)]
    res = [dm_csms.get(dm, it) for it in items]
    assert len(res) == 3
    for it, r in zip(items, res):
        assert r["component"] == it["component"] and r["variable"] == it["variable"]
        assert r["attributeStatus"] == "Accepted"
    assert [r["attributeValue"] for r in res] == ["300", "30", "0"]
    _cleanup(d)


def test_B06_FR_03_11_attribute_type_echoed_or_actual():
    dm, d = _model()
    assert dm_csms.get(dm, _gv(COMM, "HeartbeatInterval"))["attributeType"] == "Actual"
    r = dm_csms.get(dm, _gv(COMM, "HeartbeatInterval", attr="Actual"))
    assert r["attributeType"] == "Actual" and r["attributeValue"] == "300"
    _cleanup(d)


def _get_fails_with(status, items):
    """Every GetVariables item is answered `status` without a value."""
    dm, d = _model()
    for item in items:
        r = dm_csms.get(dm, item)
        assert r["attributeStatus"] == status, item
        assert "attributeValue" not in r
    _cleanup(d)


# (a helper, not pytest.mark.parametrize: this module also runs under micropython, whose
# runner calls argument-free test functions only)
def test_B06_FR_06_TC_B_32_unknown_component():
    _get_fails_with("UnknownComponent", (
        _gv("FooCtrlr", "HeartbeatInterval"),
        _gv(COMM, "HeartbeatInterval", evse=1),      # station-level with an EVSE
        _gv("EVSE", "Power"),                          # EVSE without id
        _gv("EVSE", "Power", evse=9),                  # no such EVSE
        _gv("Connector", "ConnectorType", evse=1, conn=2),
        _gv(COMM, "HeartbeatInterval", ci="X")))


def test_B06_FR_07_15_TC_B_33_unknown_variable_or_missing_instance():
    _get_fails_with("UnknownVariable", (
        _gv(COMM, "NoSuchVariable"),
        _gv("DeviceDataCtrlr", "ItemsPerMessage"),           # instance required
        _gv("DeviceDataCtrlr", "ItemsPerMessage", vi="Bogus"),
        _gv(COMM, "HeartbeatInterval", vi="X")))


def test_B06_names_with_table_separators_match_nothing():
    # The table is text with "|" between fields: a name carrying one must not reach a row.
    dm, d = _model()
    for item, status in ((_gv(COMM, "HeartbeatInterval||w", vi="i"), "UnknownVariable"),
                         (_gv(COMM, "HeartbeatInterval|", vi="|w"), "UnknownVariable"),
                         (_gv(COMM + "|HeartbeatInterval", ""), "UnknownComponent"),
                         (_gv(COMM, "HeartbeatInterval\nOCPPCommCtrlr"), "UnknownVariable")):
        r = dm_csms.get(dm, item)
        assert r["attributeStatus"] == status, item
        assert "attributeValue" not in r
    _cleanup(d)


def test_B06_FR_14_instances_and_case_insensitive_names():
    dm, d = _model()
    r = dm_csms.get(dm, _gv("devicedatactrlr", "itemsPERmessage", vi="getvariables"))
    assert r["attributeStatus"] == "Accepted" and r["attributeValue"] == str(T.ITEMS)
    assert r["variable"] == {"name": "itemsPERmessage", "instance": "getvariables"}
    r = dm_csms.get(dm, _gv("Connector", "ConnectorType", evse=1, conn=1))
    assert r["attributeValue"] == "cType2"
    _cleanup(d)


def test_B06_FR_08_TC_B_34_not_supported_attribute_type():
    dm, d = _model()
    for attr in ("Target", "MinSet", "MaxSet"):
        r = dm_csms.get(dm, _gv(COMM, "HeartbeatInterval", attr=attr))
        assert r["attributeStatus"] == "NotSupportedAttributeType"
        assert r["attributeType"] == attr and "attributeValue" not in r
    _cleanup(d)


def test_B06_FR_09_write_only_password_is_never_returned():
    dm, d = _model()
    dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    r = dm_csms.get(dm, _gv("SecurityCtrlr", "BasicAuthPassword"))
    assert r["attributeStatus"] == "Rejected"
    assert PASSWORD not in json.dumps(r)
    _cleanup(d)


# ------------------------------------------------------------------ B05 SetVariables
def test_B05_FR_01_02_03_10_12_TC_B_09_10_accepted_and_applied():
    dm, d = _model()
    items = [_sv(COMM, "HeartbeatInterval", "42"),
             _sv(COMM, "OfflineThreshold", "120", attr="Actual"),
             _sv("TxCtrlr", "TxStartPoint", "EVConnected,Authorized")]
    res = dm_csms.set_many(dm, items)
    assert [r["attributeStatus"] for r in res] == ["Accepted"] * 3
    for it, r in zip(items, res):
        assert r["component"] == it["component"] and r["variable"] == it["variable"]
        assert r["attributeType"] == "Actual"
    assert dm.get(COMM, "HeartbeatInterval") == 42
    assert dm.get(COMM, "OfflineThreshold") == 120
    assert dm.get("TxCtrlr", "TxStartPoint") == "EVConnected,Authorized"
    _cleanup(d)


def test_B05_FR_04_05_06_TC_B_35_36_37_unknown_and_unsupported():
    dm, d = _model()
    res = dm_csms.set_many(dm, [_sv("FooCtrlr", "HeartbeatInterval", "1"),
                                _sv(COMM, "Foo", "1"),
                                _sv(COMM, "HeartbeatInterval", "1", attr="Target")])
    assert [r["attributeStatus"] for r in res] == [
        "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"]
    assert res[2]["attributeType"] == "Target"
    assert dm.get(COMM, "HeartbeatInterval") == 300
    _cleanup(d)


def test_B05_FR_07_TC_B_11_invalidly_formatted_values_rejected():
    dm, d = _model()
    bad = [(COMM, "OfflineThreshold", "60.1"), (COMM, "OfflineThreshold", "true"),
           (COMM, "OfflineThreshold", "2026-01-01T00:00:00Z"), (COMM, "OfflineThreshold", "abc"),
           (COMM, "OfflineThreshold", ""), (COMM, "OfflineThreshold", " 5"),
           ("AuthCtrlr", "AuthorizeRemoteStart", "yes"), ("AuthCtrlr", "AuthorizeRemoteStart", "1"),
           ("AuthCacheCtrlr", "Policy", "FIFO"),                     # not in valuesList
           ("TxCtrlr", "TxStartPoint", "EVConnected,EVConnected"),  # duplicate member
           ("TxCtrlr", "TxStartPoint", "ParkingBay"),               # unknown member
           ("ClockCtrlr", "TimeSource", ""),                        # empty sequence
           ("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,"),
           ]
    res = dm_csms.set_many(dm, [_sv(c, v, val) for c, v, val in bad])
    for (c, v, val), r in zip(bad, res):
        assert r["attributeStatus"] == "Rejected", (c, v, val, r)
        assert r["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert dm.get(COMM, "OfflineThreshold") == 60
    assert dm.store.saves == 0  # nothing accepted, nothing written
    _cleanup(d)


def test_B05_FR_08_out_of_range_rejected():
    dm, d = _model()
    res = dm_csms.set_many(dm, [_sv(COMM, "HeartbeatInterval", "0"),
                                _sv(COMM, "HeartbeatInterval", "86401"),
                                _sv("SecurityCtrlr", "BasicAuthPassword", "short"),
                                _sv("SecurityCtrlr", "BasicAuthPassword", "x" * 41),
                                _sv("SecurityCtrlr", "OrganizationName", "o" * 51)])
    assert [r["attributeStatus"] for r in res] == ["Rejected"] * 5
    assert all(r["attributeStatusInfo"]["reasonCode"] == "ValueOutOfRange" for r in res)
    assert dm.get("SecurityCtrlr", "BasicAuthPassword") is None
    _cleanup(d)


def test_B05_FR_09_TC_B_39_read_only_rejected():
    dm, d = _model()
    res = dm_csms.set_many(dm, [_sv(COMM, "MessageTimeout", "10", vi="Default"),
                                _sv("ChargingStation", "AvailabilityState", "Unavailable"),
                                _sv("SecurityCtrlr", "SecurityProfile", "3")])
    assert [r["attributeStatus"] for r in res] == ["Rejected"] * 3
    assert res[0]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert dm.get(COMM, "MessageTimeout", vi="Default") == 30
    _cleanup(d)


def test_B05_value_longer_than_ConfigurationValueSize_rejected():
    dm, d = _model()
    r = dm_csms.set_many(dm, [_sv("SecurityCtrlr", "OrganizationName", "o" * 1001)])[0]
    assert r["attributeStatus"] == "Rejected"
    assert r["attributeStatusInfo"]["reasonCode"] == "TooLargeElement"
    _cleanup(d)


def test_B05_one_save_per_request():
    dm, d = _model()
    res = dm_csms.set_many(dm, [_sv(COMM, "HeartbeatInterval", "11"),
                                _sv(COMM, "OfflineThreshold", "12"),
                                _sv(COMM, "WebSocketPingInterval", "13")])
    assert [r["attributeStatus"] for r in res] == ["Accepted"] * 3
    assert dm.store.saves == 1
    assert len(dm.store.load("dm.json")) == 3
    _cleanup(d)


def test_B05_extra_check_hook_can_refuse_a_value():
    dm, d = _model()
    dm.check(COMM, "NetworkConfigurationPriority",
             lambda v: None if all(s in ("1", "2") for s in v.split(",")) else "InvalidValue")
    res = dm_csms.set_many(dm, [_sv(COMM, "NetworkConfigurationPriority", "2,1"),
                                _sv(COMM, "NetworkConfigurationPriority", "3")])
    assert [r["attributeStatus"] for r in res] == ["Accepted", "Rejected"]
    assert dm.get(COMM, "NetworkConfigurationPriority") == "2,1"
    _cleanup(d)


def test_B05_reboot_required_and_target_attribute():
    table = "FanCtrlr|Speed||wTLH|i|rpm|0|5000||1000\nFanCtrlr|Mode||wB|o||||A,B|A"
    dm, d = _model(evses=[], table=table)
    res = dm_csms.set_many(dm, [_sv("FanCtrlr", "Speed", "3000", attr="Target"),
                                _sv("FanCtrlr", "Mode", "B")])
    assert [r["attributeStatus"] for r in res] == ["Accepted", "RebootRequired"]
    assert dm.get("FanCtrlr", "Speed", attr="Target") == 3000
    assert dm.get("FanCtrlr", "Speed") == 1000
    r = dm_csms.get(dm, _gv("FanCtrlr", "Speed", attr="MinSet"))
    assert r["attributeValue"] == ""  # B06.FR.13
    dm2, _ = _model(d, evses=[], table=table)
    assert dm2.get("FanCtrlr", "Speed", attr="Target") == 3000
    assert dm2.get("FanCtrlr", "Mode") == "B"
    rep = list(dm_csms.report(dm2, "FullInventory"))
    assert [a["type"] for a in rep[0]["variableAttribute"]] == ["Actual", "Target", "MinSet", "MaxSet"]
    _cleanup(d)


# ------------------------------------------------------------------ B07 reports
def _expected_count(dm, want):
    n = 0
    for r in dm.rows:
        f = r[3]
        ok = want(r)
        if not ok:
            continue
        if f & T.CONN or f & T.EVSE:
            n += len(dm.evse_ids)
        else:
            n += 1
    return n


def test_B07_FR_08_11_full_inventory_reports_every_variable_with_characteristics():
    dm, d = _model()
    rep = list(dm_csms.report(dm, "FullInventory"))
    assert len(rep) == _expected_count(dm, lambda r: True)
    for rd in rep:
        assert rd["variableCharacteristics"]["dataType"] in (
            "string", "decimal", "integer", "dateTime", "boolean", "OptionList",
            "SequenceList", "MemberList")
        assert rd["variableCharacteristics"]["supportsMonitoring"] is False
        assert 1 <= len(rd["variableAttribute"]) <= 4
    evse_power = [rd for rd in rep if rd["component"]["name"] == "EVSE" and rd["variable"]["name"] == "Power"]
    assert [rd["component"]["evse"]["id"] for rd in evse_power] == [1, 2]
    assert evse_power[1]["variableCharacteristics"]["maxLimit"] == 3680
    names = [(rd["component"]["name"], rd["variable"]["name"])
             for rd in dm_csms.report(dm, "FullInventory")]
    assert names == [(rd["component"]["name"], rd["variable"]["name"]) for rd in rep]
    _cleanup(d)


def test_B07_FR_07_configuration_inventory_only_settable_variables():
    dm, d = _model()
    rep = list(dm_csms.report(dm, "ConfigurationInventory"))
    assert len(rep) == _expected_count(dm, lambda r: r[3] & T.MUT_MASK != T.RO)
    assert rep and all(rd["variableAttribute"][0]["mutability"] in ("ReadWrite", "WriteOnly") for rd in rep)
    _cleanup(d)


def test_B07_FR_09_summary_inventory_availability_of_station_evses_connectors():
    dm, d = _model()
    dm.set("EVSE", "AvailabilityState", "Unavailable", evse=2)
    rep = list(dm_csms.report(dm, "SummaryInventory"))
    got = [(rd["component"]["name"], rd["component"].get("evse"), rd["variableAttribute"][0]["value"])
           for rd in rep]
    assert got == [("ChargingStation", None, "Available"),
                   ("EVSE", {"id": 1}, "Available"),
                   ("Connector", {"id": 1, "connectorId": 1}, "Available"),
                   ("EVSE", {"id": 2}, "Unavailable"),
                   ("Connector", {"id": 2, "connectorId": 1}, "Available")]
    _cleanup(d)


def test_B07_FR_02_unsupported_base_raises_value_error():
    dm, d = _model()
    try:
        dm_csms.report(dm, "Everything")
    except ValueError:
        _cleanup(d)
        return
    raise AssertionError("no ValueError")


def test_password_never_appears_in_any_report():
    dm, d = _model()
    dm.set("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    for base in ("FullInventory", "ConfigurationInventory", "SummaryInventory"):
        for rd in dm_csms.report(dm, base):
            assert PASSWORD not in json.dumps(rd)
            if rd["variable"]["name"] == "BasicAuthPassword":
                assert "value" not in rd["variableAttribute"][0]
                assert rd["variableAttribute"][0]["mutability"] == "WriteOnly"
    _cleanup(d)


# ------------------------------------------------------------------ the block (fake station)
class FakeRpc:
    def __init__(self):
        self.handlers = {}
        self.frame_len = 0

    def register(self, action, fn):
        self.handlers[action] = fn


class FakeStation:
    def __init__(self, dm):
        self.dm = dm
        self.store = dm.store
        self.rpc = FakeRpc()
        self.sent = []
        self.logs = []
        self.events = []

    async def call(self, action, payload):
        if isinstance(payload, list):  # JSON text pieces, framed as rpc.Rpc does
            self.sent.append((action, '[2,"%s",%s,%s]' % ("x" * 36, json.dumps(action),
                                                         "".join(payload))))
        else:
            self.sent.append((action, json.dumps([2, "x" * 36, action, payload])))
        await compat.sleep_ms(0)
        return {}

    def log(self, level, msg):
        self.logs.append((level, msg))

    def security_event(self, kind, tech_info=None):
        self.events.append((kind, tech_info))

    def spawn(self, coro):
        return compat.create_task(coro)


def _block(**kw):
    dm, d = _model(**kw)
    st = FakeStation(dm)
    Block(st)
    return st, d


def _code(e):
    return getattr(e, "code", None) or (e.args[0] if e.args else None)


def test_B06_FR_16_too_many_items_is_occurrence_constraint_violation():
    st, d = _block()
    h = st.rpc.handlers["GetVariables"]
    ok = h({"getVariableData": [_gv(COMM, "HeartbeatInterval")] * T.ITEMS})
    assert len(ok["getVariableResult"]) == T.ITEMS
    try:
        h({"getVariableData": [_gv(COMM, "HeartbeatInterval")] * (T.ITEMS + 1)})
    except CallError as e:
        assert _code(e) == "OccurrenceConstraintViolation"
    else:
        raise AssertionError("accepted more than ItemsPerMessage")
    try:
        st.rpc.handlers["SetVariables"]({"setVariableData": [_sv(COMM, "HeartbeatInterval", "5")] * (T.ITEMS + 1)})
    except CallError as e:
        assert _code(e) == "OccurrenceConstraintViolation"
    else:
        raise AssertionError("accepted more than ItemsPerMessage")
    assert st.dm.get(COMM, "HeartbeatInterval") == 300
    _cleanup(d)


def test_B06_FR_17_too_many_bytes_is_format_violation():
    st, d = _block()
    st.dm.set("DeviceDataCtrlr", "BytesPerMessage", 300, vi="GetVariables")
    h = st.rpc.handlers["GetVariables"]
    long_items = [_gv(COMM, "HeartbeatInterval" + "x" * 30)] * 4
    payload = {"getVariableData": long_items}
    st.rpc.frame_len = len(json.dumps([2, "m1", "GetVariables", payload]))  # as rpc sets it
    try:
        h(payload)
    except CallError as e:
        assert _code(e) == "FormatViolation"
    else:
        raise AssertionError("accepted more than BytesPerMessage")
    _cleanup(d)


def test_TC_B_09_set_variables_handler_never_logs_the_password():
    # the A01 security event for the change comes from the security block
    # (tests/test_security_events.py, TC_A_09)
    st, d = _block()
    res = st.rpc.handlers["SetVariables"]({"setVariableData": [
        _sv(COMM, "HeartbeatInterval", "33"), _sv("SecurityCtrlr", "BasicAuthPassword", PASSWORD)]})
    assert [r["attributeStatus"] for r in res["setVariableResult"]] == ["Accepted", "Accepted"]
    assert st.dm.get(COMM, "HeartbeatInterval") == 33
    assert PASSWORD not in repr(st.logs) and PASSWORD not in repr(st.events)
    _cleanup(d)


def _run_report(st, base, request_id=7):
    h = st.rpc.handlers["GetBaseReport"]
    out = h({"requestId": request_id, "reportBase": base})
    ticks = [0]
    done = [False]

    async def ticker():
        while not done[0]:
            ticks[0] += 1
            await compat.sleep_ms(0)

    async def main():
        resp, after = out
        t = compat.create_task(ticker())
        await after()
        done[0] = True
        await t
        return resp

    resp = compat.run(main())
    return resp, ticks[0]


def _check_parts(st, request_id, items_max, bytes_max):
    parts = [json.loads(frame)[3] for action, frame in st.sent if action == "NotifyReport"]
    assert parts
    for i, p in enumerate(parts):
        assert p["requestId"] == request_id
        assert p["seqNo"] == i
        assert compat.parse_iso8601(p["generatedAt"]) > 0
        assert p.get("tbc", False) is (i < len(parts) - 1)
        assert len(p["reportData"]) <= items_max
    for action, frame in st.sent:
        assert len(frame) <= bytes_max or len(json.loads(frame)[3]["reportData"]) == 1
    return parts


def test_B07_FR_01_03_04_10_TC_B_13_full_inventory_in_parts():
    st, d = _block()
    resp, ticks = _run_report(st, "FullInventory", 7)
    assert resp == {"status": "Accepted"}
    parts = _check_parts(st, 7, T.ITEMS, T.BYTES)
    got = [(rd["component"], rd["variable"]) for p in parts for rd in p["reportData"]]
    want = [(rd["component"], rd["variable"]) for rd in dm_csms.report(st.dm, "FullInventory")]
    assert got == want
    assert len(parts) >= len(want) // T.ITEMS
    assert ticks >= len(parts)  # the event loop ran while the report was sent
    _cleanup(d)


def test_B07_byte_limit_splits_parts():
    st, d = _block()
    st.dm.set("DeviceDataCtrlr", "BytesPerMessage", 1200, vi="GetReport")
    resp, _ = _run_report(st, "ConfigurationInventory", 3)
    parts = _check_parts(st, 3, T.ITEMS, 1200)
    assert len(parts) > 2
    got = sum(len(p["reportData"]) for p in parts)
    assert got == len(list(dm_csms.report(st.dm, "ConfigurationInventory")))
    _cleanup(d)


def test_TC_B_12_14_configuration_and_summary_inventory_accepted():
    for base in ("ConfigurationInventory", "SummaryInventory"):
        st, d = _block()
        resp, _ = _run_report(st, base, 11)
        assert resp == {"status": "Accepted"}
        _check_parts(st, 11, T.ITEMS, T.BYTES)
        _cleanup(d)


def test_B07_FR_02_05_TC_B_15_not_supported_base_sends_nothing():
    st, d = _block()
    out = st.rpc.handlers["GetBaseReport"]({"requestId": 1, "reportBase": "Everything"})
    assert out == {"status": "NotSupported"}
    assert st.sent == []
    _cleanup(d)


def test_B07_FR_13_second_report_while_sending_is_rejected():
    st, d = _block()
    h = st.rpc.handlers["GetBaseReport"]

    async def main():
        resp, after = h({"requestId": 1, "reportBase": "FullInventory"})
        t = compat.create_task(after())
        await compat.sleep_ms(0)
        second = h({"requestId": 2, "reportBase": "FullInventory"})
        await t
        third = h({"requestId": 3, "reportBase": "SummaryInventory"})
        return second, third

    second, third = compat.run(main())
    assert second["status"] == "Rejected"
    assert third[0] == {"status": "Accepted"}
    assert all(json.loads(f)[3]["requestId"] == 1 for a, f in st.sent)
    _cleanup(d)
