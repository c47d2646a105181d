"""`python -m tools deploy CONNECT`: copy dist/ (and a config) to a board with mpremote.

CONNECT is what `mpremote connect` takes: a port (/dev/ttyUSB0, COM3, a pty) or a
shortcut such as `auto`. --resume keeps the running session (needed for the unix port on a
pty, which a soft reset would end)."""
import argparse
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commands(connect, dist, config=None, resume=False, reset=False, romfs=False, dest=":",
             frozen=False):
    """The mpremote invocations deploy runs, as argument lists (cwd = dist). `dest` is the
    device directory (":" = flash root; the unix port on a pty needs ":."). frozen: the
    firmware is frozen into the MicroPython image, so only what freezing cannot carry is
    copied: the schema table (to the root, as firmware/validate.py looks for it there),
    boot.py and main.py."""
    exe = shutil.which("mpremote") or "mpremote"
    head = [exe, "connect", connect] + (["resume"] if resume else [])
    cmds = []
    if frozen:
        cmds.append(head + ["cp", os.path.join("firmware", "schemas.bin"), dest])
    elif romfs and os.path.exists(os.path.join(dist, "romfs.img")):
        cmds.append(head + ["romfs", "deploy", os.path.join(dist, "romfs.img")])
    else:
        cmds.append(head + ["cp", "-r", "firmware", "board", dest])
    cmds.append(head + ["cp", "boot.py", "main.py", dest])
    if config:
        cmds.append(head + ["cp", os.path.abspath(config), ":config.json"])
    if reset:
        cmds.append(head + ["reset"])
    return cmds


def check_config(path, log=print):
    """Validate `path` with the board's own validator before anything is copied: a config
    the board would refuse at boot never reaches it."""
    import sys
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from board import config as board_config
    try:
        cfg = board_config.validate(_read_json(path))
    except board_config.ConfigError as e:
        raise SystemExit("config %s refused, nothing copied: %s" % (path, e))
    for w in cfg["warnings"]:
        log("config warning: %s" % w)
    return cfg


def _no_constant(name):
    # MicroPython's json refuses NaN/Infinity, so the board would refuse what we accepted
    raise ValueError("%s is not valid JSON" % name)


def _read_json(path):
    import json
    try:
        with open(path) as f:
            return json.load(f, parse_constant=_no_constant)
    except ValueError as e:
        raise SystemExit("config %s is not valid JSON, nothing copied: %s" % (path, e))


def deploy(connect, dist=None, config=None, resume=False, reset=False, romfs=False,
           dry_run=False, log=print, timeout=300, dest=":", frozen=False):
    if romfs and frozen:  # refused before anything is read or copied
        raise SystemExit("--romfs and --frozen exclude each other: the code is either in the "
                         "ROMFS image or frozen into the MicroPython image")
    dist = dist or os.path.join(ROOT, "dist")
    if not os.path.isdir(os.path.join(dist, "firmware")):
        raise SystemExit("%s has no build: run `python -m tools build` first" % dist)
    if config and not os.path.isfile(config):
        raise SystemExit("config file %s not found (start from board/config.example.json)"
                         % config)
    if config:
        check_config(config, log)
    cmds = commands(connect, dist, config, resume, reset, romfs, dest, frozen)
    for i, c in enumerate(cmds, 1):
        log("[%d/%d] %s" % (i, len(cmds), " ".join(c)))
        if dry_run:
            continue
        p = subprocess.run(c, cwd=dist, timeout=timeout)
        if p.returncode != 0:
            raise SystemExit("mpremote failed (exit %d) on step %d" % (p.returncode, i))
    return cmds


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools deploy", description=__doc__)
    ap.add_argument("connect", help="mpremote connect string, e.g. /dev/ttyUSB0 or auto")
    ap.add_argument("--config", help="JSON config to install as /config.json")
    ap.add_argument("--dist", help="build directory (default dist/)")
    ap.add_argument("--resume", action="store_true", help="do not soft-reset the board")
    ap.add_argument("--reset", action="store_true", help="hard-reset the board afterwards")
    ap.add_argument("--romfs", action="store_true", help="deploy dist/romfs.img to the ROMFS "
                    "partition instead of copying .mpy files (MicroPython >= 1.25 builds)")
    ap.add_argument("--frozen", action="store_true", help="the firmware is frozen into the "
                    "board's MicroPython (dist/manifest.py): copy only schemas.bin, boot.py, "
                    "main.py (a firmware/ directory on the board would hide the frozen one)")
    ap.add_argument("--dest", default=":", help="device directory (default ':' = root; "
                    "use ':.' for the unix port on a pty)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = ap.parse_args(argv)
    deploy(a.connect, a.dist, a.config, a.resume, a.reset, a.romfs, a.dry_run, dest=a.dest,
           frozen=a.frozen)
    return 0
