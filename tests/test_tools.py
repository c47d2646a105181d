# tools: build (.mpy for every module + size table + manifest, loadable by micropython),
# deploy/flash command construction, diag's reply matching, command dispatch.
import json
import os
import subprocess
import sys

import pytest

from tests.harness import ROOT
from tools import __main__ as cli
from tools import build, deploy, diag, flash


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if build.find_mpy_cross() is None:
        pytest.skip("mpy-cross not installed")
    out = str(tmp_path_factory.mktemp("dist"))
    lines = []
    res = build.build(out, romfs=True, log=lines.append)
    return out, res, "\n".join(lines)


def test_build_compiles_every_module(built):
    out, res, text = built
    for rel in build.sources():
        if rel.endswith(".py"):
            mpy = os.path.join(out, rel[:-3] + ".mpy")
            assert os.path.getsize(mpy) > 0, rel
            with open(mpy, "rb") as f:
                assert f.read(1) == b"M", rel   # .mpy magic
    names = [r[0] for r in res["modules"]]
    assert "firmware.safety" in names and "board.pilot" in names


def test_build_prints_size_table_and_writes_manifest(built):
    out, res, text = built
    assert "firmware.safety" in text and "TOTAL" in text
    total = [ln for ln in text.splitlines() if ln.startswith("TOTAL")][0]
    assert int(total.split()[2]) == sum(r[2] for r in res["modules"])
    with open(os.path.join(out, "manifest.py")) as f:
        man = f.read()
    assert "package('firmware'" in man and "package('board'" in man
    with open(os.path.join(out, "main.py")) as f:
        assert "board.main" in f.read()
    assert os.path.exists(os.path.join(out, "boot.py"))
    if res["romfs"] is not None:
        assert os.path.getsize(res["romfs"]) > 1000


def test_built_mpy_files_load_under_micropython(built, tmp_path):
    from tests.harness import micropython_exe
    exe = micropython_exe()
    if exe is None:
        pytest.skip("micropython binary not installed")
    out, _, _ = built
    script = tmp_path / "t.py"
    script.write_text(
        "import sys\n"
        "sys.path[:0] = [%r, %r]\n"
        "import firmware.safety, board.config, board.pilot, board.mfrc522, board.modbus\n"
        "print(firmware.safety.__file__, board.config.__file__)\n"
        % (out, os.path.join(ROOT, "tests", "fake_machine")))
    p = subprocess.run([exe, str(script)], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert ".mpy" in p.stdout


def test_deploy_commands(tmp_path):
    (tmp_path / "firmware").mkdir()
    cfg = tmp_path / "c.json"
    raw = json.load(open(os.path.join(ROOT, "board", "config.example.json")))
    raw["station"]["csms_url"] = "ws://127.0.0.1:9000/ocpp"
    cfg.write_text(json.dumps(raw))
    cmds = deploy.deploy("/dev/pts/7", str(tmp_path), str(cfg), resume=True, dry_run=True,
                         log=lambda s: None)
    assert all(c[1:4] == ["connect", "/dev/pts/7", "resume"] for c in cmds)
    assert cmds[0][4:] == ["cp", "-r", "firmware", "board", ":"]
    assert cmds[-1][4:] == ["cp", str(cfg), ":config.json"]
    # frozen firmware: a firmware/ directory on the board would hide the frozen package, so
    # only the schema table (to the root, where validate looks), boot.py and main.py go over
    cmds = deploy.deploy("/dev/pts/7", str(tmp_path), frozen=True, dry_run=True,
                         log=lambda s: None)
    assert [c[3:] for c in cmds] == [["cp", os.path.join("firmware", "schemas.bin"), ":"],
                                     ["cp", "boot.py", "main.py", ":"]]
    with pytest.raises(SystemExit, match="exclude each other"):
        deploy.deploy("x", str(tmp_path), romfs=True, frozen=True, dry_run=True)
    with pytest.raises(SystemExit, match="run `python -m tools build`"):
        deploy.deploy("x", str(tmp_path / "nope"), dry_run=True)
    with pytest.raises(SystemExit, match="not found"):
        deploy.deploy("x", str(tmp_path), str(tmp_path / "missing.json"), dry_run=True)


def test_deploy_validates_the_config_before_copying_anything(tmp_path):
    # a fake mpremote first on PATH records every call: none may happen for a bad config
    dist = tmp_path / "dist"
    (dist / "firmware").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    fake = bindir / "mpremote"
    fake.write_text("#!/bin/sh\necho \"$@\" >> %s\n" % calls)
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    raw = json.load(open(os.path.join(ROOT, "board", "config.example.json")))
    raw["station"]["csms_url"] = "ws://127.0.0.1:9000/ocpp"
    raw["evses"][0]["max_curent"] = 16

    def run(cfg_text):
        cfg = tmp_path / "config.json"
        cfg.write_text(cfg_text)
        return subprocess.run([sys.executable, "-m", "tools", "deploy", "/dev/null",
                               "--config", str(cfg), "--dist", str(dist)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    for text, why in ((json.dumps(raw), "evses[0].max_curent: unknown key (did you mean "
                       "max_current?)"), ("{not json", "is not valid JSON"),
                      ('{"station": NaN}', "NaN is not valid JSON")):
        p = run(text)
        assert p.returncode != 0
        assert "Traceback" not in p.stderr and why in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "nothing copied" in p.stderr
        assert not calls.exists(), "mpremote was invoked for a refused config"
    raw["evses"][0]["rcd"] = None
    del raw["evses"][0]["max_curent"]
    p = run(json.dumps(raw))
    assert p.returncode == 0, p.stderr
    assert "config warning: evses[0].rcd is null" in p.stdout
    assert calls.read_text().count("connect /dev/null") == 3


def test_flash_commands_and_refusals(tmp_path):
    img = tmp_path / "ESP32_GENERIC-v1.29.bin"
    img.write_bytes(b"\xe9" + bytes(100))
    cmds = flash.flash(str(img), "/dev/ttyUSB0", dry_run=True, log=lambda s: None)
    assert cmds[0][-1] == "erase-flash" and "esptool" in cmds[0]
    assert cmds[1][-4:] == ["write-flash", "-z", "0x1000", str(img)]
    s3 = flash.commands(str(img), "p", chip="esp32s3", erase=False)
    assert len(s3) == 1 and s3[0][-2] == "0x0"
    with pytest.raises(SystemExit, match="never downloads"):
        flash.flash("https://micropython.org/x.bin", "p", dry_run=True)
    with pytest.raises(SystemExit, match="not found"):
        flash.flash(str(tmp_path / "none.bin"), "p", dry_run=True)


def test_flash_checks_the_image_header_before_erasing(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(flash.subprocess, "run", lambda c: ran.append(c))
    html = tmp_path / "download.bin"
    html.write_bytes(b"<!DOCTYPE html><html>" + bytes(100))
    with pytest.raises(SystemExit, match="not an ESP32 firmware image.*nothing was erased"):
        flash.flash(str(html), "/dev/ttyUSB0")
    s3 = tmp_path / "ESP32_GENERIC_S3.bin"
    s3.write_bytes(b"\xe9\x03\x02\x20" + bytes(8) + b"\x09\x00" + bytes(100))
    with pytest.raises(SystemExit, match="image for esp32s3, not esp32"):
        flash.flash(str(s3), "/dev/ttyUSB0")
    assert ran == []   # esptool never ran: the chip was not erased
    assert len(flash.flash(str(s3), "/dev/ttyUSB0", chip="esp32s3", dry_run=True)) == 2


def test_esptool_floor_matches_the_command_syntax_flash_uses():
    # erase-flash / write-flash (hyphens) are esptool 5 syntax; 4.x knows only underscores
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert '"esptool>=5' in text


class FakeSerial:
    def __init__(self, replies):
        self.replies = list(replies)
        self.sent = b""
        self.pending = b""

    def reset_input_buffer(self):
        pass

    def write(self, b):
        self.sent += b
        if self.replies:
            self.pending += self.replies.pop(0)

    def flush(self):
        pass

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


def test_diag_skips_echo_and_logs_and_returns_the_json_reply():
    ser = FakeSerial([b"status\r\n12:00:00 I [x] hello\r\n{not json\r\n"
                      b'{"ok": true, "state": "Available"}\r\n'])
    seen = []
    r = diag.ask(ser, "status", timeout=1, echo=seen.append)
    assert r == {"ok": True, "state": "Available"}
    assert ser.sent == b"status\r\n"
    assert "12:00:00 I [x] hello" in seen
    with pytest.raises(TimeoutError):
        diag.ask(FakeSerial([b"nothing\n"]), "status", timeout=0.2)


def test_dispatch(capsys, monkeypatch):
    assert cli.main([]) == 0
    assert "deploy" in capsys.readouterr().out
    assert cli.main(["nope"]) == 2
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("tools.ghost_module_x", "missing"))
    assert cli.main(["ghost"]) == 2
    assert "tools.ghost_module_x is missing" in capsys.readouterr().err
    called = []
    monkeypatch.setattr(flash, "main", lambda argv: called.append(argv) or 0)
    assert cli.main(["flash", "a.bin", "--port", "p"]) == 0
    assert called == [["a.bin", "--port", "p"]]


def test_python_dash_m_tools_runs():
    p = subprocess.run([sys.executable, "-m", "tools", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "gen-schemas" in p.stdout


@pytest.mark.parametrize("tool", ["bench", "cutpoints", "coverage", "bench-fleet", "build"])
def test_tool_help_prints_usage_and_runs_nothing(tool, tmp_path):
    # `bench --help` used to start the 10-minute benchmark; a tool's help must only print
    p = subprocess.run([sys.executable, "-m", "tools", tool, "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "python -m tools" in p.stdout or "usage:" in p.stdout, p.stdout
    assert "Traceback" not in p.stderr


def _diag(args):
    p = subprocess.run([sys.executable, "-m", "tools", "diag"] + args, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_diag_on_a_missing_port_says_so_without_a_traceback(tmp_path):
    rc, out, err = _diag([str(tmp_path / "ttyUSB9"), "status"])
    assert rc == 2 and "cannot open" in err and "Traceback" not in err, err


def test_diag_on_a_board_at_the_repl_says_how_to_start_the_station():
    # pyserial's loop:// echoes what it is sent, as a REPL does: never a JSON reply
    rc, out, err = _diag(["loop://", "status", "--timeout", "0.5"])
    assert rc == 1 and "does not seem to run" in err and "import board.main" in err, err
    assert "Traceback" not in err


def test_coverage_reads_its_vendored_table_so_a_clean_clone_works():
    from tools import coverage
    assert os.path.commonpath([coverage.DEFAULT_TSV, ROOT]) == ROOT  # never ../shared
    p = subprocess.run([sys.executable, "-m", "tools", "coverage"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert " all " in p.stdout
