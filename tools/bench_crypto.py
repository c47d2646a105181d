"""Crypto-core figures under micropython (printed, never pass/fail).

    python -m tools.bench_crypto [--repeat N] [--no-bisect]

The modules are compiled with mpy-cross (-O3, as tools build does) and run from .mpy under
the unix micropython over keys and certificates made by `cryptography`. Per operation:
mean wall time over N runs, heap allocated by one run (micropython.mem_total() delta:
everything the run allocates, garbage included, i.e. the gc churn), micropython.mem_peak()
after the runs (the unix port's counter is not lowered by gc sweeps, so it is the sum of
allocations since start, not a live peak), and the smallest `-X heapsize` a fresh
interpreter needs to import the crypto core and run the operation once (bisected, 1 KB
steps: the true peak of live heap plus the interpreter's own baseline). Also the .mpy size
of each module and the heap their import costs.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODULES = ("asn1", "x509", "sha512", "ecdsa", "rsa")
OPS = ("import_only", "rsa2048_verify", "rsa2048_cert_verify", "rsa4096_verify", "p256_verify",
       "p256_cert_verify", "p384_verify", "p256_keygen", "p256_sign", "cert_parse",
       "hash_data_sha256", "hash_data_sha384", "chain_3_rsa_root")
MSG = b"bench message"
# the vectors each operation reads (each run loads only its own, so the heap figures do not
# include the others)
NEEDS = {"import_only": (), "rsa2048_verify": ("rsa2048_key", "sha256", "rsa2048_sig"),
         "rsa4096_verify": ("rsa4096_key", "sha256", "rsa4096_sig"),
         "p256_verify": ("p256_pub", "p256_sig", "sha256"),
         "p384_verify": ("p384_pub", "p384_sig", "sha384"),
         "rsa2048_cert_verify": ("rsa2048_leaf", "rsa2048_root"),
         "p256_cert_verify": ("p256_leaf", "p256_root"), "p256_keygen": (),
         "p256_sign": ("p256_d", "sha256"), "cert_parse": ("rsa2048_leaf",),
         "hash_data_sha256": ("rsa2048_leaf", "rsa2048_root"),
         "hash_data_sha384": ("rsa2048_leaf", "rsa2048_root"),
         "chain_3_rsa_root": ("chain_leaf", "chain_inter", "chain_root", "now")}

RUNNER = r"""import sys, gc, time, json, binascii, micropython
sys.path.insert(0, ".")
from firmware import compat  # resident on the station: not part of the crypto figure
gc.collect()
a0 = gc.mem_alloc()
from firmware import asn1, x509, sha512, ecdsa, rsa
gc.collect()
import_heap = gc.mem_alloc() - a0
with open(sys.argv[1]) as f:
    V = json.load(f)
op = sys.argv[2]
n = int(sys.argv[3])
u = binascii.unhexlify
def vec(name):
    return u(V[name])
if op == "import_only":
    def run():
        pass
elif op == "rsa2048_verify" or op == "rsa4096_verify":
    kb, dig, sig = vec(op[:7] + "_key"), vec("sha256"), vec(op[:7] + "_sig")
    def run():
        assert rsa.verify(kb, "SHA256", dig, sig)
elif op == "p256_verify" or op == "p384_verify":
    pub, sig = vec(op[:4] + "_pub"), vec(op[:4] + "_sig")
    dig = vec("sha256") if op == "p256_verify" else vec("sha384")
    curve = "P-256" if op == "p256_verify" else "P-384"
    def run():
        assert ecdsa.verify(pub, dig, sig, curve)
elif op == "rsa2048_cert_verify" or op == "p256_cert_verify":
    pre = op[:op.index("_cert")]
    leaf, root = x509.Cert(vec(pre + "_leaf")), x509.Cert(vec(pre + "_root"))
    def run():
        x509.verify_signed_by(leaf, root)
elif op == "p256_keygen":
    def run():
        ecdsa.generate_p256()
elif op == "p256_sign":
    d = int(V["p256_d"])
    dig = vec("sha256")
    def run():
        ecdsa.sign(d, dig)
elif op == "cert_parse":
    der = vec("rsa2048_leaf")
    def run():
        c = x509.Cert(der)
        c.subject_cn()
elif op.startswith("hash_data_"):
    leaf, root = x509.Cert(vec("rsa2048_leaf")), x509.Cert(vec("rsa2048_root"))
    alg = op[-6:].upper()
    def run():
        x509.hash_data(leaf, root, alg)
elif op == "chain_3_rsa_root":
    leaf, inter, root = (x509.Cert(vec("chain_" + k)) for k in ("leaf", "inter", "root"))
    now = V["now"]
    def run():
        x509.verify_chain(leaf, [inter], [root], now)
gc.collect()
a0 = micropython.mem_total()
run()
alloc = micropython.mem_total() - a0
gc.collect()
t0 = time.ticks_us()
for _ in range(n):
    run()
us = time.ticks_diff(time.ticks_us(), t0) // max(n, 1)
print("RESULT " + json.dumps({"us": us, "alloc": alloc, "peak": micropython.mem_peak(),
                              "import_heap": import_heap}))
"""


def vectors():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from tests import pki_build as pb
    v = {"sha256": hashlib.sha256(MSG).digest().hex(),
         "sha384": hashlib.sha384(MSG).digest().hex(), "now": pb.unix(pb.NOW)}
    for kind in ("rsa2048", "rsa4096"):
        k = pb.key(kind)
        v[kind + "_key"] = k.public_key().public_bytes(
            pb.DER, serialization.PublicFormat.PKCS1).hex()
        v[kind + "_sig"] = k.sign(MSG, padding.PKCS1v15(), pb.HASHES["sha256"]()).hex()
    for kind, h in (("p256", "sha256"), ("p384", "sha384")):
        k = pb.key(kind)
        v[kind + "_pub"] = k.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint).hex()
        v[kind + "_sig"] = k.sign(MSG, ec.ECDSA(pb.HASHES[h]())).hex()
        if kind == "p256":
            v["p256_d"] = str(k.private_numbers().private_value)
    for kind in ("rsa2048", "p256"):
        root = pb.issue("Bench Root", key_kind=kind, org="Bench CSO", ca=True)
        leaf = pb.issue("CS-BENCH-0001", root, key_kind="p256", org="Bench CSO")
        v[kind + "_root"], v[kind + "_leaf"] = root.der.hex(), leaf.der.hex()
    root = pb.issue("Chain Root", key_kind="rsa2048", ca=True)
    inter = pb.issue("Chain Sub CA", root, key_kind="p256", ca=True)
    leaf = pb.issue("CS-BENCH-0001", inter, key_kind="p256")
    v["chain_root"], v["chain_inter"], v["chain_leaf"] = root.der.hex(), inter.der.hex(), \
        leaf.der.hex()
    return v


def build(out, modules=MODULES):
    """firmware/{__init__,compat,modules}.mpy in out, compiled as tools build does; returns
    {module: .mpy bytes}. Shared by the other micropython benches."""
    from tools.build import OPT, find_mpy_cross
    mpy = find_mpy_cross()
    if mpy is None:
        raise SystemExit("mpy-cross not found")
    os.makedirs(os.path.join(out, "firmware"), exist_ok=True)
    sizes = {}
    for m in ("__init__", "compat") + tuple(modules):
        src = os.path.join(ROOT, "firmware", m + ".py")
        dst = os.path.join(out, "firmware", m + ".mpy")
        subprocess.run(mpy + ["-O%d" % OPT, "-s", "firmware/%s.py" % m, "-o", dst, src],
                       check=True)
        sizes[m] = os.path.getsize(dst)
    return sizes


def run_runner(mp, out, args, heapsize=None):
    """Run out/runner.py with args under micropython `mp` (a command list): its RESULT json,
    or (None, the end of stderr)."""
    cmd = list(mp) + (["-X", "heapsize=%d" % heapsize] if heapsize else [])
    p = subprocess.run(cmd + [os.path.join(out, "runner.py")] + [str(a) for a in args],
                       cwd=out, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        return None, p.stderr[-300:]
    return json.loads(lines[-1][7:]), None


def smallest_runner_heap(mp, out, args, lo=8 * 1024, hi=512 * 1024, step=1024):
    """The smallest -X heapsize (bisected, `step` bytes) at which runner.py args passes."""
    if run_runner(mp, out, args, hi)[0] is None:
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if run_runner(mp, out, args, mid)[0] is None:
            lo = mid
        else:
            hi = mid
    return hi


def run_op(mp, out, vec_path, op, n, heapsize=None):
    return run_runner(mp, out, (vec_path, op, n), heapsize)


def smallest_heap(mp, out, vec_path, op):
    return smallest_runner_heap(mp, out, (vec_path, op, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.bench_crypto")
    ap.add_argument("--repeat", type=int, default=10, help="runs per timing (default 10)")
    ap.add_argument("--no-bisect", action="store_true", help="skip the smallest-heap search")
    args = ap.parse_args(argv)
    from tests.harness import micropython_exe
    exe = micropython_exe()
    if exe is None:
        print("micropython not found")
        return 1
    with tempfile.TemporaryDirectory() as out:
        sizes = build(out)
        with open(os.path.join(out, "runner.py"), "w") as f:
            f.write(RUNNER)
        allv = vectors()
        print("crypto core under micropython (%s), .mpy -O3, %d runs per figure"
              % (exe, args.repeat))
        print("%-22s %10s %12s %12s %14s" % ("operation", "ms/op", "alloc/op KB",
                                             "mem_peak KB", "min heap KB"))
        import_heap = None
        for op in OPS:
            n = args.repeat if not op.startswith("rsa4096") else max(1, args.repeat // 2)
            vec_path = os.path.join(out, op + ".json")
            with open(vec_path, "w") as f:
                json.dump({k: allv[k] for k in NEEDS[op]}, f)
            res, err = run_op([exe], out, vec_path, op, n)
            if res is None:
                print("%-22s FAILED %s" % (op, err))
                continue
            import_heap = res["import_heap"]
            heap = None if args.no_bisect else smallest_heap([exe], out, vec_path, op)
            print("%-22s %10.1f %12.1f %12.1f %14s" % (
                op, res["us"] / 1000.0, res["alloc"] / 1024.0, res["peak"] / 1024.0,
                "-" if heap is None else "%d" % (heap // 1024)))
        print()
        print("module        .mpy bytes")
        for m in MODULES:
            print("%-12s %10d" % (m, sizes[m]))
        print("%-12s %10d" % ("total", sum(sizes[m] for m in MODULES)))
        if import_heap is not None:
            print("heap after importing all five: %.1f KB" % (import_heap / 1024.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
