"""Blocks that only answer CSMS requests (station.ON_DEMAND) are imported for a request and
dropped afterwards; a request in progress keeps its block, and its state, loaded."""
import json

import pytest

from firmware.station import ON_DEMAND

ON_DEMAND_MODULES = ["firmware." + name for name, _ in ON_DEMAND]


def _loaded(st):
    mods = st.cmd("modules")["modules"]
    return [m for m in ON_DEMAND_MODULES if m in mods]


def _booted(csms, station):
    st = station()
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    return st


def test_on_demand_blocks_are_not_loaded_until_asked_and_dropped_after(csms, station):
    st = _booted(csms, station)
    assert _loaded(st) == []
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
    assert r["getVariableResult"][0]["attributeStatus"] == "Accepted"
    r = csms.call(st.identity, "DataTransfer", {"vendorId": "com.example"})
    assert r["status"] == "UnknownVendorId"
    # a block lingers after its request (ON_DEMAND_LINGER_MS), so a burst imports it once
    assert "firmware.data_transfer" in _loaded(st)
    r = csms.call(st.identity, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: csms.csms.calls("Heartbeat", st.identity), 10, "triggered Heartbeat")
    csms.wait_for(lambda: _loaded(st) == [], 20, "on-demand blocks dropped")
    # and loaded again for the next request
    r = csms.call(st.identity, "SetVariables", {"setVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
         "attributeValue": "120"}]})
    assert r["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert "firmware.variables" in _loaded(st)
    csms.wait_for(lambda: _loaded(st) == [], 20, "dropped again")


DM_CSMS = "firmware.dm_csms"  # the device model's GetVariables/SetVariables/report half


def _modules(st):
    return st.cmd("modules")["modules"]


def test_B05_B06_B07_dm_csms_is_loaded_only_while_serving_variables(csms, station):
    """The CSMS-facing half of the device model is not resident: the installer's --set, the
    console's get/set and the variables block load it and drop it again after use."""
    st = station(args=("--set", "OCPPCommCtrlr.MessageTimeout[Default]=3",
                       "--set", "TxCtrlr.EVConnectionTimeOut=200"))
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    # the installer's settings applied, then dropped; so is the model's start-up code
    assert DM_CSMS not in _modules(st) and "firmware.dm_boot" not in _modules(st)
    r = st.cmd("get TxCtrlr.EVConnectionTimeOut")
    assert r["ok"] and r["value"] == "200", r
    assert st.cmd("set TxCtrlr.EVConnectionTimeOut 210")["ok"]
    assert DM_CSMS not in _modules(st)
    # TC_B_06_CS GetVariables
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [
        {"component": {"name": "TxCtrlr"}, "variable": {"name": "EVConnectionTimeOut"}}]})
    assert r["getVariableResult"][0]["attributeValue"] == "210"
    csms.wait_for(lambda: _loaded(st) == [], 20, "variables dropped after GetVariables")
    assert DM_CSMS not in _modules(st)
    # TC_B_13_CS GetBaseReport: the report's generator holds it until the last part; a
    # console get meanwhile uses the loaded copy and leaves it to the block
    def meanwhile():
        assert DM_CSMS in _modules(st)
        assert st.cmd("get TxCtrlr.EVConnectionTimeOut")["value"] == "210"
        assert DM_CSMS in _modules(st)
    _report_held_then_whole(csms, st, 4, 5, meanwhile)
    assert DM_CSMS not in _modules(st)


def _report_held_then_whole(csms, st, held, whole, meanwhile):
    """GetBaseReport `held` whose first NotifyReport the CSMS leaves unanswered (meanwhile()
    runs then, the variables block loaded): it times out (MessageTimeout 3 s), the report
    ends and the block goes; then GetBaseReport `whole` is sent in full and the block goes."""
    csms.csms.hold.add("NotifyReport")
    r = csms.call(st.identity, "GetBaseReport", {"requestId": held, "reportBase": "FullInventory"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: csms.csms.calls("NotifyReport", st.identity), 10, "first part")
    assert _loaded(st) == ["firmware.variables"]
    meanwhile()
    csms.wait_for(lambda: _loaded(st) == [], 20, "variables dropped after the report stopped")
    assert DM_CSMS not in _modules(st)
    csms.csms.hold.discard("NotifyReport")
    r = csms.call(st.identity, "GetBaseReport", {"requestId": whole, "reportBase": "FullInventory"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: [p for p in csms.csms.calls("NotifyReport", st.identity)
                           if p["requestId"] == whole and not p.get("tbc")], 30, "whole report")
    csms.wait_for(lambda: _loaded(st) == [], 20, "variables dropped after the report")


def test_B07_FR_13_report_in_progress_keeps_its_block_and_rejects_a_second(csms, station):
    st = station(args=("--set", "OCPPCommCtrlr.MessageTimeout[Default]=3"))
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    def second():
        r = csms.call(st.identity, "GetBaseReport", {"requestId": 2, "reportBase": "FullInventory"})
        assert r["status"] == "Rejected"
    _report_held_then_whole(csms, st, 1, 3, second)
    assert 2 not in [p["requestId"] for p in csms.csms.calls("NotifyReport", st.identity)]


def test_follow_up_dropped_when_the_response_cannot_be_sent_releases_the_block(tmp_path):
    import asyncio
    from firmware.station import Station
    from host.sim_board import SimBoard

    class DeadLink:
        def __init__(self, st):
            self.st = st
            self.tried = []  # (frame, on-demand blocks loaded while it was being sent)

        async def send(self, text):
            self.tried.append((text, sorted(self.st._demand)))
            raise OSError("link gone")

    async def run():
        st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "OD1")
        st.linger_ms = 0
        st.boot_status = "Accepted"
        st.rpc.ws = link = DeadLink(st)
        await st.rpc.on_frame('[2,"m1","TriggerMessage",{"requestedMessage":"Heartbeat"}]')
        await asyncio.sleep(0.05)
        return st, link

    st, link = asyncio.run(run())
    # the block answered (its follow-up holding it), then the send failed and released it
    assert link.tried == [('[3, "m1", {"status": "Accepted"}]', ["remote_control"])]
    assert st._demand == {} and "remote_control" not in st.blocks


def test_B06_FR_17_D01_requests_over_BytesPerMessage_are_format_violations(csms, station):
    """The limit applies to the received frame (BytesPerMessage 4096 B, 16 items)."""
    from host.csms import CsmsCallError
    st = _booted(csms, station)
    long = "L" * 50
    item = {"component": {"name": long, "instance": long, "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": long, "instance": long}}
    for action, payload in (
            ("GetVariables", {"getVariableData": [item] * 16}),
            ("SendLocalList", {"versionNumber": 5, "updateType": "Full", "localAuthorizationList": [
                {"idToken": {"idToken": "T%02d" % i, "type": "ISO14443"},
                 "idTokenInfo": {"status": "Accepted", "personalMessage": {
                     "format": "UTF8", "content": "m" * 400}}} for i in range(16)]})):
        try:
            csms.call(st.identity, action, payload)
        except CsmsCallError as e:
            assert e.code == "FormatViolation", (action, e)
        else:
            raise AssertionError("%s over BytesPerMessage was accepted" % action)
    # a request within the limit is answered
    r = csms.call(st.identity, "GetVariables", {"getVariableData": [item] * 2})
    assert r["getVariableResult"][0]["attributeStatus"] == "UnknownComponent"


def test_a_burst_of_requests_keeps_one_drop_timer(tmp_path):
    # one timer per loaded block: a timer per request held a sleeping task each (a 2 MB heap
    # ran out after ~6,000 DataTransfer calls)
    import asyncio
    from firmware.station import Station
    from host.sim_board import SimBoard

    class Link:
        def __init__(self):
            self.sent = []

        async def send(self, text):
            self.sent.append(text)

    async def run():
        st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "OD2")
        st.boot_status = "Accepted"
        st.rpc.ws = link = Link()
        for i in range(200):
            await st.rpc.on_frame('[2,"m%d","DataTransfer",{"vendorId":"x"}]' % i)
        live = [t for t in st._tasks if not t.done()]
        loaded = "data_transfer" in st.blocks
        st.linger_ms = 50
        await asyncio.sleep(0.3)
        return len(link.sent), len(live), loaded, "data_transfer" in st.blocks

    sent, live, loaded, still = asyncio.run(run())
    assert sent == 200 and live == 1 and loaded and not still


# Users of the crypto core come and go: the certificates and station_cert blocks (loaded on
# demand, BORROWED at import and given back when the station unloads them) and a firmware
# update's steps (fw_job.STEP borrowed around each). Whoever ends first leaves the same
# module objects to the other (dropped under it, the next import would load a second copy on
# the heap); the last one drops them; a module someone imported for good stays.
SHARED_CRYPTO = r"""
import sys, json
from firmware import compat
CORE = ("firmware.x509", "firmware.asn1", "firmware.ecdsa", "firmware.sha512")
out = []
def mods():
    return [m for m in CORE if m in sys.modules]
def block(name):
    return __import__("firmware." + name, None, None, ("Block",))  # as station._load
def use():
    from firmware import x509, ecdsa  # a request's or a signature check's lazy imports
    return x509
fw_job = compat.borrow("firmware.fw_job")
for a, b in (("station_cert", "certificates"), ("certificates", "station_cert"),
             ("certificates", "step"), ("step", "certificates"), ("station_cert", "step")):
    for name in (a, b):
        if name == "step":
            compat.borrow_all(fw_job.STEP)
        else:
            block(name)
    x509 = use()
    compat.unload("firmware." + a) if a != "step" else compat.release_all(fw_job.STEP)
    out.append([a + " then " + b, mods(), sys.modules.get("firmware.x509") is x509])
    compat.unload("firmware." + b) if b != "step" else compat.release_all(fw_job.STEP)
    out.append([b + " last", mods() + [m for m in ("firmware.cert_store", "firmware.fw_bundle",
               "firmware.certificates", "firmware.station_cert", "firmware.client_cert")
               if m in sys.modules]])
compat.release("firmware.fw_job")
out.append(["job over", "firmware.fw_job" in sys.modules])
class _Dm:  # CertSigningWaitMinimum 0: the resend ends at once
    def get(self, *a):
        return 0
class _St:
    dm = _Dm()
from firmware import csr_resend  # as firmware.security while a CSR waits
compat.asyncio.run(csr_resend.resend(_St()))
compat.unload("firmware.csr_resend")
out.append(["resend over", "firmware.client_cert" in sys.modules])
import firmware.asn1
mine = firmware.asn1
block("certificates")
use()
compat.unload("firmware.certificates")
out.append(["resident kept", mods(), sys.modules.get("firmware.asn1") is mine])
print(json.dumps(out))
"""


def test_crypto_modules_shared_by_blocks_and_a_firmware_step_go_with_the_last(target):
    import json
    import subprocess
    import sys
    from tests.harness import ROOT, micropython_exe
    exe = [micropython_exe()] if target == "micropython" else [sys.executable]
    p = subprocess.run(exe + ["-c", SHARED_CRYPTO], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    core = ["firmware.x509", "firmware.asn1", "firmware.ecdsa", "firmware.sha512"]
    want = []
    for a, b in (("station_cert", "certificates"), ("certificates", "station_cert"),
                 ("certificates", "step"), ("step", "certificates"), ("station_cert", "step")):
        want += [[a + " then " + b, core, True], [b + " last", []]]
    assert out == want + [["job over", False], ["resend over", False],
                          ["resident kept", ["firmware.asn1"], True]], p.stderr


def _dropped(csms, st, what):
    csms.wait_for(lambda: _loaded(st) == [], 20, what + " dropped")


def test_B09_C11_D01_D02_G03_request_blocks_load_for_their_request_and_drop_after(csms, station):
    """SetNetworkProfile (network_profile), ClearCache / SendLocalList / GetLocalListVersion
    (auth_requests) and ChangeAvailability (change_availability) are answered by on-demand
    blocks; what they change lives in the resident blocks, so it outlasts the drop."""
    st = _booted(csms, station)
    assert _loaded(st) == []
    url = csms.csms.url()
    r = csms.call(st.identity, "SetNetworkProfile", {"configurationSlot": 2, "connectionData": {
        "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
        "messageTimeout": 10, "securityProfile": 1, "ocppInterface": "Wired0"}})
    assert r == {"status": "Accepted"}
    assert _loaded(st) == ["firmware.network_profile"]
    _dropped(csms, st, "network_profile")
    # B10.FR.02: slot 2 is accepted in the priority only because the dropped block stored it
    r = csms.call(st.identity, "SetVariables", {"setVariableData": [
        {"component": {"name": "OCPPCommCtrlr"},
         "variable": {"name": "NetworkConfigurationPriority"}, "attributeValue": "2,1"}]})
    assert r["setVariableResult"][0]["attributeStatus"] == "Accepted"
    _dropped(csms, st, "variables")

    r = csms.call(st.identity, "SendLocalList", {"versionNumber": 3, "updateType": "Full",
                                                 "localAuthorizationList": [
        {"idToken": {"idToken": "OD1", "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}]})
    assert r["status"] == "Accepted"
    assert _loaded(st) == ["firmware.auth_requests"]
    _dropped(csms, st, "auth_requests")
    assert st.cmd("auth list")["entries"] == 1    # the list is the resident block's
    assert csms.call(st.identity, "GetLocalListVersion", {})["versionNumber"] == 3
    assert csms.call(st.identity, "ClearCache", {})["status"] == "Accepted"
    assert _loaded(st) == ["firmware.auth_requests"]
    _dropped(csms, st, "auth_requests again")

    n = len(csms.csms.calls("StatusNotification", st.identity))
    r = csms.call(st.identity, "ChangeAvailability", {"operationalStatus": "Inoperative",
                                                      "evse": {"id": 1}})
    assert r["status"] == "Accepted"
    assert _loaded(st) == ["firmware.change_availability"]
    csms.wait_for(lambda: [p for p in csms.csms.calls("StatusNotification", st.identity)[n:]
                           if p["connectorStatus"] == "Unavailable"], 10, "Unavailable")
    _dropped(csms, st, "change_availability")
    # the Inoperative EVSE is the resident block's state: the next request sees it
    r = csms.call(st.identity, "ChangeAvailability", {"operationalStatus": "Operative",
                                                      "evse": {"id": 1}})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: [p for p in csms.csms.calls("StatusNotification", st.identity)[n:]
                           if p["connectorStatus"] == "Available"], 10, "Available again")
    _dropped(csms, st, "change_availability again")


def test_request_code_is_not_in_the_resident_blocks():
    """The moved handlers are gone from the resident modules, so they cost no heap there."""
    from firmware import authorization, availability, provisioning, security
    assert not hasattr(provisioning.Block, "set_network_profile")
    assert not hasattr(provisioning.NetProfiles, "validate")
    for name in ("_on_clear_cache", "_on_send_local_list", "_on_get_local_list_version"):
        assert not hasattr(authorization.Block, name)
    assert not hasattr(availability.Block, "change")
    assert not hasattr(security.Block, "owns_certificate")


def test_websocket_handshake_is_dropped_once_connected_and_loaded_again_to_reconnect(csms, station):
    """firmware.ws_handshake (the HTTP Upgrade, TLS/TCP open) and firmware.net are imported
    for a connect and dropped when the link is up; a reconnect imports them again."""
    from tests.helpers import RECONNECT_EVERY_1S_ARGS
    connect_only = ("firmware.ws_handshake", "firmware.net")
    st = station(args=RECONNECT_EVERY_1S_ARGS)
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", st.identity), 15, "boot")
    mods = st.cmd("modules")["modules"]
    assert "firmware.ws" in mods
    assert [m for m in connect_only if m in mods] == []
    n = csms.csms.connections
    csms.run(csms.csms.disconnect(st.identity))
    csms.wait_for(lambda: csms.csms.connections > n and st.identity in csms.csms.sessions,
                  15, "reconnect")
    st.wait_status(lambda s: s["connected"], 10, "reconnected")
    # the new link carries requests: the handshake code was there to open it
    r = csms.call(st.identity, "DataTransfer", {"vendorId": "com.example"})
    assert r["status"] == "UnknownVendorId"
    mods = st.cmd("modules")["modules"]
    assert [m for m in connect_only if m in mods] == []


class _Link:
    def __init__(self):
        self.sent = []

    async def send(self, text):
        self.sent.append(json.loads(text))


def _answers(st, frames):
    """What st answers to the CALL frames, in order (no CSMS, no network)."""
    import asyncio

    async def run():
        st.boot_status = "Accepted"
        st.rpc.ws = link = _Link()
        for f in frames:
            await st.rpc.on_frame(f)
        return link.sent

    return asyncio.run(run())


def test_on_demand_block_without_the_resident_block_it_needs_is_not_offered(tmp_path):
    """Left out (Station(blocks=...)), smart_charging / authorization / availability /
    provisioning take the actions of the on-demand blocks built on them along: rpc answers
    them as it answers an action without a handler, not InternalError from a constructor
    that found its resident block missing."""
    from firmware.station import Station
    from host.sim_board import SimBoard
    st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "OD4", blocks=())
    st.linger_ms = 0
    sent = _answers(st, [
        '[2,"r","Reset",{"type":"Immediate"}]',  # the action of a left-out resident block
        '[2,"a","SetChargingProfile",{"evseId":1,"chargingProfile":{"id":1,"stackLevel":0,'
        '"chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute",'
        '"chargingSchedule":[{"id":1,"chargingRateUnit":"A","chargingSchedulePeriod":'
        '[{"startPeriod":0,"limit":6}]}]}}]',
        '[2,"b","ClearCache",{}]',
        '[2,"c","ChangeAvailability",{"operationalStatus":"Inoperative"}]',
        '[2,"d","SetNetworkProfile",{"configurationSlot":2,"connectionData":{'
        '"ocppVersion":"OCPP20","ocppTransport":"JSON","ocppCsmsUrl":"ws://127.0.0.1:9",'
        '"messageTimeout":10,"securityProfile":1,"ocppInterface":"Wired0"}}]',
        '[2,"e","DataTransfer",{"vendorId":"x"}]'])  # needs no resident block: answered
    unsupported = sent[0]
    assert unsupported[0] == 4 and unsupported[2] in ("NotSupported", "NotImplemented")
    for m in sent[1:5]:
        assert m[0] == 4 and m[2] == unsupported[2], m
    assert sent[5] == [3, "e", {"status": "UnknownVendorId"}]
    assert st._demand == {} and st.blocks == {}


def test_on_demand_load_out_of_memory_half_way_is_loaded_again_next_request(tmp_path):
    """A block whose constructor registered a handler and then ran out of memory: the
    request fails, rpc keeps no handler of the half-made block, and the next request loads
    the block again through _OnDemand."""
    import sys
    from firmware.station import Station
    from host.sim_board import SimBoard
    made = []

    class Block:
        def __init__(self, st):
            made.append(self)
            st.rpc.register("DataTransfer", lambda p: {"status": "Rejected"})  # half-made
            if len(made) == 1:
                raise MemoryError("memory allocation failed")
            st.rpc.register("DataTransfer", lambda p: {"status": "Accepted"})

    class Module:
        pass

    from firmware import compat
    mod = Module()
    mod.Block = Block
    mod.BORROWED = ("firmware.od_half_made_dep",)  # as a module borrows at its import
    name = "firmware.od_half_made"
    sys.modules[name] = mod
    compat.borrow_all(mod.BORROWED, name)
    try:
        st = Station(SimBoard(1, str(tmp_path)), "ws://127.0.0.1:9", "OD5", blocks=(),
                     on_demand=(("od_half_made", ("DataTransfer",)),))
        st.linger_ms = 0
        first = _answers(st, ['[2,"m1","DataTransfer",{"vendorId":"x"}]'])
        assert first[0][:3] == [4, "m1", "InternalError"], first
        assert "DataTransfer" not in st.rpc.handlers
        assert st._demand == {} and "od_half_made" not in st.blocks
        assert name not in sys.modules  # unloaded with the half-made block,
        assert mod.BORROWED[0] not in compat._lent  # and what its import borrowed given back
        sys.modules[name] = mod  # stands for the import of its file again
        compat.borrow_all(mod.BORROWED, name)
        second = _answers(st, ['[2,"m2","DataTransfer",{"vendorId":"x"}]'])
        assert second == [[3, "m2", {"status": "Accepted"}]]
        assert len(made) == 2 and "DataTransfer" not in st.rpc.handlers
        assert st._demand == {} and mod.BORROWED[0] not in compat._lent
    finally:
        sys.modules.pop(name, None)
        compat._lent.pop(mod.BORROWED[0], None)
        compat._owed.pop(name, None)


def test_module_whose_import_fails_after_borrowing_gives_back_what_it_borrowed(tmp_path):
    """A block module runs out of memory in its body after compat.borrow_all(BORROWED,
    __name__): the runtime drops the half-run module from sys.modules, and the importer's
    unload still gives back its borrowed modules (they would otherwise never be unloaded)."""
    import sys
    from firmware import compat
    (tmp_path / "od_fails_at_import.py").write_text(
        "from firmware import compat\n"
        "BORROWED = ('od_fails_at_import_dep',)\n"
        "compat.borrow_all(BORROWED, __name__)\n"
        "raise MemoryError('memory allocation failed')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(MemoryError):
            compat.borrow("od_fails_at_import")
        assert "od_fails_at_import" not in sys.modules
        assert "od_fails_at_import_dep" not in compat._lent
        assert "od_fails_at_import" not in compat._lent
    finally:
        sys.path.remove(str(tmp_path))
        compat._lent.pop("od_fails_at_import_dep", None)
        compat._owed.pop("od_fails_at_import", None)
