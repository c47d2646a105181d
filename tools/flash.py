"""`python -m tools flash IMAGE --port PORT`: erase the flash and write a MicroPython
firmware image you downloaded yourself (this tool never downloads anything)."""
import argparse
import os
import subprocess
import sys

# where the image goes: the bootloader offset differs between ESP32 generations
OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0",
           "esp32c6": "0x0"}


def commands(image, port, chip="esp32", baud=460800, erase=True):
    if chip not in OFFSETS:
        raise SystemExit("unknown chip %r (one of %s)" % (chip, ", ".join(OFFSETS)))
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port]
    cmds = []
    if erase:
        cmds.append(base + ["erase-flash"])
    cmds.append(base + ["--baud", str(baud), "write-flash", "-z", OFFSETS[chip], image])
    return cmds


def flash(image, port, chip="esp32", baud=460800, erase=True, dry_run=False, log=print):
    if "://" in image:
        raise SystemExit("give a local file: download the image from micropython.org/download "
                         "yourself (this tool never downloads)")
    if not os.path.isfile(image):
        raise SystemExit("firmware image %s not found" % image)
    if not image.endswith(".bin"):
        raise SystemExit("%s: expected an ESP32 .bin image" % image)
    cmds = commands(image, port, chip, baud, erase)
    for i, c in enumerate(cmds, 1):
        log("[%d/%d] %s" % (i, len(cmds), " ".join(c)))
        if not dry_run:
            p = subprocess.run(c)
            if p.returncode != 0:
                raise SystemExit("esptool failed (exit %d)" % p.returncode)
    return cmds


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools flash", description=__doc__)
    ap.add_argument("image", help="MicroPython .bin for your board")
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--chip", default="esp32", choices=sorted(OFFSETS))
    ap.add_argument("--baud", type=int, default=460800)
    ap.add_argument("--no-erase", action="store_true", help="skip erase-flash")
    ap.add_argument("--dry-run", action="store_true", help="print the esptool commands only")
    a = ap.parse_args(argv)
    flash(a.image, a.port, a.chip, a.baud, not a.no_erase, a.dry_run)
    return 0
