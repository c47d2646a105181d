"""Firmware update (OCPP 2.0.1 L01, Part 6 TC_L_xx_CS): a station on either runtime downloads
PYFW1 bundles from a real loopback HTTP server, checks the signing certificate against the
ManufacturerRootCertificate the CSMS installed and the signature over the file (ECDSA P-256,
RSA-PSS, RSA PKCS#1 v1.5, all made by `cryptography`), installs into the inactive slot and
reboots into it; power cuts (SIGKILL) during the download and the installation."""
import base64
import datetime
import hashlib
import json
import os
import time

import pytest

from tests.fw_server import FileServer
from tests.helpers import boot, energy_transfer, sent_security_events, statuses, tx_events, \
    trigger, wait_status
from tests.pki import make_cert, pem_text
from tools import sign

OLD = "0.1.0"   # hal.Board.firmware_version: the factory code
NEW = "2.0.0"


# ------------------------------------------------------------------ keys, certificates, bundles
@pytest.fixture(scope="module")
def fwpki():
    """Manufacturer roots (EC and RSA), signing certificates they issued, and bad ones."""
    p = {}
    p["root_key"], p["root"] = make_cert("Test Manufacturer Root", kind="ec")
    p["ec_key"], p["ec"] = make_cert("Firmware Signing EC", issuer=p["root"],
                                     issuer_key=p["root_key"], ca=False, key_usage="leaf")
    p["rsa_root_key"], p["rsa_root"] = make_cert("Test Manufacturer RSA Root", kind="rsa")
    p["rsa_key"], p["rsa"] = make_cert("Firmware Signing RSA", issuer=p["rsa_root"],
                                       issuer_key=p["rsa_root_key"], ca=False,
                                       key_usage="leaf", kind="rsa")
    other_key, other = make_cert("Some Other Manufacturer", kind="ec")
    p["wrong_key"], p["wrong"] = make_cert("Firmware Signing Elsewhere", issuer=other,
                                           issuer_key=other_key, ca=False, key_usage="leaf")
    p["expired_key"], p["expired"] = make_cert("Firmware Signing Expired", issuer=p["root"],
                                               issuer_key=p["root_key"], ca=False,
                                               key_usage="leaf", valid_from_days=-20,
                                               valid_days=10)
    return p


def make_files(directory, version, n=3, size=3000):
    """Source files of a bundle: {bundle name: bytes}, written under directory."""
    files = {"VERSION": version.encode()}
    for i in range(n):
        files["firmware/mod%d.py" % i] = (("# %s module %d\n" % (version, i)).encode()
                                          + os.urandom(size // 2).hex().encode()[:size])
    for name, data in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


def bundle_bytes(tmp_path, version=NEW, n=3, size=3000, tag="b"):
    """(bundle bytes, {name: bytes}) built with tools.sign.write_bundle."""
    src = tmp_path / ("src-" + tag)
    files = make_files(str(src), version, n, size)
    out = str(tmp_path / (tag + ".pyfw"))
    sign.write_bundle(out, sign.collect([str(src)]), version)
    with open(out, "rb") as f:
        return f.read(), files


def signature(key, data, pkcs1v15=False):
    return base64.b64encode(sign.sign_bytes(key, data, pkcs1v15)).decode()


@pytest.fixture
def files_srv():
    s = FileServer()
    yield s
    s.stop()


# ------------------------------------------------------------------ protocol helpers
def iso(offset_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def install_root(csms, st, cert):
    r = csms.call(st.identity, "InstallCertificate", {
        "certificateType": "ManufacturerRootCertificate", "certificate": pem_text(cert)})
    assert r["status"] == "Accepted", r


def update(csms, st, location, cert, sig, request_id=1, retrieve=-7200, install=-7200,
           retries=None, interval=None):
    fw = {"location": location, "retrieveDateTime": iso(retrieve)}
    if install is not None:
        fw["installDateTime"] = iso(install)
    if cert is not None:
        fw["signingCertificate"] = pem_text(cert)
    if sig is not None:
        fw["signature"] = sig
    p = {"requestId": request_id, "firmware": fw}
    if retries is not None:
        p["retries"] = retries
    if interval is not None:
        p["retryInterval"] = interval
    return csms.call(st.identity, "UpdateFirmware", p)


def fw_notes(csms, cp, rid=None):
    return [(n["status"], n.get("requestId")) for n in csms.csms.calls("FirmwareStatusNotification", cp)
            if rid is None or n.get("requestId") == rid]


def fw_statuses(csms, cp, rid=None):
    return [s for s, _ in fw_notes(csms, cp, rid)]


def wait_fw(csms, cp, status, timeout=30, rid=None):
    return csms.wait_for(lambda: status in fw_statuses(csms, cp, rid), timeout,
                         "FirmwareStatusNotification %s; got %s" % (status, fw_statuses(csms, cp, rid)))


def boots(csms, cp):
    return csms.csms.calls("BootNotification", cp)


def collapse(seq):
    """Statuses in order with immediate repeats removed (a power cut may repeat one)."""
    out = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return out


def slot_doc(st):
    with open(os.path.join(st.data_dir, "fw_slot.json")) as f:
        return json.load(f)


def running_files(st):
    """{name: bytes} of the bundle the slot pointer names for the next start (None: factory)."""
    doc = slot_doc(st) if os.path.exists(os.path.join(st.data_dir, "fw_slot.json")) else {}
    slot = doc.get("trial") or doc.get("active")
    if not slot:
        return None
    base = os.path.join(st.data_dir, slot)
    out = {}
    for root, _, names in os.walk(base):
        for n in names:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, base).replace(os.sep, "/")
            if rel != "manifest.json":
                with open(p, "rb") as f:
                    out[rel] = f.read()
    return out


def start_ready(csms, station, fwpki, *sets, evses=1, root="root"):
    st = boot(csms, station, *sets, evses=evses)
    if root:
        install_root(csms, st, fwpki[root])
    return st


# ------------------------------------------------------------------ TC_L_01 / 02 / 03
FULL = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
        "Installed"]


@pytest.mark.parametrize("kind", ["ec", "rsa-pss", "rsa-pkcs1"])
def test_TC_L_01_CS_secure_update_installed_after_reboot(csms, station, fwpki, files_srv,
                                                         tmp_path, kind):
    """L01.FR.01/04/05/10/12/15/20/21/28/31/32(a): every status in order with the request's
    id, a reboot with reason FirmwareUpdate into the new bundle (its version in
    BootNotification), Installed sent by the new bundle, then FirmwareUpdated."""
    cert_name, key_name = ("ec", "ec_key") if kind == "ec" else ("rsa", "rsa_key")
    st = start_ready(csms, station, fwpki, root="root" if kind == "ec" else "rsa_root")
    data, files = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    sig = signature(fwpki[key_name], data, pkcs1v15=kind == "rsa-pkcs1")
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki[cert_name], sig, 77) == {"status": "Accepted"}
    wait_fw(csms, st.identity, "Installed", 60)
    assert fw_notes(csms, st.identity) == [(s, 77) for s in FULL]
    b = boots(csms, st.identity)
    assert len(b) == 2 and b[1]["reason"] == "FirmwareUpdate"
    assert b[0]["chargingStation"]["firmwareVersion"] == OLD
    assert b[1]["chargingStation"]["firmwareVersion"] == NEW
    csms.wait_for(lambda: "FirmwareUpdated" in sent_security_events(csms, st.identity), 15, "FirmwareUpdated")
    # the slot the pointer names holds exactly the bundle's files
    assert running_files(st) == files
    assert slot_doc(st)["trial"] is None and slot_doc(st)["version"] == NEW
    # TC_L_01 step 9/16: the EVSE was Unavailable for the installation, Available after it
    assert (1, 1, "Unavailable") in statuses(csms, st.identity)
    assert statuses(csms, st.identity)[-1] == (1, 1, "Available")
    # the update's code left the heap with it (the crypto modules too in the simulator only
    # when nothing else held them at the reboot: it restarts the station in one process, and
    # the certificates block, lingering after the InstallCertificate, shared them)
    assert [m for m in job_modules(st) if m not in ("firmware.x509", "firmware.ecdsa",
                                                     "firmware.rsa")] == []


JOB = ("firmware.fw_job", "firmware.fw_bundle", "firmware.http_client", "firmware.x509",
       "firmware.rsa", "firmware.ecdsa")


def job_modules(st):
    return [m for m in st.cmd("modules")["modules"] if m in JOB]


def wait_job_dropped(csms, st):
    """The update's modules leave sys.modules (the certificates block, which shares the
    crypto ones, lingers ON_DEMAND_LINGER_MS = 5 s after the InstallCertificate first)."""
    csms.wait_for(lambda: job_modules(st) == [], 15, "update modules dropped; still %s" % job_modules(st))


def test_TC_L_02_CS_install_scheduled_at_installDateTime(csms, station, fwpki, files_srv, tmp_path):
    """L01.FR.16: installDateTime in the future -> InstallScheduled after SignatureVerified,
    installation once that time has come."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  5, install=15)["status"] == "Accepted"  # time for download + check on a busy host
    wait_fw(csms, st.identity, "Installed", 60)
    assert fw_statuses(csms, st.identity) == FULL[:3] + ["InstallScheduled"] + FULL[3:]


def test_TC_L_03_CS_download_scheduled_at_retrieveDateTime(csms, station, fwpki, files_srv, tmp_path):
    """L01.FR.13: retrieveDateTime in the future -> DownloadScheduled, nothing fetched until
    then, then the whole update."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  6, retrieve=10)["status"] == "Accepted"
    wait_fw(csms, st.identity, "DownloadScheduled", 10)
    assert files_srv.requests == []  # nothing fetched before retrieveDateTime
    wait_fw(csms, st.identity, "Installed", 60)
    assert fw_statuses(csms, st.identity) == ["DownloadScheduled"] + FULL


# ------------------------------------------------------------------ TC_L_05 / 06 / 07 / 08 / 18
@pytest.mark.parametrize("case", ["wrong-signer", "expired-signer", "no-manufacturer-root"])
def test_TC_L_05_CS_invalid_signing_certificate(csms, station, fwpki, files_srv, tmp_path, case):
    """L01.FR.02/21/22: a signing certificate the installed ManufacturerRootCertificate did
    not issue, one that expired, or no ManufacturerRootCertificate at all: InvalidCertificate
    before anything is fetched, and the security event InvalidFirmwareSigningCertificate."""
    st = start_ready(csms, station, fwpki, root=None if case == "no-manufacturer-root" else "root")
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    cert, key = {"wrong-signer": ("wrong", "wrong_key"), "expired-signer": ("expired", "expired_key"),
                 "no-manufacturer-root": ("ec", "ec_key")}[case]
    r = update(csms, st, files_srv.url("/fw.pyfw"), fwpki[cert], signature(fwpki[key], data), 9)
    assert r["status"] == "InvalidCertificate", r
    csms.wait_for(lambda: "InvalidFirmwareSigningCertificate" in sent_security_events(csms, st.identity),
                  10, "InvalidFirmwareSigningCertificate")
    time.sleep(0.5)
    assert fw_statuses(csms, st.identity) == [] and files_srv.requests == []
    wait_job_dropped(csms, st)


@pytest.mark.parametrize("case", ["other-key", "corrupted-file", "truncated-file"])
def test_TC_L_06_CS_invalid_signature(csms, station, fwpki, files_srv, tmp_path, case):
    """L01.FR.03/04: a real signature by another key, or the signed file changed / cut short
    on the server: Downloading, Downloaded, InvalidSignature, then the security event
    InvalidFirmwareSignature; no installation, no reboot."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    sig = signature(fwpki["wrong_key"] if case == "other-key" else fwpki["ec_key"], data)
    if case == "corrupted-file":
        data = data[:-100] + bytes([data[-100] ^ 0x55]) + data[-99:]
    elif case == "truncated-file":
        data = data[:len(data) // 2]
    files_srv.files["/fw.pyfw"] = data
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], sig, 11)["status"] == "Accepted"
    wait_fw(csms, st.identity, "InvalidSignature", 30)
    csms.wait_for(lambda: "InvalidFirmwareSignature" in sent_security_events(csms, st.identity),
                  10, "InvalidFirmwareSignature")
    assert fw_notes(csms, st.identity) == [("Downloading", 11), ("Downloaded", 11), ("InvalidSignature", 11)]
    time.sleep(0.5)
    assert len(boots(csms, st.identity)) == 1 and running_files(st) is None
    wait_job_dropped(csms, st)


@pytest.mark.parametrize("case", ["404", "connection-cut"])
def test_TC_L_07_CS_download_failed_after_retries(csms, station, fwpki, files_srv, tmp_path, case):
    """L01.FR.30: a location that does not exist (404), or a server that cuts every response
    short: retried `retries` times `retryInterval` apart, then DownloadFailed."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    if case == "connection-cut":
        files_srv.files["/fw.pyfw"] = data
        files_srv.faults["/fw.pyfw"] = "truncate"
    loc = files_srv.url("/fw.pyfw" if case == "connection-cut" else "/fw.pyfw_does.not.exist")
    assert update(csms, st, loc, fwpki["ec"], signature(fwpki["ec_key"], data), 13,
                  retries=2, interval=1)["status"] == "Accepted"
    wait_fw(csms, st.identity, "DownloadFailed", 40)
    assert fw_statuses(csms, st.identity) == ["Downloading", "DownloadFailed"]
    assert len(files_srv.requests) >= 3  # the first try and two retries
    assert len(boots(csms, st.identity)) == 1
    assert not os.path.exists(os.path.join(st.data_dir, "fw_dl.bin"))


def test_TC_L_08_CS_install_verification_failed(csms, station, fwpki, files_srv, tmp_path):
    """L01.FR.29: a correctly signed bundle whose file does not match its manifest's SHA-256:
    Installing, then InstallVerificationFailed; the slot pointer never moves, the EVSE is
    Available again, no reboot."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    head, rest = data.split(b"\n", 1)
    rest = bytes([rest[0] ^ 1]) + rest[1:]  # the first file's first byte, after hashing
    data = head + b"\n" + rest
    files_srv.files["/fw.pyfw"] = data
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  15)["status"] == "Accepted"
    wait_fw(csms, st.identity, "InstallVerificationFailed", 30)
    assert fw_statuses(csms, st.identity) == FULL[:4] + ["InstallVerificationFailed"]
    wait_status(csms, st.identity, 1, "Available", after=len(statuses(csms, st.identity)) - 1)
    time.sleep(0.5)
    assert len(boots(csms, st.identity)) == 1 and running_files(st) is None


def test_TC_L_18_CS_unsigned_update_is_rejected(csms, station, fwpki, files_srv, tmp_path):
    """TC_L_18: without signingCertificate and signature the request is Rejected and
    nothing is fetched."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    r = update(csms, st, files_srv.url("/fw.pyfw"), None, None, 17)
    assert r["status"] == "Rejected", r
    time.sleep(0.5)
    assert fw_statuses(csms, st.identity) == [] and files_srv.requests == []


# ------------------------------------------------------------------ TC_L_10: cancel
def test_TC_L_10_CS_second_request_cancels_the_first(csms, station, fwpki, files_srv, tmp_path):
    """L01.FR.24: a new UpdateFirmware while one downloads -> AcceptedCanceled, the first
    stops, the second runs to Installed."""
    st = start_ready(csms, station, fwpki)
    slow, _ = bundle_bytes(tmp_path, "1.5.0", n=4, size=60000, tag="slow")
    data, files = bundle_bytes(tmp_path)
    files_srv.files["/slow.pyfw"] = slow
    files_srv.faults["/slow.pyfw"] = "slow"
    files_srv.files["/fw.pyfw"] = data
    assert update(csms, st, files_srv.url("/slow.pyfw"), fwpki["ec"],
                  signature(fwpki["ec_key"], slow), 20)["status"] == "Accepted"
    wait_fw(csms, st.identity, "Downloading", 10, rid=20)
    r = update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data), 21)
    assert r["status"] == "AcceptedCanceled", r
    wait_fw(csms, st.identity, "Installed", 60, rid=21)
    assert fw_statuses(csms, st.identity, 20) == ["Downloading"]
    assert fw_statuses(csms, st.identity, 21) == FULL
    assert boots(csms, st.identity)[-1]["chargingStation"]["firmwareVersion"] == NEW
    assert running_files(st) == files


# ------------------------------------------------------------------ TC_L_14 / 15: transactions
def test_TC_L_15_CS_install_waits_for_transaction_free_evses_unavailable(csms, station, fwpki,
                                                                        files_srv, tmp_path):
    """L01.FR.06/07 (AllowNewSessionsPendingFirmwareUpdate false): downloaded and verified
    during a transaction, InstallScheduled, the free EVSE Unavailable; Installing only after
    the transaction ended."""
    st = start_ready(csms, station, fwpki, evses=2)
    energy_transfer(csms, st, 1)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    n = len(statuses(csms, st.identity))
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  30)["status"] == "Accepted"
    wait_fw(csms, st.identity, "InstallScheduled", 30)
    wait_status(csms, st.identity, 2, "Unavailable", after=n)
    time.sleep(1.0)
    assert fw_statuses(csms, st.identity) == FULL[:3] + ["InstallScheduled"]
    assert (1, 1, "Unavailable") not in statuses(csms, st.identity)[n:]  # in use: keeps charging
    st.cmd("tap AABBCCDD")  # the driver stops the session
    st.cmd("unplug 1")
    wait_fw(csms, st.identity, "Installed", 60)
    assert fw_statuses(csms, st.identity) == FULL[:3] + ["InstallScheduled"] + FULL[3:]
    ended = [i for i, e in enumerate(tx_events(csms, st.identity)) if e["eventType"] == "Ended"]
    assert ended, "the transaction ended before the installation"


def test_TC_L_14_CS_new_sessions_allowed_while_install_pending(csms, station, fwpki, files_srv,
                                                               tmp_path):
    """AllowNewSessionsPendingFirmwareUpdate true: the free EVSE stays Available and takes a
    new session while the installation waits; it installs once both sessions ended."""
    st = start_ready(csms, station, fwpki, "ChargingStation.AllowNewSessionsPendingFirmwareUpdate=true",
                     evses=2)
    energy_transfer(csms, st, 1)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    n = len(statuses(csms, st.identity))
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  31)["status"] == "Accepted"
    wait_fw(csms, st.identity, "InstallScheduled", 30)
    energy_transfer(csms, st, 2, token="11223344")  # TC_L_12/14 step 5: a second session starts
    assert (2, 1, "Unavailable") not in statuses(csms, st.identity)[n:]
    for evse, token in ((1, "AABBCCDD"), (2, "11223344")):
        st.cmd("tap %s" % token)
        st.cmd("unplug %d" % evse)
    wait_fw(csms, st.identity, "Installed", 60)
    assert fw_statuses(csms, st.identity) == FULL[:3] + ["InstallScheduled"] + FULL[3:]


# ------------------------------------------------------------------ TriggerMessage
def test_L01_FR_25_FR_26_triggered_firmware_status(csms, station, fwpki, files_srv, tmp_path):
    """L01.FR.26: a TriggerMessage repeats the last status with its requestId; L01.FR.25:
    after Installed (and before any update) it says Idle."""
    st = start_ready(csms, station, fwpki)
    r, _ = trigger(csms, st.identity, "FirmwareStatusNotification")
    assert r["status"] == "Accepted"
    csms.wait_for(lambda: fw_notes(csms, st.identity) == [("Idle", None)], 10, "Idle")
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["wrong_key"], data), 40)
    wait_fw(csms, st.identity, "InvalidSignature", 30)
    trigger(csms, st.identity, "FirmwareStatusNotification")
    csms.wait_for(lambda: fw_notes(csms, st.identity)[-1] == ("InvalidSignature", 40)
                  and len(fw_notes(csms, st.identity)) == 5, 10, "repeated InvalidSignature")
    update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data), 41)
    wait_fw(csms, st.identity, "Installed", 60, rid=41)
    n = len(fw_notes(csms, st.identity))
    trigger(csms, st.identity, "FirmwareStatusNotification")
    csms.wait_for(lambda: len(fw_notes(csms, st.identity)) == n + 1, 10, "triggered status")
    assert fw_notes(csms, st.identity)[-1] == ("Idle", None)


# ------------------------------------------------------------------ power cuts and rollback
def restart(station, st, args=()):
    return station(args=list(args), identity=st.identity, data_dir=st.data_dir)


def test_power_cut_during_download_resumes_with_range(csms, station, fwpki, files_srv, tmp_path):
    """SIGKILL while the bundle downloads: after the restart the update resumes from the bytes
    already on flash (an HTTP Range request) and ends Installed with the new bundle."""
    st = start_ready(csms, station, fwpki)
    data, files = bundle_bytes(tmp_path, n=4, size=60000)
    files_srv.files["/fw.pyfw"] = data
    files_srv.faults["/fw.pyfw"] = "slow"
    assert update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  50)["status"] == "Accepted"
    csms.wait_for(lambda: files_srv.sent.get("/fw.pyfw", 0) > len(data) // 3, 30, "a third sent")
    st.kill()
    part = os.path.getsize(os.path.join(st.data_dir, "fw_dl.bin"))
    assert 0 < part < len(data)
    files_srv.faults.pop("/fw.pyfw")
    st2 = restart(station, st)
    wait_fw(csms, st.identity, "Installed", 60)
    assert [r for r in files_srv.requests[1:] if r[1]], "no Range request after the restart"
    assert collapse(fw_statuses(csms, st.identity)) == FULL
    assert running_files(st2) == files
    assert boots(csms, st.identity)[-1]["chargingStation"]["firmwareVersion"] == NEW


def test_power_cut_during_install_leaves_old_or_new_never_a_mix(csms, station, fwpki, files_srv,
                                                                tmp_path):
    """SIGKILL while the bundle is unpacked into the inactive slot: at that instant the slot
    pointer still names the old bundle (intact); after the restart the installation is done
    again and the station runs the whole new bundle."""
    st = start_ready(csms, station, fwpki)
    old, old_files = bundle_bytes(tmp_path, "1.0.0", tag="old")
    files_srv.files["/old.pyfw"] = old
    update(csms, st, files_srv.url("/old.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], old), 60)
    wait_fw(csms, st.identity, "Installed", 60, rid=60)
    data, files = bundle_bytes(tmp_path, n=120, size=30000)
    files_srv.files["/fw.pyfw"] = data
    update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data), 61)
    doc = os.path.join(st.data_dir, "fw.json")

    def installing():
        try:
            with open(doc) as f:
                return json.load(f).get("st") == "Installing"
        except (OSError, ValueError):
            return False
    csms.wait_for(installing, 60, "Installing")
    st.kill()
    with open(doc) as f:
        assert json.load(f)["st"] == "Installing", "the cut missed the installation"
    assert running_files(st) == old_files  # the pointer never named a half-written slot
    st2 = restart(station, st)
    wait_fw(csms, st.identity, "Installed", 90, rid=61)
    assert collapse(fw_statuses(csms, st.identity, 61)) == FULL
    assert running_files(st2) == files
    assert boots(csms, st.identity)[-1]["chargingStation"]["firmwareVersion"] == NEW


def test_rollback_when_new_bundle_never_gets_accepted(csms, station, fwpki, files_srv, tmp_path):
    """A new bundle that starts MAX_TRIAL_BOOTS times without an Accepted BootNotification
    is rolled back: the old bundle starts again and reports InstallationFailed."""
    st = start_ready(csms, station, fwpki)
    data, _ = bundle_bytes(tmp_path)
    files_srv.files["/fw.pyfw"] = data
    pending = {"on": False}

    def boot_reply(cp, payload):
        if pending["on"]:
            return {"currentTime": iso(0), "interval": 1, "status": "Pending"}
        return {"currentTime": iso(0), "interval": 300, "status": "Accepted"}
    csms.csms.responders["BootNotification"] = boot_reply
    pending["on"] = True  # from the reboot into the new bundle on
    # (the first boot was Accepted before the responder was set)
    update(csms, st, files_srv.url("/fw.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data), 70)
    wait_fw(csms, st.identity, "InstallRebooting", 60)
    for _ in range(3):  # starts 1 (the reboot), 2, 3 of the trial: never Accepted
        n = len(boots(csms, st.identity))
        csms.wait_for(lambda: len(boots(csms, st.identity)) > n, 20, "trial boot")
        assert boots(csms, st.identity)[-1]["chargingStation"]["firmwareVersion"] == NEW
        st.kill()
        st = restart(station, st)
    pending["on"] = False
    wait_fw(csms, st.identity, "InstallationFailed", 30)
    assert boots(csms, st.identity)[-1]["chargingStation"]["firmwareVersion"] == OLD
    assert running_files(st) is None
    assert collapse(fw_statuses(csms, st.identity)) == FULL[:5] + ["InstallationFailed"]


# ------------------------------------------------------------------ unit: bundle and RSA-PSS
def test_L01_FR_04_rsa_pss_verification_matches_cryptography():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from firmware import rsa
    from tests.pki import new_key
    key = new_key("rsa")
    bits = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.PKCS1)
    msg = b"firmware" * 50
    digest = hashlib.sha256(msg).digest()
    for salt in (32, 0, padding.PSS.MAX_LENGTH):
        sig = key.sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
                       hashes.SHA256())
        assert rsa.verify_pss(bits, digest, sig)
        assert not rsa.verify_pss(bits, hashlib.sha256(msg + b"x").digest(), sig)
        assert not rsa.verify_pss(bits, digest, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not rsa.verify_pss(bits, digest, key.sign(msg, padding.PKCS1v15(), hashes.SHA256()))


@pytest.mark.parametrize("name,ok", [("firmware/a.py", True), ("a", True), ("../a", False),
                                     ("/etc/x", False), ("a//b", False), ("a/./b", False),
                                     ("manifest.json", False), ("a b", False), ("x/", False)])
def test_bundle_names_stay_inside_the_slot(name, ok):
    from firmware import fw_bundle
    assert fw_bundle.safe_name(name) is ok


def test_tools_sign_cli_builds_a_bundle_the_firmware_accepts(tmp_path):
    """`python -m tools sign`: the bundle and signature it prints verify with the firmware's
    own code against the certificate it names."""
    import subprocess
    import sys
    from tests.harness import ROOT
    pki = sign.new_pki(str(tmp_path / "pki"))
    make_files(str(tmp_path / "src"), "3.1.4")
    out = str(tmp_path / "fw.pyfw")
    p = subprocess.run([sys.executable, "-m", "tools", "sign", "--key", pki["signing.key"],
                        "--cert", pki["signing.pem"], "--version", "3.1.4", "-o", out,
                        str(tmp_path / "src")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    from firmware import compat, fw_bundle
    with open(out, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    with open(r["signingCertificate"]) as f:
        cert = f.read()
    with open(pki["root.pem"]) as f:
        root = f.read()
    assert fw_bundle.check_signing_cert(cert, [root], compat.now()) is None
    assert fw_bundle.signature_ok(cert, r["signature"], digest)
    assert not fw_bundle.signature_ok(cert, r["signature"], hashlib.sha256(b"other").digest())
    m, off = fw_bundle.read_manifest(out)
    assert m["version"] == "3.1.4" and r["firmware"]["signature"] == r["signature"]


def test_esp32_image_bundle_on_a_board_without_ota_partition_fails_cleanly(csms, station, fwpki,
                                                                           files_srv, tmp_path):
    """An "esp32-image" bundle (tools sign --esp32-image) on the simulator, which has no OTA
    partition: InstallationFailed after Installing, the running bundle untouched. (The OTA
    write itself is tested against a fake esp32 module in test_board_ota.py.)"""
    st = start_ready(csms, station, fwpki)
    img = tmp_path / "app.bin"
    img.write_bytes(os.urandom(9000))
    out = str(tmp_path / "img.pyfw")
    sign.write_bundle(out, [("app.bin", str(img))], NEW, "esp32-image")
    with open(out, "rb") as f:
        data = f.read()
    files_srv.files["/img.pyfw"] = data
    assert update(csms, st, files_srv.url("/img.pyfw"), fwpki["ec"], signature(fwpki["ec_key"], data),
                  80)["status"] == "Accepted"
    wait_fw(csms, st.identity, "InstallationFailed", 30)
    assert fw_statuses(csms, st.identity) == FULL[:4] + ["InstallationFailed"]
    assert len(boots(csms, st.identity)) == 1 and running_files(st) is None
