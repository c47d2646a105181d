"""Run the test_* functions of portable test modules under the unix micropython.

    micropython tests/fake_machine/mprun.py <repo_root> <module> [<module> ...]

Prints one "PASS name" / "FAIL name: error" line per test and "SUMMARY passed failed";
exits 1 on any failure. Tests taking arguments (pytest fixtures) are not portable and
are reported as SKIP.
"""
import sys


def main(argv):
    root = argv[1]
    for p in (root, root + "/tests", root + "/tests/fake_machine"):
        if p not in sys.path:
            sys.path.insert(0, p)
    passed = failed = 0
    for modname in argv[2:]:
        mod = __import__(modname)
        for name in sorted(dir(mod)):
            if not name.startswith("test_"):
                continue
            fn = getattr(mod, name)
            if not callable(fn):
                continue
            try:
                fn()
            except TypeError as e:
                if "argument" in str(e):
                    print("SKIP %s.%s: needs fixtures" % (modname, name))
                    continue
                failed += 1
                print("FAIL %s.%s: %r" % (modname, name, e))
            except Exception as e:
                if type(e).__name__ == "Skipped":
                    print("SKIP %s.%s: %s" % (modname, name, e))
                    continue
                failed += 1
                print("FAIL %s.%s: %r" % (modname, name, e))
                sys.print_exception(e)
            else:
                passed += 1
                print("PASS %s.%s" % (modname, name))
    print("SUMMARY %d %d" % (passed, failed))
    sys.exit(1 if failed else 0)


main(sys.argv)
