"""`python -m tools flash IMAGE --port PORT`: erase the flash and write a MicroPython
firmware image you downloaded yourself (this tool never downloads anything)."""
import argparse
import os
import subprocess
import sys

# where the image goes: the bootloader offset differs between ESP32 generations
OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0",
           "esp32c6": "0x0"}


# chip id in the image's extended header (bytes 12-13, little endian), as esptool writes it
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32s3": 9, "esp32c3": 5, "esp32c6": 13}


def check_image(image, chip):
    """Refuse, before anything touches the chip, a file that is not an ESP image for `chip`
    (an HTML page saved as .bin, a ROMFS image, the wrong chip's build)."""
    with open(image, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[0] != 0xE9:
        raise SystemExit("%s is not an ESP32 firmware image (no 0xE9 image header at its "
                         "start); nothing was erased" % image)
    cid = head[12] | head[13] << 8
    for name, want in CHIP_IDS.items():
        if cid == want and name != chip:
            raise SystemExit("%s is an image for %s, not %s (pass --chip %s if that is your "
                             "board); nothing was erased" % (image, name, chip, name))
    if cid not in CHIP_IDS.values():
        raise SystemExit("%s: unknown chip id %d in the image header; nothing was erased"
                         % (image, cid))


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
    if chip not in OFFSETS:
        raise SystemExit("unknown chip %r (one of %s)" % (chip, ", ".join(OFFSETS)))
    check_image(image, chip)
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
