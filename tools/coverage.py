"""Which Part 6 test cases of a certification profile have a test named after them.

    python -m tools coverage [--profile Core] [--tsv PATH] [--missing]

Reads the profile table (default tests/data/cs_testcases_by_profile.tsv, a copy of the
shared spec table) and the test function names under tests/. A name covers an id when it contains
it: test_TC_E_01_CS_..., test_TC_C_02_06_07_56_CS_... (several ids of one block) or
test_TC_E_28_to_34_CS_... (a range)."""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# vendored (tests/data/README.md): a clean clone has no ../shared
DEFAULT_TSV = os.path.join(ROOT, "tests", "data", "cs_testcases_by_profile.tsv")


def covered_ids():
    ids = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py")):
        with open(path) as f:
            names = re.findall(r"def (test_\w+)\(", f.read())
        for name in names:
            for m in re.finditer(r"TC_([A-Z])_((?:\d+_)*\d+)(?:_to_(\d+))?", name):
                block, nums, upto = m.group(1), m.group(2).split("_"), m.group(3)
                if upto:
                    nums = [str(n) for n in range(int(nums[-1]), int(upto) + 1)] + nums[:-1]
                for n in nums:
                    ids.add("TC_%s_%02d_CS" % (block, int(n)))
    return ids


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else "Core"
    tsv = argv[argv.index("--tsv") + 1] if "--tsv" in argv else DEFAULT_TSV
    if not os.path.exists(tsv):
        print("profile table not found: %s (pass --tsv PATH)" % tsv, file=sys.stderr)
        return 2
    with open(tsv) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    rows = [r for r in rows if r[0] == profile]
    have = covered_ids()
    blocks = {}
    for r in rows:
        b = blocks.setdefault(r[1].split("_")[1], [0, 0, []])
        b[1] += 1
        if r[1] in have:
            b[0] += 1
        else:
            b[2].append("%s%s" % (r[1], "" if r[2] == "M" else " (conditional)"))
    total = [0, 0]
    print("%s profile: Part 6 test cases with a test named after them" % profile)
    for name in sorted(blocks):
        done, n, missing = blocks[name]
        total[0] += done
        total[1] += n
        print("  %s  %3d / %3d" % (name, done, n))
        if "--missing" in argv:
            for m in missing:
                print("        missing %s" % m)
    print("  all %3d / %3d" % tuple(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
