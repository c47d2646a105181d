"""Fleet figures (printed, never pass/fail): N simulated stations in one process against the
demo CSMS (`python -m host.csms`, mobilityhouse `ocpp`, every station frame schema-checked).

    python -m tools bench-fleet [--target cpython|micropython|both] [--stations N]
                                [--seconds S] [--heap SIZE] [--no-fsync]

For each runtime (default: CPython with 1,000 stations, micropython with 100):
  - build: time until the fleet process has created every station and answers its console;
  - boot storm: time from the process start until every station is Accepted;
  - memory per station: resident set size (and, under micropython, live heap after
    gc.collect()) of the N-station fleet minus that of a 1-station fleet, divided by N-1;
  - CALLs per second sustained: for S seconds the CSMS keeps one GetVariables CALL in
    flight per station (sent through its stdin console); completed round trips per second,
    with the CPU seconds of the CSMS and of the fleet over that window (which one saturates);
  - the fleet's safety stepper: worst round over all stations, and the event loop's worst
    lateness (`stall`) as one station sees it;
  - schema violations the CSMS logged.
--no-fsync passes the fleet's option of that name (first boots without fsync).
Runs on loopback only; data directories in a temporary directory that is removed.
"""
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOALS = {"cpython": 1000, "micropython": 100}
GETVAR = ('{"getVariableData":[{"component":{"name":"OCPPCommCtrlr"},'
          '"variable":{"name":"HeartbeatInterval"}}]}')
USAGE = __doc__.split("\n\n")[1].strip()


class Lines:
    """JSON lines from a child's stdout, with a timeout."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def get(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError("process ended (rc=%s)" % self.proc.wait())
                self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return json.loads(text)

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def micropython_exe():
    exe = shutil.which("micropython")
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe or (cand if os.path.exists(cand) else None)


def start_csms(tmp):
    err = open(os.path.join(tmp, "csms.log"), "wb")
    p = subprocess.Popen([sys.executable, "-m", "host.csms", "0"], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=err, bufsize=0)
    lines = Lines(p)
    first = lines.get(30)
    if not first or "listening" not in first:
        raise RuntimeError("demo CSMS did not start")
    return p, lines, first["listening"], err


def start_fleet(target, url, n, data, heap, extra=()):
    if target == "micropython":
        head = [micropython_exe(), "-X", "heapsize=" + heap]
    else:
        head = [sys.executable]
    cmd = head + ["-m", "host.sim", "--csms", url, "--stations", str(n), "--data-dir", data] + list(extra)
    err = open(data + ".log", "wb")
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                         bufsize=0)
    return p, Lines(p), err


def summary(lines, timeout=120):
    lines.send("fleet")
    while True:
        r = lines.get(timeout)
        if r is None:
            raise RuntimeError("no fleet summary within %s s" % timeout)
        if "stations" in r:
            return r


def stop(p, lines=None):
    try:
        if lines is not None and p.poll() is None:
            lines.send("quit")
            p.wait(30)
    except Exception:
        pass
    if p.poll() is None:
        p.kill()
        p.wait()


def baseline(target, url, tmp, heap, extra):
    """Memory of a 1-station fleet, booted."""
    p, lines, err = start_fleet(target, url, 1, os.path.join(tmp, "one"), heap, extra)
    try:
        deadline = time.time() + 60
        while True:
            s = summary(lines)
            if s["accepted"] == 1 or time.time() > deadline:
                return s
            time.sleep(0.5)
    finally:
        stop(p, lines)
        err.close()


def sustained_calls(csms_lines, ids, seconds):
    """One GetVariables in flight per station for `seconds`: (round trips, errors, seconds)."""
    t0 = time.time()
    for cp in ids:
        csms_lines.send("call %s GetVariables %s" % (cp, GETVAR))
    done = errors = 0
    inflight = len(ids)
    end = t0 + seconds
    while inflight:
        r = csms_lines.get(60)
        if r is None:
            break
        if r.get("action") != "GetVariables":
            continue
        inflight -= 1
        if r.get("ok"):
            done += 1
        else:
            errors += 1
        if time.time() < end:
            csms_lines.send("call %s GetVariables %s" % (r["station"], GETVAR))
            inflight += 1
    return done, errors, time.time() - t0


def run(target, n, seconds, heap, extra=()):
    tmp = tempfile.mkdtemp(prefix="bench-fleet-")
    csms = fleet = None
    try:
        csms, clines, url, cerr = start_csms(tmp)
        base = baseline(target, url, tmp, heap, extra)
        t0 = time.time()
        fleet, flines, ferr = start_fleet(target, url, n, os.path.join(tmp, "fleet"), heap, extra)
        s = summary(flines, 600)
        built = time.time() - t0
        while s["accepted"] < n:
            if time.time() - t0 > 900:
                raise RuntimeError("only %d of %d stations accepted after 900 s" % (s["accepted"], n))
            time.sleep(0.2)
            s = summary(flines)
        storm = time.time() - t0
        booted = s
        ids = ["CS%0*d" % (max(4, len(str(n))), i) for i in range(1, n + 1)]
        c0, f0 = _cpu_s(csms.pid), _cpu_s(fleet.pid)
        done, errors, took = sustained_calls(clines, ids, seconds)
        c1, f1 = _cpu_s(csms.pid), _cpu_s(fleet.pid)
        flines.send("@%s stall" % ids[0])
        stall = flines.get(30)
        after = summary(flines)
        with open(os.path.join(tmp, "csms.log"), "rb") as f:
            violations = f.read().count(b"schema violation")
        fig = {
            "target": target, "stations": n, "fsync": "--no-fsync" not in extra, "build_s": round(built, 1),
            "boot_storm_s": round(storm, 1), "accepted": booted["accepted"],
            "rss_kb_fleet": booted.get("rss_kb"), "rss_kb_one": base.get("rss_kb"),
            "calls": done, "call_errors": errors, "calls_per_s": round(done / took, 1),
            "csms_cpu_s": round(c1 - c0, 1), "fleet_cpu_s": round(f1 - f0, 1),
            "window_s": round(took, 1),
            "stepper_worst_round_ms": after.get("stepper_worst_round_ms"),
            "event_loop_worst_ms": stall.get("max_ms") if stall else None,
            "still_connected": after["connected"], "schema_violations": violations,
        }
        if booted.get("rss_kb") and base.get("rss_kb") and n > 1:
            fig["rss_kb_per_station"] = round((booted["rss_kb"] - base["rss_kb"]) / (n - 1), 1)
        if booted.get("heap_alloc") is not None and base.get("heap_alloc") is not None and n > 1:
            fig["heap_kb_per_station"] = round((booted["heap_alloc"] - base["heap_alloc"]) / (n - 1) / 1024, 1)
            fig["heap_kb_fleet"] = round(booted["heap_alloc"] / 1024)
        return fig
    finally:
        if fleet is not None:
            stop(fleet, flines)
        if csms is not None:
            stop(csms)
        shutil.rmtree(tmp, ignore_errors=True)


def report(fig):
    lines = ["%s: %d stations in one process, %d accepted; built in %.1f s, boot storm %.1f s%s" % (
        fig["target"], fig["stations"], fig["accepted"], fig["build_s"], fig["boot_storm_s"],
        "" if fig["fsync"] else " (--no-fsync)")]
    mem = "  memory per station: %s KB RSS" % fig.get("rss_kb_per_station")
    if "heap_kb_per_station" in fig:
        mem += ", %s KB live heap (fleet heap %s KB)" % (fig["heap_kb_per_station"], fig["heap_kb_fleet"])
    lines.append(mem + "; fleet RSS %s KB (1 station: %s KB)" % (fig["rss_kb_fleet"], fig["rss_kb_one"]))
    lines.append("  sustained: %.1f CALLs/s (GetVariables round trips, one in flight per station, %d "
                 "in %.1f s, %d errors); CPU s: CSMS %.1f, fleet %.1f" % (
                     fig["calls_per_s"], fig["calls"], fig["window_s"], fig["call_errors"],
                     fig["csms_cpu_s"], fig["fleet_cpu_s"]))
    lines.append("  safety stepper worst round %s ms for all stations; event loop worst lateness "
                 "%s ms; schema violations %d; still connected %d" % (
                     fig["stepper_worst_round_ms"], fig["event_loop_worst_ms"],
                     fig["schema_violations"], fig["still_connected"]))
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = {"--target": "both", "--stations": None, "--seconds": "10", "--heap": "128M"}
    extra = []
    while argv:
        a = argv.pop(0)
        if a in ("-h", "--help"):
            print(USAGE)
            return 0
        if a == "--no-fsync":
            extra.append(a)
            continue
        if a not in opts or not argv:
            print("bench-fleet: bad option %s\n%s" % (a, USAGE), file=sys.stderr)
            return 2
        opts[a] = argv.pop(0)
    targets = ("cpython", "micropython") if opts["--target"] == "both" else (opts["--target"],)
    out = []
    for t in targets:
        if t not in GOALS:
            print("bench-fleet: --target cpython, micropython or both", file=sys.stderr)
            return 2
        if t == "micropython" and micropython_exe() is None:
            print("micropython: not installed, skipped")
            continue
        n = int(opts["--stations"] or GOALS[t])
        fig = run(t, n, float(opts["--seconds"]), opts["--heap"], extra)
        print(report(fig), flush=True)
        print(json.dumps(fig), flush=True)
        out.append(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
