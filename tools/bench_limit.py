"""Bench: how long a new charging limit takes to reach the pilot driver.

    python -m tools.bench_limit [N]        (or: python tools/bench_limit.py [N])

For each runtime (CPython, and micropython when installed) a child process runs an
in-process station on the simulated board (host/sim_board.py) with its real threaded safety
stepper, connected over loopback to the mobilityhouse-based CSMS run here, an EV charging
on EVSE 1. The child wraps the pilot driver's offer() (the call that sets the PWM duty on a
board) and timestamps every change of the offered current.
  console:             `limit 1 A` handed to the station's console -> offer() with A
                       (measured inside the child)
  SetChargingProfile:  the CSMS sends a ChargingStationMaxProfile -> offer() with its
                       limit (wall clock of the two processes, same machine); only when the
                       station's smart charging block answers SetChargingProfile
A bench figure, not a test: the host is shared, so the spread matters as much as the median.
"""
import sys

CHILD_USAGE = "bench_limit.py child ROOT URL N"


# ---------------------------------------------------------------- the child (both runtimes)
def child(root, url, n):
    for p in (root,):
        if p not in sys.path:
            sys.path.insert(0, p)
    import json
    import time
    from firmware import compat, log
    from firmware.compat import asyncio
    from firmware.console import Console
    from firmware.station import Station
    from host.sim_board import SimBoard
    log.level = 3
    data = "/tmp/bench-limit-" + "".join("%02x" % b for b in __import__("os").urandom(5))
    board = SimBoard(1, data)
    pilot = board.evses[0].pilot
    seen = []       # (amps, time_ns) of each change of the offer
    orig = pilot.offer

    def offer(amps):
        if amps != pilot.offered:
            seen.append((amps, time.time_ns()))
        orig(amps)
    pilot.offer = offer
    st = Station(board, url, "BENCHLIM")
    con = Console(st)

    async def until(pred, ms=10000):
        t0 = compat.ticks_ms()
        while not pred():
            if compat.ticks_diff(compat.ticks_ms(), t0) > ms:
                raise RuntimeError("bench: timed out")
            await compat.sleep_ms(1)

    async def bench():
        compat.create_task(st.run())
        await until(lambda: st.boot_status == "Accepted")
        pilot.ev_state = "C"
        board.reader.tap("AABBCCDD")
        await until(lambda: board.evses[0].relay.closed() and pilot.offered == 32)
        out = []
        for i in range(n):
            amps = 16 if i % 2 == 0 else 20
            k = len(seen)
            t0 = time.time_ns()
            await con.handle("limit 1 %d" % amps)
            await until(lambda: len(seen) > k and seen[-1][0] == amps)
            out.append((seen[-1][1] - t0) // 1000)
        await con.handle("limit 1 off")
        await until(lambda: pilot.offered == 32)
        print(json.dumps({"console_us": out}))
        # SetChargingProfile: the parent sends, this side reports each new offer's wall time
        k = len(seen)
        print(json.dumps({"ready": True}))
        t_end = compat.ticks_ms()
        while compat.ticks_diff(compat.ticks_ms(), t_end) < 120000:   # the parent kills it
            while k < len(seen):
                a, ns = seen[k]
                print(json.dumps({"offer": a, "t_ns": ns}))
                k += 1
            await compat.sleep_ms(1)
    try:
        asyncio.run(bench())
    finally:
        try:
            import shutil
            shutil.rmtree(data, ignore_errors=True)
        except ImportError:
            pass
    sys.exit(0)


# ---------------------------------------------------------------- the parent (CPython)
def _profile(pid, amps):
    return {"evseId": 0, "chargingProfile": {
        "id": pid, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": pid, "chargingRateUnit": "A",
                              "startSchedule": "2020-01-01T00:00:00Z",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}]}]}}


def _stats(xs):
    xs = sorted(xs)
    if not xs:
        return None
    return {"n": len(xs), "median": xs[len(xs) // 2], "p90": xs[int(len(xs) * 0.9)],
            "max": xs[-1], "min": xs[0]}


def run_target(target, n, log=print):
    import json
    import os
    import select
    import subprocess
    import time
    from host.csms import CsmsThread
    from tests.harness import ROOT, interpreter
    t = CsmsThread(quiet=True)
    t.start()
    cmd = interpreter(target) + [os.path.join(ROOT, "tools", "bench_limit.py"), "child", ROOT,
                                 t.csms.url(), str(n)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL)
    buf = [b""]

    def line(timeout=60):
        deadline = time.time() + timeout
        while b"\n" not in buf[0]:
            left = deadline - time.time()
            if left <= 0 or p.poll() is not None and not select.select([p.stdout], [], [], 0)[0]:
                raise RuntimeError("%s child: no output" % target)
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("%s child ended" % target)
                buf[0] += chunk
        ln, buf[0] = buf[0].split(b"\n", 1)
        return json.loads(ln)
    res = {"target": target}
    try:
        res["console_ms"] = _stats([x / 1000.0 for x in line()["console_us"]])
        assert line().get("ready")
        cp = "BENCHLIM"
        r = None
        try:
            r = t.call(cp, "SetChargingProfile", _profile(1, 16.0))
        except Exception as e:
            res["profile_ms"] = "SetChargingProfile not answered (%s)" % (e,)
        if r is not None and r.get("status") == "Accepted":
            line()                                 # the first offer change (16 A)
            delays = []
            for i in range(n):
                amps = 20.0 if i % 2 == 0 else 16.0
                t0 = time.time_ns()
                t.call(cp, "SetChargingProfile", _profile(1, amps))
                while True:
                    got = line()
                    if got["offer"] == amps:
                        break
                delays.append((got["t_ns"] - t0) / 1e6)
            res["profile_ms"] = _stats(delays)
        elif r is not None:
            res["profile_ms"] = "SetChargingProfile: %s" % (r,)
    finally:
        if p.poll() is None:
            p.kill()
        t.stop()
    log(json.dumps(res))
    return res


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "child":
        return child(argv[1], argv[2], int(argv[3]))
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.harness import micropython_exe
    n = int(argv[0]) if argv else 40
    out = [run_target("cpython", n)]
    if micropython_exe() is not None:
        out.append(run_target("micropython", n))
    return out


if __name__ == "__main__":
    main()
