# Runs the portable test modules (plain test functions, no fixtures) under the unix
# `micropython` binary, with the fake `machine` module for the board drivers, so the same
# checks are proven on the target interpreter too.
import ast
import os

import pytest

from fake_machine import portable
from tests.harness import ROOT

MODULES = ("test_safety", "test_stepper", "test_board_pilot", "test_board_rfid", "test_board_meter",
           "test_board_config", "test_board_device", "test_board_limit", "test_board_ota", "test_board_slot", "test_device_model",
           "test_msg_queue", "test_rpc_unit", "test_connection_state", "test_meter_values_unit",
           "test_log_unit", "test_customer_info_unit")


def _portable_tests(module):
    with open(os.path.join(ROOT, "tests", module + ".py")) as f:
        tree = ast.parse(f.read())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name.startswith("test_") and not n.args.args}


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_under_micropython(module):
    rc, out = portable.run_micropython([module], timeout=120)
    if rc is None:
        pytest.skip(out)
    lines = out.splitlines()
    summary = [ln for ln in lines if ln.startswith("SUMMARY")]
    assert summary and rc == 0, out[-3000:]
    assert int(summary[-1].split()[2]) == 0, out[-3000:]
    # PASS only: mprun reports a TypeError mentioning "argument" as a skip, which would
    # hide a real failure inside a fixture-free test
    ran = {ln.split()[1].split(".", 1)[1] for ln in lines if ln.startswith("PASS ")}
    expected = _portable_tests(module)
    assert expected and expected <= ran, "did not pass under micropython: %s" % (expected - ran)
