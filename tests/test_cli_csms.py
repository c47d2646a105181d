# `python -m host.csms` as a CSMS developer starts it (issue #16 items 2 and 4): help, a bad
# port, a port in use, and a Python without the dev packages each get a message and an exit
# code, never a traceback.
import os
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, exe=None):
    p = subprocess.run([exe or sys.executable, "-m", "host.csms"] + args, cwd=ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_help_prints_usage_and_the_stdin_commands():
    rc, out, err = run(["--help"])
    assert rc == 0, err
    assert out.startswith("usage: python -m host.csms") and "call ID ACTION" in out


@pytest.mark.parametrize("args", [["99999"], ["abc"], ["9000", "9001"], ["--host"]])
def test_bad_arguments_exit_2_with_usage(args):
    rc, out, err = run(args)
    assert rc == 2 and "usage: python -m host.csms" in err and "Traceback" not in err, err


def test_port_in_use_exits_2_and_says_so():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        rc, out, err = run([str(s.getsockname()[1])])
    finally:
        s.close()
    assert rc == 2 and "cannot listen on 127.0.0.1 port" in err and "in use" in err, err
    assert "Traceback" not in err


def test_python_without_the_dev_packages_is_told_how_to_run_it():
    exe = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    if exe is None:
        pytest.skip("no system python3 outside the venv")
    has = subprocess.run([exe, "-c", "import ocpp, jsonschema, websockets"],
                         capture_output=True).returncode == 0
    if has:
        pytest.skip("the system python3 has the dev packages: nothing to explain")
    rc, out, err = run(["--help"], exe=exe)
    assert rc == 2 and "make setup" in err and ".venv/bin/python -m host.csms" in err, err
    assert "Traceback" not in err
