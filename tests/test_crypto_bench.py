"""tools/bench_crypto.py runs every operation under micropython (figures are printed, not
checked: this only proves the bench still works)."""
import pytest

from tests.harness import micropython_exe


def test_bench_crypto_runs_every_operation(capsys):
    if micropython_exe() is None:
        pytest.skip("micropython binary not found")
    from tools import bench_crypto
    assert bench_crypto.main(["--repeat", "1", "--no-bisect"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    rows = {ln.split()[0] for ln in out.splitlines() if ln.strip()}
    assert set(bench_crypto.OPS) <= rows, out
    assert set(bench_crypto.MODULES) <= rows and "total" in rows, out
