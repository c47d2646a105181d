"""Benchmarks that print figures (never pass/fail): `python -m tools bench [--calls N]`.

Round trips: the same CSMS (mobilityhouse-based, in this process) sends N DataTransfer CALLs
as raw frames, one at a time, to
  1. our station under CPython,
  2. our station under micropython,
  3. a charging station built on mobilityhouse `ocpp` (v201.ChargePoint) under CPython,
and times the loop. Raw frames keep the CSMS's own cost equal for all three, so the ratios
compare the stations. Heap figures come from the micropython station's `mem` console command.
"""
import asyncio
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _frame(i):
    return '[2,"b%d","DataTransfer",{"vendorId":"org.bench","messageId":"rt","data":"%d"}]' % (i, i)


async def _round_trips(csms, cp, n):
    for i in range(20):  # warm-up
        await csms.raw(cp, _frame(-i - 1), reply_id="b%d" % (-i - 1))
    t0 = time.perf_counter()
    for i in range(n):
        reply = await csms.raw(cp, _frame(i), reply_id="b%d" % i)
        assert reply[0] == 3, reply
    return n / (time.perf_counter() - t0)


async def _mobilityhouse_station(url, cp_id):
    """A charging station written with the mobilityhouse library, answering DataTransfer."""
    import websockets
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint, call_result

    class Station(ChargePoint):
        @on("DataTransfer")
        def on_data_transfer(self, vendor_id, **kw):
            return call_result.DataTransfer(status="UnknownVendorId")

    ws = await websockets.connect(url + "/" + cp_id, subprotocols=["ocpp2.0.1"])
    station = Station(cp_id, ws)
    task = asyncio.ensure_future(station.start())
    return ws, task


def bench_round_trips(n=2000):
    import logging
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    from host.csms import CsmsThread
    from tests.harness import StationProc, micropython_exe

    rows = {}
    t = CsmsThread(quiet=True)
    t.start()
    tmp = tempfile.mkdtemp(prefix="bench-")
    try:
        targets = ["cpython"] + (["micropython"] if micropython_exe() else [])
        for target in targets:
            cp = "BENCH-" + target
            st = StationProc(target, t.csms.url(), cp, os.path.join(tmp, cp))
            try:
                t.wait_for(lambda: t.csms.calls("BootNotification", cp) and cp in t.csms.sessions, 20)
                time.sleep(0.5)
                rows[target] = t.run(_round_trips(t.csms, cp, n), timeout=600)
                if target == "micropython":
                    rows["mem"] = st.cmd("mem")
                    rows["mem_gc"] = st.cmd("mem gc")
            finally:
                st.quit()
        cp = "BENCH-mobilityhouse"

        async def run_mh():
            ws, task = await _mobilityhouse_station(t.csms.url(), cp)
            try:
                while cp not in t.csms.sessions:
                    await asyncio.sleep(0.01)
                return await _round_trips(t.csms, cp, n)
            finally:
                task.cancel()
                await ws.close()
        rows["mobilityhouse"] = asyncio.run_coroutine_threadsafe(run_mh(), t.loop).result(600)
    finally:
        t.stop()
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = 2000
    if "--calls" in argv:
        n = int(argv[argv.index("--calls") + 1])
    print("Round trips: CSMS -> station DataTransfer over loopback, %d sequential calls" % n)
    rows = bench_round_trips(n)
    base = rows["mobilityhouse"]
    print("  %-38s %10s %8s" % ("station", "calls/s", "ratio"))
    for key, label in (("cpython", "this firmware, CPython %d.%d" % sys.version_info[:2]),
                       ("micropython", "this firmware, micropython (unix)"),
                       ("mobilityhouse", "mobilityhouse ocpp ChargePoint, CPython")):
        if key in rows:
            print("  %-38s %10.0f %7.2fx" % (label, rows[key], rows[key] / base))
    if "mem" in rows:
        m, g = rows["mem"], rows["mem_gc"]
        print("  micropython heap: mem_peak %d B over the run; after gc: %d B allocated, %d B free"
              % (m["peak"], g["alloc"], g["free"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
