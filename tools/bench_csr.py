"""Bench: P-256 key generation and CSR build + sign (firmware.station_cert) under micropython.

    micropython tools/bench_csr.py [N]     one process: times (ms, median of N) and the live
                                           heap with the modules imported
    python -m tools.bench_csr              runs the above, then, with the firmware as .mpy,
                                           the smallest `micropython -X heapsize=` that imports
                                           the modules, and the smallest that also makes one
                                           key pair + CSR: the difference is the peak

A bench figure, not a test: this machine is roughly 20-30x faster than an ESP32."""
import sys


def _device(n):
    import gc
    import time
    from firmware import ecdsa, station_cert
    keygen, csr = [], []
    for _ in range(n):
        t0 = time.ticks_ms()
        d, pub = ecdsa.generate_p256()
        t1 = time.ticks_ms()
        station_cert.build_csr(d, pub, "Test CSO", "CS0001")
        t2 = time.ticks_ms()
        keygen.append(time.ticks_diff(t1, t0))
        csr.append(time.ticks_diff(t2, t1))
    keygen.sort()
    csr.sort()
    gc.collect()
    print("keygen_ms %d csr_sign_ms %d live_after_import %d" % (
        keygen[n // 2], csr[n // 2], gc.mem_alloc()))


_IMPORT = "import sys; sys.path.insert(0, '.'); from firmware import ecdsa, station_cert; "
_RUN = "d, p = ecdsa.generate_p256(); station_cert.build_csr(d, p, 'Test CSO', 'CS0001'); "


def _min_heap_kb(exe, cwd, code):
    """Smallest -X heapsize (KB) in which `code` runs to its end."""
    import subprocess

    def fits(kb):
        r = subprocess.run([exe, "-X", "heapsize=%dk" % kb, "-c", code + "print('ok')"],
                           cwd=cwd, capture_output=True, text=True)
        return r.returncode == 0 and "ok" in r.stdout
    lo, hi = 4, 512
    if not fits(hi):
        sys.exit("does not fit in %d KB" % hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _host():
    import glob
    import os
    import shutil
    import subprocess
    import tempfile
    from tests.harness import ROOT, micropython_exe
    exe = micropython_exe()
    if exe is None:
        sys.exit("micropython not installed")
    out = subprocess.run([exe, "tools/bench_csr.py", "9"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    # heap: the firmware as .mpy (as on the device, no compiling at import), the heap that
    # imports the modules, and the heap that also makes a key pair and a CSR
    tmp = tempfile.mkdtemp()
    try:
        os.mkdir(os.path.join(tmp, "firmware"))
        cross = os.path.join(os.path.dirname(exe), "mpy-cross")
        for src in glob.glob(os.path.join(ROOT, "firmware", "*.py")):
            name = os.path.basename(src)[:-3]
            subprocess.run([cross, "-o", os.path.join(tmp, "firmware", name + ".mpy"), src],
                           check=True)
        base = _min_heap_kb(exe, tmp, _IMPORT)
        peak = _min_heap_kb(exe, tmp, _IMPORT + _RUN)
    finally:
        shutil.rmtree(tmp)
    print("%s heap_kb_import %d heap_kb_keygen_csr %d (peak of keygen + CSR ~%d KB)" % (
        out, base, peak, peak - base))


if __name__ == "__main__":
    if sys.implementation.name == "micropython":
        sys.path.insert(0, ".")
        _device(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    else:
        _host()
