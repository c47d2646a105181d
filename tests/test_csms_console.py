"""`python -m host.csms` driven from stdin (issue 16 item 7): `list`, `call ID ACTION {json}`
with the station's CALLRESULT / CALLERROR as JSON lines, bad input as {"ok": false} lines,
`--host`, and each frame logged once. The station runs on both targets."""
import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from host.csms import schema_errors
from tests.harness import ROOT, StationProc


class CsmsProc:
    def __init__(self, tmp_path, *args):
        self.err_path = str(tmp_path / "csms.err")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "host.csms", "0"] + list(args),
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, bufsize=0)
        self._buf = b""
        first = self.line()
        assert first["ok"] and first["listening"].startswith("ws://"), first
        self.url = first["listening"]

    def line(self, timeout=20):
        deadline = time.time() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("host.csms: no reply within %ss\n%s" % (timeout, self.err()))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("host.csms exited\n%s" % self.err())
                self._buf += chunk
        text, self._buf = self._buf.split(b"\n", 1)
        return json.loads(text)   # every stdout line is JSON

    def cmd(self, line, timeout=20):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.line(timeout)

    def err(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def test_csms_console_calls_a_station_and_reports_replies(target, tmp_path):
    c = CsmsProc(tmp_path)
    st = None
    try:
        st = StationProc(target, c.url, "DRV1", str(tmp_path / "drv1"))
        deadline = time.time() + 30
        while c.cmd("list")["stations"] != ["DRV1"]:
            assert time.time() < deadline, c.err()
            time.sleep(0.2)
        st.wait_status(lambda s: s["boot"] == "Accepted", 20, "accepted")

        # B06 GetVariables: the CALLRESULT, schema-valid, as one JSON line
        r = c.cmd('call DRV1 GetVariables {"getVariableData":[{"component":{"name":"OCPPCommCtrlr"},'
                  '"variable":{"name":"HeartbeatInterval"}}]}')
        assert r["ok"] and r["station"] == "DRV1" and r["action"] == "GetVariables", r
        assert r["result"]["getVariableResult"][0]["attributeStatus"] == "Accepted"
        assert not schema_errors("GetVariables", "Response", r["result"])
        # F05 UnlockConnector on a connector the station does not have: its answer, not ours
        r = c.cmd('call DRV1 UnlockConnector {"evseId":7,"connectorId":1}')
        assert r["ok"] and r["result"]["status"] == "UnknownConnector", r
        # a CALLERROR from the station: the action it does not implement
        r = c.cmd('call DRV1 CostUpdated {"totalCost":1.5,"transactionId":"x"}')
        assert r["ok"] is False and r["error"] == "CALLERROR", r
        assert r["code"] == "NotSupported" and "CostUpdated" in r["description"]

        # bad input: one {"ok": false} line each, the CSMS goes on
        for line, word in (("call DRV1 Reset {bad", "not JSON"),
                           ('call DRV1 Reset ["Immediate"]', "JSON object"),
                           ("call NOSUCH Reset {}", "not connected"),
                           ("call DRV1 Frobnicate {}", "unknown OCPP 2.0.1 action"),
                           ('call DRV1 Reset {"kind":"Immediate"}', "does not fit"),
                           ('call DRV1 Reset {"type":"Sometime"}', "FormatViolation"),
                           ("call DRV1", "usage"),
                           ("dance", "unknown command")):
            r = c.cmd(line)
            assert r["ok"] is False and word in r["error"], (line, r)
        assert c.cmd("help")["ok"]

        # B11 Reset Immediate: Accepted, the station reboots and boots again
        r = c.cmd('call DRV1 Reset {"type":"Immediate"}')
        assert r == {"ok": True, "station": "DRV1", "action": "Reset",
                     "result": {"status": "Accepted"}}
        deadline = time.time() + 30
        while c.err().count('"BootNotification"') < 2:
            assert time.time() < deadline, c.err()
            time.sleep(0.2)

        # each frame is logged once: the GetVariables CALL (csms-1) and its answer
        log = c.err()
        assert log.count('"csms-1"') == 2, log
        assert "schema violation" not in log
    finally:
        if st is not None:
            st.kill()
        c.stop()


def test_csms_console_binds_the_address_asked_for(tmp_path):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError as e:
        pytest.skip("no IPv6 loopback here: %s" % e)
    c = CsmsProc(tmp_path, "--host", "::1")
    try:
        assert c.url.startswith("ws://[::1]:"), c.url
        port = int(c.url.rsplit(":", 1)[1])
        socket.create_connection(("::1", port), 5).close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 2).close()
    finally:
        c.stop()
