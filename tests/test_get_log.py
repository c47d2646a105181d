"""GetLog (N01) and TriggerMessage LogStatusNotification (F06.FR.14/15): the station (CPython
and micropython) uploads its diagnostics / security log to a real HTTP server on loopback,
which checks what arrives."""
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host.csms import _now_iso
from tests.helpers import after_reply, boot, trigger

STAMP = len("2026-12-03T06:14:52.514Z")


class LogServer:
    """Upload endpoints (over TLS with `ctx`): /logs (accepts POST and PUT), /fail (500), /forbidden (403),
    /garbage (not HTTP), /hold (takes the body, answers once released), /hang (never
    answers)."""

    def __init__(self, ctx=None):
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                srv.requests.append((time.time(), self.command, self.path, dict(self.headers), body))
                p = self.path.split("?")[0]
                if p == "/logs":
                    return self._answer(200)
                if p == "/fail":
                    return self._answer(500)
                if p == "/forbidden":
                    return self._answer(403)
                if p == "/garbage":
                    self.wfile.write(b"HELLO THERE\r\n\r\n")
                    self.close_connection = True
                    return
                if p == "/hold":
                    srv.held.set()
                    srv.release.wait(30)
                    return self._answer(200)
                if p == "/hang":
                    srv.release.wait(30)
                    return
                self._answer(404)

            do_PUT = do_POST

        self.requests = []
        self.held = threading.Event()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        if ctx is not None:
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if ctx is not None else "http"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path, host="127.0.0.1"):
        return "%s://%s:%d%s" % (self.scheme, host, self.httpd.server_port, path)

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def logsrv():
    s = LogServer()
    yield s
    s.close()


def multipart(headers, body):
    """(Content-Disposition line, file content) of the one-part form upload (N01.FR.19)."""
    ct = headers["Content-Type"]
    assert ct.startswith("multipart/form-data; boundary="), ct
    b = ct.split("boundary=", 1)[1].encode()
    assert body.startswith(b"--" + b + b"\r\n") and body.endswith(b"\r\n--" + b + b"--\r\n")
    head, data = body[len(b) + 4:-(len(b) + 8)].split(b"\r\n\r\n", 1)
    heads = head.decode().split("\r\n")
    assert "Content-Type: application/octet-stream" in heads, heads
    return [h for h in heads if h.startswith("Content-Disposition:")][0], data


def get_log(csms, cp, url, rid, kind="DiagnosticsLog", **extra):
    p = {"logType": kind, "requestId": rid, "log": {"remoteLocation": url}}
    for k in ("oldestTimestamp", "latestTimestamp"):
        if k in extra:
            p["log"][k] = extra.pop(k)
    p.update(extra)
    return csms.call(cp, "GetLog", p)


def statuses(csms, cp):
    return [(m.get("status"), m.get("requestId")) for m in csms.csms.calls("LogStatusNotification", cp)]


def wait_statuses(csms, cp, n, what):
    return csms.wait_for(lambda: len(statuses(csms, cp)) >= n and statuses(csms, cp), 30, what)


def log_lines(data):
    return [ln for ln in data.decode().splitlines() if ln and not ln.startswith("#")]


# ------------------------------------------------------------------ TC_N_25 / TC_N_35
def test_TC_N_25_CS_diagnostics_log_uploaded(csms, station, logsrv):
    """N01.FR.01/02/04/07/08/09/13/19: Accepted with a file name, Uploading then Uploaded
    with the request's id, one POST multipart upload of that name holding the station's log."""
    st = boot(csms, station)
    cp = st.identity
    r = get_log(csms, cp, logsrv.url("/logs"), 123)
    assert r["status"] == "Accepted" and r["filename"], r
    got = wait_statuses(csms, cp, 2, "Uploading, Uploaded")
    assert got == [("Uploading", 123), ("Uploaded", 123)], got
    (_, method, path, headers, body), = logsrv.requests
    assert method == "POST" and path == "/logs"
    disp, data = multipart(headers, body)
    assert 'name="uploadfile"' in disp and 'filename="%s"' % r["filename"] in disp, disp
    lines = log_lines(data)
    # the station's own log: its connection and its BootNotification, each line time-stamped
    assert any("[net] connected to" in ln for ln in lines), lines[:20]
    assert all(ln[STAMP - 1] == "Z" and ln[10] == "T" for ln in lines), lines[:5]


def test_TC_N_35_CS_security_log_uploaded(csms, station, logsrv):
    """N01.FR.03: the security log (the events the station recorded, A04) is uploaded."""
    st = boot(csms, station)
    cp = st.identity
    r = get_log(csms, cp, logsrv.url("/logs"), 7, kind="SecurityLog")
    assert r["status"] == "Accepted" and r["filename"] and "security" in r["filename"], r
    assert wait_statuses(csms, cp, 2, "statuses") == [("Uploading", 7), ("Uploaded", 7)]
    data = multipart(*logsrv.requests[0][3:])[1]
    lines = log_lines(data)
    assert any(" StartupOfTheDevice " in ln for ln in lines), lines
    # the security log, not the diagnostics log
    assert not any("[net]" in ln for ln in lines), lines


def test_N01_FR_04_log_lines_written_before_a_power_cut_are_uploaded(csms, station, logsrv, tmp_path):
    """The diagnostics log lives on flash: after SIGKILL and a restart on the same data
    directory the upload still holds the first run's lines; oldestTimestamp and
    latestTimestamp select either run."""
    d = str(tmp_path / "data")
    st = station(data_dir=d)
    cp = st.identity
    csms.wait_for(lambda: csms.csms.calls("StatusNotification", cp), 15, "first boot")
    time.sleep(1.1)
    cut = _now_iso()
    time.sleep(1.1)
    st.kill()
    st2 = station(data_dir=d, identity=cp)
    csms.wait_for(lambda: len(csms.csms.calls("BootNotification", cp)) >= 2
                  and len(csms.csms.calls("StatusNotification", cp)) >= 2, 15, "second boot")
    r = get_log(csms, cp, logsrv.url("/logs"), 1)
    assert r["status"] == "Accepted", r
    wait_statuses(csms, cp, 2, "upload 1")
    lines = log_lines(multipart(*logsrv.requests[0][3:])[1])
    connects = [ln for ln in lines if "[net] connected to" in ln]
    assert len(connects) >= 2, lines  # one per run
    before = [ln for ln in lines if ln[:STAMP] < cut]
    assert any("[net] connected to" in ln for ln in before), lines
    # latestTimestamp: the first run only; oldestTimestamp: the second run only
    assert get_log(csms, cp, logsrv.url("/logs"), 2, latestTimestamp=cut)["status"] == "Accepted"
    wait_statuses(csms, cp, 4, "upload 2")
    first = log_lines(multipart(*logsrv.requests[1][3:])[1])
    assert first and all(ln[:STAMP] <= cut for ln in first), first
    assert len([ln for ln in first if "[net] connected to" in ln]) == 1
    assert get_log(csms, cp, logsrv.url("/logs"), 3, oldestTimestamp=cut)["status"] == "Accepted"
    wait_statuses(csms, cp, 6, "upload 3")
    second = log_lines(multipart(*logsrv.requests[2][3:])[1])
    assert second and all(ln[:STAMP] >= cut for ln in second), second
    assert len([ln for ln in second if "[net] connected to" in ln]) == 1
    assert statuses(csms, cp) == [("Uploading", 1), ("Uploaded", 1), ("Uploading", 2),
                                  ("Uploaded", 2), ("Uploading", 3), ("Uploaded", 3)]
    st2.kill()


def test_N01_FR_05_rejected_when_no_log_in_the_range(csms, station, logsrv):
    st = boot(csms, station)
    cp = st.identity
    for kind in ("DiagnosticsLog", "SecurityLog"):
        r = get_log(csms, cp, logsrv.url("/logs"), 5, kind=kind,
                    oldestTimestamp="2001-01-01T00:00:00Z", latestTimestamp="2001-01-02T00:00:00Z")
        assert r["status"] == "Rejected" and "filename" not in r, r
    time.sleep(0.5)
    assert not logsrv.requests and not statuses(csms, cp)


def test_GetLog_unsupported_url_scheme_rejected(csms, station):
    """FileTransferProtocols says HTTP,HTTPS: an ftp:// location is refused at once."""
    st = boot(csms, station)
    cp = st.identity
    r = get_log(csms, cp, "ftp://127.0.0.1/logs", 9)
    assert r["status"] == "Rejected" and r["statusInfo"]["reasonCode"] == "InvalidURL", r
    assert csms.call(cp, "GetVariables", {"getVariableData": [{
        "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "FileTransferProtocols"}}]}
    )["getVariableResult"][0]["attributeValue"] == "HTTP,HTTPS"


def test_N01_FR_15_https_upload_trusts_the_csms_root(csms, station, pki):
    """An https:// location is verified against the CSMS trust chain (the station's CSMS
    root, here the installer's --cafile); a server that root did not sign gets nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    srv = LogServer(ctx)
    try:
        st = station(args=["--cafile", pki["ca"]])
        cp = st.identity
        csms.wait_for(lambda: csms.csms.calls("StatusNotification", cp), 15, "boot")
        assert get_log(csms, cp, srv.url("/logs", "localhost"), 11)["status"] == "Accepted"
        assert wait_statuses(csms, cp, 2, "Uploaded") == [("Uploading", 11), ("Uploaded", 11)]
        assert any("[net] connected to" in ln
                   for ln in log_lines(multipart(*srv.requests[0][3:])[1]))
    finally:
        srv.close()
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    other.load_cert_chain(pki["wrong_name"], pki["key"])  # signed by the root, wrong host name
    srv = LogServer(other)
    try:
        assert get_log(csms, cp, srv.url("/logs", "localhost"), 12, retries=0)["status"] == "Accepted"
        assert wait_statuses(csms, cp, 4, "UploadFailure")[2:] == [("Uploading", 12),
                                                                   ("UploadFailure", 12)]
        assert not srv.requests
    finally:
        srv.close()


# ------------------------------------------------------------------ TC_N_26: failures
def test_TC_N_26_CS_upload_failure_after_all_retries(csms, station, logsrv):
    """N01.FR.10: retries 3 = four attempts, retryInterval apart; UploadFailure (with the
    request's id) only after the last one."""
    st = boot(csms, station)
    cp = st.identity
    r = get_log(csms, cp, logsrv.url("/fail"), 42, retries=3, retryInterval=1)
    assert r["status"] == "Accepted", r
    got = wait_statuses(csms, cp, 2, "UploadFailure")
    assert got == [("Uploading", 42), ("UploadFailure", 42)], got
    assert len(logsrv.requests) == 4
    failure_t = [m["t"] for m in csms.csms.messages if m["cp"] == cp and m["dir"] == "in"
                 and m["frame"][0] == 2 and m["frame"][2] == "LogStatusNotification"][-1]
    assert logsrv.requests[-1][0] <= failure_t
    gaps = [b[0] - a[0] for a, b in zip(logsrv.requests, logsrv.requests[1:])]
    assert min(gaps) >= 0.9, gaps  # retryInterval is a lower bound, not a timing assert


@pytest.mark.parametrize("path,status", [("/forbidden", "PermissionDenied"),
                                         ("/garbage", "BadMessage")])
def test_N01_FR_10_refusal_statuses(csms, station, logsrv, path, status):
    """A 403 is PermissionDenied, an answer that is not HTTP is BadMessage; a refusal is
    not retried (the same request would get the same answer)."""
    st = boot(csms, station)
    cp = st.identity
    assert get_log(csms, cp, logsrv.url(path), 3, retries=2, retryInterval=1)["status"] == "Accepted"
    assert wait_statuses(csms, cp, 2, status) == [("Uploading", 3), (status, 3)]
    time.sleep(1.5)
    assert len(logsrv.requests) == 1


def test_N01_FR_10_hanging_server_is_an_upload_failure(csms, station, logsrv):
    """A log server that takes the file and never answers: the upload times out (each read
    may take MessageTimeout) and UploadFailure follows."""
    st = boot(csms, station, "OCPPCommCtrlr.MessageTimeout[Default]=2")
    cp = st.identity
    assert get_log(csms, cp, logsrv.url("/hang"), 8, retries=0)["status"] == "Accepted"
    assert wait_statuses(csms, cp, 2, "UploadFailure") == [("Uploading", 8), ("UploadFailure", 8)]
    assert len(logsrv.requests) == 1


# ------------------------------------------------------------------ TC_N_36: second request
def test_TC_N_36_CS_second_request_cancels_the_first(csms, station, logsrv):
    """N01.FR.12/20: a GetLog during an upload is AcceptedCanceled; the cancelled upload's
    LogStatusNotification says AcceptedCanceled (with its own requestId), then the new
    upload runs: Uploading, Uploaded with the new id."""
    st = boot(csms, station)
    cp = st.identity
    assert get_log(csms, cp, logsrv.url("/hold"), 1, kind="SecurityLog")["status"] == "Accepted"
    wait_statuses(csms, cp, 1, "first Uploading")
    assert logsrv.held.wait(15)  # the first upload is on its way
    r = get_log(csms, cp, logsrv.url("/logs"), 2, kind="SecurityLog")
    assert r["status"] == "AcceptedCanceled" and r["filename"], r
    got = wait_statuses(csms, cp, 4, "second upload")
    assert got == [("Uploading", 1), ("AcceptedCanceled", 1), ("Uploading", 2), ("Uploaded", 2)], got
    assert [q[2] for q in logsrv.requests] == ["/hold", "/logs"]
    assert " StartupOfTheDevice " in multipart(*logsrv.requests[1][3:])[1].decode()
    time.sleep(0.5)
    assert len(statuses(csms, cp)) == 4  # nothing more from the cancelled one


# ------------------------------------------------------------------ TriggerMessage
def test_TC_F_15_CS_trigger_log_status_idle(csms, station):
    """F06.FR.15, N01.FR.13: no upload running: Idle, without requestId."""
    st = boot(csms, station)
    cp = st.identity
    r, t = trigger(csms, cp, "LogStatusNotification")
    assert r["status"] == "Accepted", r
    got = csms.wait_for(lambda: after_reply(csms, cp, t, "LogStatusNotification"), 10, "Idle")
    assert got == [{"status": "Idle"}], got


def test_TC_F_16_CS_trigger_log_status_uploading(csms, station, logsrv):
    """F06.FR.14: during an upload: Uploading with that upload's requestId."""
    st = boot(csms, station)
    cp = st.identity
    assert get_log(csms, cp, logsrv.url("/hold"), 77)["status"] == "Accepted"
    assert logsrv.held.wait(15)
    r, t = trigger(csms, cp, "LogStatusNotification")
    assert r["status"] == "Accepted", r
    got = csms.wait_for(lambda: after_reply(csms, cp, t, "LogStatusNotification"), 10, "Uploading")
    assert got == [{"status": "Uploading", "requestId": 77}], got
    logsrv.release.set()
    csms.wait_for(lambda: ("Uploaded", 77) in statuses(csms, cp), 15, "Uploaded")


def test_get_log_block_loaded_only_while_it_uploads(csms, station, logsrv):
    """The block is on demand (footprint): not loaded at boot, kept (with the HTTP client)
    while an upload runs, however long, and dropped with it afterwards."""
    st = boot(csms, station)
    cp = st.identity
    mods = lambda: [m for m in st.cmd("modules")["modules"]  # noqa: E731
                    if m in ("firmware.get_log", "firmware.http_client")]
    assert mods() == []
    assert get_log(csms, cp, logsrv.url("/hold"), 4)["status"] == "Accepted"
    assert logsrv.held.wait(15)
    time.sleep(6)  # longer than the on-demand linger (station.ON_DEMAND_LINGER_MS)
    assert sorted(mods()) == ["firmware.get_log", "firmware.http_client"]
    logsrv.release.set()
    csms.wait_for(lambda: ("Uploaded", 4) in statuses(csms, cp), 15, "Uploaded")
    csms.wait_for(lambda: mods() == [], 20, "get_log and http_client dropped")
