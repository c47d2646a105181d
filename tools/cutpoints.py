"""python -m tools cutpoints [--target cpython|micropython|both] [--workers N] [--nested K]
                            [--keep DIR]

Exhaustive crash-point fault injection (issue #11 item 4): records the full script of
tests/cutpoints.py (boot, a session with meter values, an offline period, the drain, a local
list update, a Reset) on the littlefs power-cut double, then restarts a station on what every
cut before each create / write / sync / rename / remove would have left, and checks that no
acknowledged event was lost, no seqNo came back with other content, every document reads and
the station boots to Accepted. --nested K: for K of the restarts (sampled around transaction
starts and ends, or "all"), also cut the restart itself before each of its operations and
restart again (a second cut during recovery). Prints "<N> cut points, <K> lost" per runtime;
exit status 1 if any cut point had a problem. CSMS traffic stays on loopback."""
import os
import shutil
import sys
import tempfile
import time

from tests.harness import ROOT, micropython_exe


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    targets = ["cpython", "micropython"]
    workers = 3
    nested = 0
    keep = None
    while argv:
        a = argv.pop(0)
        if a == "--target" and argv:
            t = argv.pop(0)
            targets = ["cpython", "micropython"] if t == "both" else [t]
        elif a == "--workers" and argv:
            workers = int(argv.pop(0))
        elif a == "--nested" and argv:
            v = argv.pop(0)
            nested = 10 ** 6 if v == "all" else int(v)
        elif a == "--keep" and argv:
            keep = argv.pop(0)
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    if "micropython" in targets and micropython_exe() is None:
        print("micropython not found: checking cpython only", file=sys.stderr)
        targets = [t for t in targets if t != "micropython"]
    os.chdir(ROOT)
    from host.csms import CsmsThread
    from tests import cutpoints
    bad = 0
    for target in targets:
        work = tempfile.mkdtemp(prefix="cutpoints-%s-" % target, dir=keep)
        csms = CsmsThread(quiet=True)
        csms.start()
        t0 = time.time()
        done = [0]

        def progress(i, ns, rec, done=done):
            done[0] += 1
            if done[0] % 20 == 0:
                print("  %s: %d states restarted" % (target, done[0]), file=sys.stderr)

        try:
            res = cutpoints.run(target, csms, work, workers=workers, progress=progress,
                                nested=nested)
        finally:
            violations = list(csms.csms.schema_violations)
            csms.stop()
        took = time.time() - t0
        print("%s: %d cut points, %d lost (%d distinct surviving states restarted, %d cut "
              "points with other problems, %d schema violations) in %.0f s"
              % (target, res.cuts, res.lost(), res.states, res.other(), len(violations), took))
        if nested:
            print("%s, second cut during %d of those restarts: %d cut points, %d lost (%d distinct "
                  "states restarted, %d with other problems)"
                  % (target, min(nested, res.states), res.nested_cuts, res.lost(True),
                     res.nested_states, res.other(True)))
        print("  script: %s operations (%s), %d outbox put()s, %d security log appends"
              % (len(res.trace.ops), ", ".join("%s %d" % kv for kv in sorted(res.trace.kinds().items())),
                 len(res.trace.puts), len(res.trace.logged)))
        for n, ps in sorted(res.failed.items(), key=lambda kv: (isinstance(kv[0], tuple), kv[0])):
            print("  cut before op %s (%s): %s" % (n, cutpoints.describe(res.trace, n),
                                                  "; ".join(p[:300] for p in ps)))
        bad += len(res.failed) + len(violations)
        if keep is None and not res.failed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("  kept %s" % work)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
