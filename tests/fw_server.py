"""A loopback HTTP file server for firmware-update tests: serves byte strings by path, with
Range requests (206), 404 for anything else, and per-path faults: "truncate" (sends half of
what its Content-Length promises, then closes) and "slow" (4 KB pieces with a pause)."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self):
        self.files = {}     # path -> bytes
        self.faults = {}    # path -> "truncate" | "slow"
        self.requests = []  # (path, Range header or None)
        self.sent = {}      # path -> body bytes written so far (all requests)
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                srv.requests.append((self.path, rng))
                data = srv.files.get(self.path)
                if data is None:
                    body = b"not found"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                if start >= len(data) and start:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % len(data))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                part = data[start:]
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Content-Type", "application/octet-stream")
                fault = srv.faults.get(self.path)
                if fault == "truncate":
                    self.send_header("Connection", "close")
                self.end_headers()
                if fault == "truncate":
                    part = part[:max(1, len(part) // 2)]
                step = 4096 if fault == "slow" else 65536
                try:
                    for i in range(0, len(part), step):
                        self.wfile.write(part[i:i + step])
                        self.wfile.flush()
                        srv.sent[self.path] = srv.sent.get(self.path, 0) + len(part[i:i + step])
                        if fault == "slow":
                            time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if fault == "truncate":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
