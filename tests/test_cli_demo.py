# The demo (`python -m host.sim` without --csms, i.e. `make demo`) cleans up after itself:
# its temporary data directory is removed, or kept and named with --keep (issue #16 item 6).
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(tmp_path, *extra):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "host.sim"] + list(extra), cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def test_demo_removes_its_data_directory_and_keep_keeps_it(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    p = run_demo(a)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "summary:" in p.stdout
    assert os.listdir(str(a)) == [], os.listdir(str(a))
    assert "connection lost" not in p.stderr   # a clean stop is not a warning
    b = tmp_path / "b"
    b.mkdir()
    p = run_demo(b, "--keep")
    assert p.returncode == 0, p.stderr[-3000:]
    kept = os.listdir(str(b))
    assert len(kept) == 1 and str(b / kept[0]) in p.stdout, (kept, p.stdout)
    assert os.listdir(str(b / kept[0]))   # the station's files are there
