"""Security: Basic auth and password update (A00, A01), security events and the security log
(A04), against the test CSMS, station on CPython and under micropython; the log's bound
in-process."""
import asyncio
import os
import tempfile

from tests.helpers import RECONNECT_EVERY_1S_ARGS, booted, sent_security_events, set_var, wss_url

OLD_PW = "Old-Password_0123456789"
NEW_PW = "New+Password:0123456789"


def seclog(st, n=100):
    return st.cmd("seclog %d" % n)["records"]


def files_contain(root, text):
    hits = []
    for d, _, names in os.walk(root):
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                if text.encode() in f.read():
                    hits.append(n)
    return hits


def test_TC_A_01_CS_basic_authentication_valid(csms, station):
    cp = "CSA01"
    csms.csms.passwords[cp] = OLD_PW
    st = station(identity=cp, args=["--password", OLD_PW])
    booted(csms, cp)
    assert csms.csms.auth_failures == 0
    assert csms.csms.calls("BootNotification", cp)[0]["reason"] == "PowerUp"
    # BasicAuthPassword is WriteOnly: never readable.
    r = csms.call(cp, "GetVariables", {"getVariableData": [
        {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]})
    assert r["getVariableResult"][0]["attributeStatus"] == "Rejected"
    assert OLD_PW not in str(csms.csms.messages)
    st.quit()


def _booted_with_old_password(csms, station, cp):
    """A station `cp` connected with OLD_PW; (station, CSMS connection count so far)."""
    csms.csms.passwords[cp] = OLD_PW
    st = station(identity=cp, args=RECONNECT_EVERY_1S_ARGS + ["--password", OLD_PW])
    booted(csms, cp)
    return st, csms.csms.connections


def test_TC_A_09_CS_update_basic_auth_password_accepted(csms, station):
    cp = "CSA09"
    st, n = _booted_with_old_password(csms, station, cp)
    r = set_var(csms, cp, "SecurityCtrlr", "BasicAuthPassword", NEW_PW)
    assert r["attributeStatus"] == "Accepted"
    csms.csms.passwords[cp] = NEW_PW  # A01.FR.03: the CSMS now accepts only the new one
    # A01 steps 3/4: the station drops the connection and reconnects with the new password;
    # a reconnect is not a reboot, so no new BootNotification.
    csms.wait_for(lambda: csms.csms.connections > n and cp in csms.csms.sessions, 15, "reconnect")
    assert csms.csms.auth_failures == 0
    assert len(csms.csms.calls("BootNotification", cp)) == 1
    # the CSMS records the session when it sends its 101; the station is connected once it
    # has read it, a moment later (asserting at once failed on a loaded machine)
    st.wait_status(lambda s: s["connected"], 15, "station side connected")
    # A01.FR.11/12: the change is in the security log, the value nowhere but the
    # (write-only) variable store.
    recs = seclog(st)
    assert [x for x in recs if x[1] == "ReconfigurationOfSecurityParameters"]
    assert NEW_PW not in str(recs)
    hits = files_contain(st.data_dir, NEW_PW)
    assert set(hits) <= {"dm.json"}, hits
    st.quit()
    with open(st.log_path) as f:
        assert NEW_PW not in f.read()


def test_TC_A_10_CS_update_basic_auth_password_rejected(csms, station):
    cp = "CSA10"
    st, n = _booted_with_old_password(csms, station, cp)
    for bad in ("Short-pw-12ch", "has spaces in it 0123456789", "x" * 41):
        r = set_var(csms, cp, "SecurityCtrlr", "BasicAuthPassword", bad)
        assert r["attributeStatus"] == "Rejected", bad
    # The station keeps the old credentials: after a connection loss it gets back in with them.
    csms.run(csms.csms.disconnect(cp))
    csms.wait_for(lambda: csms.csms.connections > n and cp in csms.csms.sessions, 15, "reconnect")
    assert csms.csms.auth_failures == 0
    assert not [x for x in seclog(st) if x[1] == "ReconfigurationOfSecurityParameters"]


def test_A04_failed_authentication_logged_not_sent(csms, station):
    """FailedToAuthenticateAtCsms (HTTP 401) is not critical: security log only, once per streak."""
    cp = "CSA04"
    csms.csms.passwords[cp] = OLD_PW
    st = station(identity=cp, args=RECONNECT_EVERY_1S_ARGS + ["--password", "Wrong-Password-0123456789"])
    csms.wait_for(lambda: csms.csms.auth_failures >= 2, 15, "two refused attempts")
    assert len([x for x in seclog(st) if x[1] == "FailedToAuthenticateAtCsms"]) == 1
    csms.csms.passwords[cp] = "Wrong-Password-0123456789"
    booted(csms, cp)
    csms.wait_for(lambda: "StartupOfTheDevice" in sent_security_events(csms, cp), 10, "startup event")
    assert "FailedToAuthenticateAtCsms" not in sent_security_events(csms, cp)


def test_TC_A_05_CS_invalid_csms_certificate_event_queued_and_delivered(tls_csms, station, pki):
    """A00.FR.310/311: an unverifiable CSMS certificate ends the connection attempt and raises
    the critical InvalidCsmsCertificate event, which reaches the CSMS once a connection works."""
    cp = "CSA05"
    st = station(identity=cp, url=wss_url(tls_csms),
                 args=RECONNECT_EVERY_1S_ARGS + ["--cafile", pki["other_ca"]])
    data = st.data_dir
    tls_csms.wait_for(lambda: [x for x in seclog(st) if x[1] == "InvalidCsmsCertificate"], 15,
                      "InvalidCsmsCertificate")
    assert cp not in tls_csms.csms.sessions
    st.kill()
    st2 = station(identity=cp, data_dir=data, url=wss_url(tls_csms), args=["--cafile", pki["ca"]])
    booted(tls_csms, cp)
    tls_csms.wait_for(lambda: len(sent_security_events(tls_csms, cp)) >= 3, 10, "delivery")
    ev = sent_security_events(tls_csms, cp)
    # Queued in order: the failed boot's startup, the certificate event, then this boot's startup.
    assert ev == ["StartupOfTheDevice", "InvalidCsmsCertificate", "StartupOfTheDevice"], ev
    assert st2.status()["connected"]


def test_A04_startup_and_setting_system_time_are_sent(csms, station):
    def boot(cp, payload):
        return {"currentTime": "2031-01-01T00:00:00.000Z", "interval": 300, "status": "Accepted"}
    csms.csms.responders["BootNotification"] = boot
    st = station()
    cp = st.identity
    booted(csms, cp)
    csms.wait_for(lambda: {"StartupOfTheDevice", "SettingSystemTime"} <= set(sent_security_events(csms, cp)),
                  10, "security events")
    sent = csms.csms.calls("SecurityEventNotification", cp)
    start = [p for p in sent if p["type"] == "StartupOfTheDevice"][0]
    assert "PowerUp" in start["techInfo"]
    types = [r[1] for r in seclog(st)]
    assert types.index("StartupOfTheDevice") < types.index("SettingSystemTime")


# ------------------------------------------------------------------ in-process (CPython)
def test_A04_FR_04_security_log_is_a_bounded_ring_that_survives_restart():
    from firmware import security
    from firmware.station import Station
    from host.sim_board import SimBoard

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            st = Station(SimBoard(1, tmp), "ws://127.0.0.1:9", "CSX", blocks=("security",))
            sec = st.blocks["security"]
            for i in range(600):
                st.security_event("InvalidMessages", "event %d" % i)
            total = sum(st.store.size(n) for n in security.LOG_FILES)
            assert total <= 2 * security.LOG_BYTES
            recs = sec.records(100)
            assert recs[-1][2] == "event 599" and len(recs) == 100
            assert [r[2] for r in recs] == ["event %d" % i for i in range(500, 600)]
            assert st.queue.depth() == 0  # InvalidMessages is not critical
            # A restart continues in the newest file.
            st2 = Station(SimBoard(1, tmp), "ws://127.0.0.1:9", "CSX", blocks=("security",))
            st2.security_event("ResetOrReboot", "after restart")
            recs = st2.blocks["security"].records(3)
            assert [r[2] for r in recs] == ["event 598", "event 599", "after restart"]
            assert st2.queue.depth() == 1  # critical: queued for the CSMS
            assert sum(st.store.size(n) for n in security.LOG_FILES) <= 2 * security.LOG_BYTES
    asyncio.run(main())


def test_passwordString_characters():
    from firmware.security import password_reason
    assert password_reason("Abc-0123*_=:+|@.x") is None
    for bad in ("with space 012345", "umlaut-ä-0123456789", "quote'0123456789", "comma,0123456789"):
        assert password_reason(bad) == "InvalidValue"

