# ESP32 full-image firmware update (board/ota.py) against a fake `esp32` module: the image of an
# "esp32-image" bundle lands in the next OTA partition, is checked there, set_boot() names it,
# and it is confirmed only through confirm(). Portable (pytest and micropython); on a real
# ESP32 the same calls go to esp32.Partition (not run here: no board).
from fake_machine import portable  # noqa: F401
import hashlib
import json
import os
import sys

from fake_machine import fake_esp32
from firmware import compat

DIR = "/tmp/boardota-" + "".join("%02x" % b for b in os.urandom(6))


def _bundle(image, digest=None):
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    h = digest or "".join("%02x" % b for b in hashlib.sha256(image).digest())
    m = {"version": "9.9.9", "kind": "esp32-image", "files": [["app.bin", len(image), h]]}
    path = DIR + "/img.pyfw"
    with open(path, "wb") as f:
        f.write(b"PYFW1 " + json.dumps(m).encode() + b"\n" + image)
    return path, m


def _ota():
    fake_esp32.Partition.reset()
    sys.modules["esp32"] = fake_esp32
    from board import ota
    assert ota.available()
    return ota.Ota()


def test_esp32_image_written_checked_then_booted_and_confirmed():
    o = _ota()
    image = bytes((i * 7) & 0xFF for i in range(10000))  # not a multiple of 4 KB
    path, m = _bundle(image)
    assert o.running() == "ota_0"
    label = compat.run(o.write(path, m))
    assert label == "ota_1"
    part = fake_esp32.Partition._parts["ota_1"]
    assert bytes(part[:len(image)]) == image and part[len(image)] == 0xFF
    assert fake_esp32.Partition.boot == "ota_0"  # nothing switched by writing
    o.activate()
    assert fake_esp32.Partition.boot == "ota_1" and not fake_esp32.Partition.confirmed
    o.confirm()
    assert fake_esp32.Partition.confirmed


def test_esp32_image_that_does_not_match_its_manifest_is_refused():
    from firmware import fw_bundle
    o = _ota()
    path, m = _bundle(b"\x01" * 5000, digest="00" * 32)
    e = portable.raises(fw_bundle.VerifyError, compat.run, o.write(path, m))
    assert "differs" in str(e)
    assert fake_esp32.Partition.boot == "ota_0"


def test_esp32_image_larger_than_the_partition_is_refused():
    o = _ota()
    path, m = _bundle(b"\x02" * (70 * 1024))
    portable.raises(OSError, compat.run, o.write(path, m))
    assert fake_esp32.Partition.boot == "ota_0"


def test_no_esp32_module_means_no_ota():
    saved = sys.modules.pop("esp32", None)
    try:
        sys.modules["esp32"] = None  # import fails as on the host
        from board import ota
        assert not ota.available()
    finally:
        if saved is not None:
            sys.modules["esp32"] = saved
        else:
            sys.modules.pop("esp32", None)
