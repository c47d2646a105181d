"""Fleet mode (issue 16 item 8): `host.sim --stations N` runs N independent stations in one
process, on one event loop and one safety stepper, against the mobilityhouse-based CSMS
(every frame schema-checked by the `csms` fixture), on CPython and under micropython."""
import asyncio
import json
import os
import select
import subprocess
import time

import pytest

from tests.harness import ROOT, interpreter

N = 20
# micropython's unix port starts with a 2 MB heap; a fleet needs about 80 KB per station
MP_HEAP = ["-X", "heapsize=32M"]


def fleet_cmd(target, *args):
    head = interpreter(target) + (MP_HEAP if target == "micropython" else [])
    return head + ["-m", "host.sim"] + list(args)


class FleetProc:
    def __init__(self, target, args, log_path):
        self._log = open(log_path, "ab")
        self.log_path = log_path
        self.proc = subprocess.Popen(fleet_cmd(target, *args), cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, bufsize=0)
        self._buf = b""

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def line(self, timeout=30):
        deadline = time.time() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("fleet: no output within %ss\n%s" % (timeout, self.tail()))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("fleet exited (rc=%s)\n%s" % (self.proc.poll(), self.tail()))
                self._buf += chunk
        text, self._buf = self._buf.split(b"\n", 1)
        return json.loads(text)

    def reply(self, timeout=30):
        """The next reply to a console line (the script's replies carry "script")."""
        return self.until(lambda r: "script" not in r, "a console reply", timeout)

    def until(self, pred, what, timeout=60):
        """Read reply lines until one satisfies pred; return it."""
        deadline = time.time() + timeout
        while True:
            r = self.line(max(0.1, deadline - time.time()))
            if pred(r):
                return r
            if time.time() > deadline:
                raise AssertionError("fleet: %s not seen" % what)

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def test_fleet_B01_twenty_stations_boot_and_one_charges_by_script(target, csms, tmp_path):
    """B01 (cold boot) for N stations of one process, each with its own identity and data
    directory; the --script drives E02 (cable first, then the card) on FL0001 only."""
    script = tmp_path / "charge.txt"
    script.write_text("# one station charges\nwait accepted\n@FL0001 plug 1\n"
                      "@FL0001 tap AABBCCDD\n")
    data = tmp_path / "fleet"
    f = FleetProc(target, ["--csms", csms.csms.url(), "--stations", str(N), "--id-prefix", "FL",
                           "--data-dir", str(data), "--script", str(script)],
                  str(tmp_path / "fleet.log"))
    try:
        ids = ["FL%04d" % i for i in range(1, N + 1)]
        assert f.until(lambda r: r.get("script") == 2, "wait accepted", 90) == \
            {"ok": True, "accepted": N, "script": 2}
        for cp in ids:
            boots = csms.csms.calls("BootNotification", cp)
            assert len(boots) == 1, (cp, boots)
            assert boots[0]["chargingStation"]["serialNumber"] == cp
            assert os.path.isdir(str(data / cp)), cp   # its own data directory
        assert sorted(csms.csms.sessions) == ids

        def tx(cp):
            return [p for p in csms.csms.calls("TransactionEvent", cp)]
        csms.wait_for(lambda: any(p.get("transactionInfo", {}).get("chargingState") == "Charging"
                                  for p in tx("FL0001")), 30, "FL0001 charging")
        assert all(not tx(cp) for cp in ids[1:])    # the script addressed FL0001 only

        # the stations share one log: each line names the station whose task wrote it
        csms.raw("FL0005", '[3, "unexpected-5", {}]')
        csms.wait_for(lambda: "[FL0005 ocpp] ignoring reply with unexpected id unexpected-5"
                      in open(f.log_path, errors="replace").read(), 10, "tagged log line")
        f.send("@FL0007 status")
        r = f.reply()
        assert r["ok"] and r["station"] == "FL0007" and r["identity"] == "FL0007"
        assert r["evses"][0]["transaction"] is None
        f.send("@FL0001 status")
        r = f.reply()
        assert r["station"] == "FL0001" and r["evses"][0]["charging_state"] == "Charging"
        f.send("@nosuch status")
        r = f.reply()
        assert r["ok"] is False and "nosuch" in r["error"]
        f.send("@all status")
        got = [f.reply() for _ in ids]
        assert [r["station"] for r in got] == ids and all(r["boot"] == "Accepted" for r in got)
        f.send("@FL0001 unplug 1")
        assert f.reply()["ok"]
        csms.wait_for(lambda: any(p["eventType"] == "Ended" for p in tx("FL0001")), 30,
                      "FL0001 transaction ended")
        f.send("fleet")
        s = f.reply()
        assert s["stations"] == N and s["accepted"] == N and s["connected"] == N
        f.send("quit")       # every station's console: one "bye" each, then the process ends
        assert [f.reply()["station"] for _ in ids] == ids
        assert f.proc.wait(30) == 0
    finally:
        f.kill()


@pytest.mark.parametrize("args, message", [
    (["--stations", "0"], "--stations must be a number"),
    (["--stations", "many"], "--stations must be a number"),
    (["--stations", "3", "--id", "X1"], "--id is for one station"),
    (["--stations", "3", "--id-prefix", "a/b"], "--id-prefix may hold"),
    (["--stations", "3", "--script", "/nonexistent/script.txt"], "--script"),
    (["--id-prefix", "P"], "go with --stations"),
    (["--no-fsync"], "go with --stations"),
])
def test_fleet_bad_arguments_exit_2_with_a_message(target, args, message, tmp_path):
    cmd = fleet_cmd(target, "--csms", "ws://127.0.0.1:9", "--data-dir", str(tmp_path / "d"), *args)
    p = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr.decode(), p.stderr
    assert b"Traceback" not in p.stderr


def test_fleet_needs_a_csms_url(target, tmp_path):
    p = subprocess.run(fleet_cmd(target, "--stations", "2", "--data-dir", str(tmp_path / "d")),
                       cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert p.returncode == 2 and b"--stations needs --csms" in p.stderr, p.stderr


class CountingThread:
    """Stands in for the _thread module of firmware.stepper and host.fleet: counts the
    threads they start."""

    def __init__(self, real):
        self.real = real
        self.started = 0

    def start_new_thread(self, fn, args):
        self.started += 1
        return self.real.start_new_thread(fn, args)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_fleet_one_stepper_thread_and_events_stay_per_station(csms, tmp_path, monkeypatch):
    """In process (CPython): 8 stations add one safety thread, not 8; a fault on one
    station's EVSE reaches that station only (each board keeps its own event ring)."""
    import _thread
    from firmware import stepper
    from host import fleet as fleet_mod
    from host.fleet import Fleet, check_args
    from host.sim import Simulator, parse_args

    threads = CountingThread(_thread)
    monkeypatch.setattr(stepper, "_thread", threads)
    monkeypatch.setattr(fleet_mod, "_thread", threads)

    args = check_args(parse_args(["--csms", csms.csms.url(), "--stations", "8",
                                  "--data-dir", str(tmp_path / "d")]))
    replies = []

    async def scenario():
        fleet = Fleet(args, Simulator, replies.append)
        fleet.build()
        fleet.start()
        try:
            while not fleet.all_accepted():
                await asyncio.sleep(0.05)
            # every station has run evse.Block's start (its safety side) by now
            assert threads.started == 1
            assert fleet.sims["CS0003"].board.stepper is not fleet.sims["CS0004"].board.stepper
            hw = fleet.sims["CS0003"].board.evses[0]
            hw._faults = set(hw._faults) | {"overtemp"}
            for _ in range(200):
                if fleet.sims["CS0003"].station.blocks["evse"].get(1).status == "Faulted":
                    break
                await asyncio.sleep(0.05)
            st = dict((i, s.station.blocks["evse"].get(1).status) for i, s in fleet.sims.items())
            assert st.pop("CS0003") == "Faulted"
            assert set(st.values()) == {"Available"}, st
            # the CSMS hears of it while the fleet still runs (stopping first could cut the
            # StatusNotification off: that raced)
            for _ in range(400):
                if any(p["connectorStatus"] == "Faulted"
                       for p in csms.csms.calls("StatusNotification", "CS0003")):
                    break
                await asyncio.sleep(0.05)
        finally:
            await fleet.stop()
        assert not fleet.stepper.alive

    asyncio.run(scenario())
    assert any(p["connectorStatus"] == "Faulted"
               for p in csms.csms.calls("StatusNotification", "CS0003"))
    for i in range(1, 9):
        if i != 3:
            cp = "CS%04d" % i
            assert all(p["connectorStatus"] != "Faulted"
                       for p in csms.csms.calls("StatusNotification", cp)), cp


def test_bench_fleet_tool_reports_figures(capsys):
    """tools/bench_fleet.py end to end on a 3-station CPython fleet (figures, not limits)."""
    from tools import bench_fleet
    assert bench_fleet.main(["--target", "cpython", "--stations", "3", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    fig = json.loads(out.strip().splitlines()[-1])
    assert fig["accepted"] == 3 and fig["calls"] > 0 and fig["call_errors"] == 0, fig
    assert fig["schema_violations"] == 0 and fig["still_connected"] == 3
    assert "rss_kb_per_station" in fig and "boot storm" in out


def test_fleet_out_of_heap_says_so_and_how_to_fix_it(target, tmp_path):
    if target != "micropython":
        pytest.skip("CPython has no fixed heap to run out of (it grows until the OS refuses)")
    cmd = interpreter(target) + ["-X", "heapsize=1M", "-m", "host.sim", "--csms", "ws://127.0.0.1:9",
                                 "--stations", "200", "--data-dir", str(tmp_path / "d")]
    p = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr[-2000:])
    assert b"out of memory after" in p.stderr and b"heapsize" in p.stderr, p.stderr[-2000:]
    assert b"Traceback" not in p.stderr


def test_fleet_wait_accepted_gives_up_and_names_the_late_stations(target, tmp_path):
    """`wait accepted` against a CSMS that never answers (nothing listens on port 9) used to
    wait forever and hang the script; now it ends with an error after its bound."""
    f = FleetProc(target, ["--csms", "ws://127.0.0.1:9", "--stations", "2", "--id-prefix", "WA",
                           "--data-dir", str(tmp_path / "fleet")], str(tmp_path / "fleet.log"))
    try:
        f.send("wait accepted 1")
        r = f.reply()
        assert r["ok"] is False and r["not_accepted"] == ["WA0001", "WA0002"], r
        assert "not Accepted after 1 s" in r["error"]
        f.send("wait accepted soon")
        assert "usage" in f.reply()["error"]
    finally:
        f.kill()
