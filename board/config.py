# The board's single JSON configuration file: load, validate, fill defaults.
# Every error names the offending key path, e.g. "evses[0].pilot.adc_pin: ...".
import json

PATH = "/config.json"
ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)   # ADC2 is unusable while WiFi runs
METERS = ("sdm630", "sdm120", "s0", "none")
READERS = ("mfrc522", "pn532_uart", "pn532_i2c", "none")
SECRET_WORDS = ("password", "secret", "key", "psk", "token")
_REQ = object()


class ConfigError(ValueError):
    pass


def _typename(v):
    return type(v).__name__


def _take(src, key, path, typ, default=_REQ, choices=None, lo=None, hi=None):
    p = path + "." + key if path else key
    if not isinstance(src, dict):
        raise ConfigError("%s: expected an object" % (path or "config"))
    if key not in src or src[key] is None:
        if default is _REQ:
            raise ConfigError("%s: missing (required)" % p)
        return default
    v = src[key]
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if typ is int and isinstance(v, bool) or not isinstance(v, typ):
        raise ConfigError("%s: expected %s, got %s %r" % (
            p, typ.__name__, _typename(v), v))
    if choices is not None and v not in choices:
        raise ConfigError("%s: %r is not one of %s" % (p, v, ", ".join(str(c) for c in choices)))
    if lo is not None and v < lo or hi is not None and v > hi:
        raise ConfigError("%s: %r out of range %s..%s" % (p, v, lo, hi))
    return v


def _pin(src, key, path, default=_REQ, adc=False):
    v = _take(src, key, path, int, default, lo=0, hi=48)
    if adc and v is not None and v not in ADC1_PINS:
        raise ConfigError("%s.%s: GPIO%d is not an ADC1 pin (use one of %s)" % (
            path, key, v, ", ".join(str(x) for x in ADC1_PINS)))
    return v


def _opt(src, key, path):
    v = src.get(key) if isinstance(src, dict) else None
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ConfigError("%s.%s: expected an object or null" % (path, key))
    return v


def _evse(e, path, n):
    out = {
        "id": _take(e, "id", path, int, n + 1, lo=1, hi=16),
        "max_current": _take(e, "max_current", path, int, 32, lo=6, hi=80),
        "phases": _take(e, "phases", path, int, 3, choices=(1, 3)),
        "connector_type": _take(e, "connector_type", path, str, "cType2"),
        "allow_ventilation": _take(e, "allow_ventilation", path, bool, False),
        "cable_amps": _take(e, "cable_amps", path, int, 0, lo=0, hi=80),
        "nominal_voltage": _take(e, "nominal_voltage", path, float, 230.0, lo=100.0, hi=480.0),
    }
    pp = path + ".pilot"
    p = _take(e, "pilot", path, dict)
    cal = _take(p, "cal", pp, list, [2000, 62000])
    if len(cal) != 2 or not all(isinstance(x, int) for x in cal) or not cal[0] < cal[1]:
        raise ConfigError("%s.cal: expected [raw_at_-12V, raw_at_+12V] with the first smaller"
                          % pp)
    out["pilot"] = {
        "pwm_pin": _pin(p, "pwm_pin", pp),
        "adc_pin": _pin(p, "adc_pin", pp, adc=True),
        "cal": cal,
        "invert": _take(p, "invert", pp, bool, False),
        "samples": _take(p, "samples", pp, int, 64, lo=16, hi=512),
        "debounce": _take(p, "debounce", pp, int, 3, lo=1, hi=5),
        "diode_v": _take(p, "diode_v", pp, float, -10.5, lo=-12.0, hi=-1.0),
    }
    x = _opt(e, "pp", path)
    out["pp"] = None if x is None else {
        "adc_pin": _pin(x, "adc_pin", path + ".pp", adc=True),
        "pullup_ohm": _take(x, "pullup_ohm", path + ".pp", int, 1000, lo=100),
        "supply_mv": _take(x, "supply_mv", path + ".pp", int, 3300, lo=1000, hi=5000),
    }
    if out["pp"] is None and not out["cable_amps"]:
        out["cable_amps"] = out["max_current"]
    rp = path + ".relay"
    r = _take(e, "relay", path, dict)
    out["relay"] = {
        "pin": _pin(r, "pin", rp),
        "active_low": _take(r, "active_low", rp, bool, False),
        "feedback_pin": _pin(r, "feedback_pin", rp, None),
        "feedback_active_low": _take(r, "feedback_active_low", rp, bool, False),
    }
    x = _opt(e, "rcd", path)
    out["rcd"] = None if x is None else {
        "pin": _pin(x, "pin", path + ".rcd"),
        "active_low": _take(x, "active_low", path + ".rcd", bool, True),
        "test_pin": _pin(x, "test_pin", path + ".rcd", None),
    }
    x = _opt(e, "lock", path)
    out["lock"] = None if x is None else {
        "pin": _pin(x, "pin", path + ".lock"),
        "active_low": _take(x, "active_low", path + ".lock", bool, False),
        "feedback_pin": _pin(x, "feedback_pin", path + ".lock", None),
        "feedback_active_low": _take(x, "feedback_active_low", path + ".lock", bool, False),
    }
    x = _opt(e, "temperature", path)
    tp = path + ".temperature"
    out["temperature"] = None if x is None else {
        "adc_pin": _pin(x, "adc_pin", tp, adc=True),
        "r25": _take(x, "r25", tp, int, 10000, lo=100),
        "beta": _take(x, "beta", tp, int, 3950, lo=1000, hi=10000),
        "pullup_ohm": _take(x, "pullup_ohm", tp, int, 10000, lo=100),
        "limit_c": _take(x, "limit_c", tp, float, 80.0, lo=20.0, hi=150.0),
        "hysteresis_c": _take(x, "hysteresis_c", tp, float, 10.0, lo=1.0, hi=50.0),
    }
    mp = path + ".meter"
    m = _take(e, "meter", path, dict, {"type": "none"})
    t = _take(m, "type", mp, str, "none", choices=METERS)
    meter = {"type": t}
    if t in ("sdm630", "sdm120"):
        meter.update({
            "uart": _take(m, "uart", mp, int, 2, choices=(1, 2)),
            "tx": _pin(m, "tx", mp),
            "rx": _pin(m, "rx", mp),
            "de_pin": _pin(m, "de_pin", mp, None),
            "baud": _take(m, "baud", mp, int, 9600, choices=(2400, 4800, 9600, 19200, 38400)),
            "addr": _take(m, "addr", mp, int, 1, lo=1, hi=247),
            "timeout_ms": _take(m, "timeout_ms", mp, int, 300, lo=20, hi=5000),
        })
    elif t == "s0":
        meter.update({
            "pin": _pin(m, "pin", mp),
            "pulses_per_kwh": _take(m, "pulses_per_kwh", mp, int, 1000, lo=1),
            "min_pulse_ms": _take(m, "min_pulse_ms", mp, int, 30, lo=1, hi=1000),
        })
    out["meter"] = meter
    return out


def _reader(r):
    path = "reader"
    t = _take(r, "type", path, str, "none", choices=READERS)
    out = {"type": t}
    if t == "mfrc522":
        out.update({
            "spi": _take(r, "spi", path, int, 2, choices=(1, 2)),
            "sck": _pin(r, "sck", path), "mosi": _pin(r, "mosi", path),
            "miso": _pin(r, "miso", path), "cs": _pin(r, "cs", path),
            "rst": _pin(r, "rst", path, None),
            "baudrate": _take(r, "baudrate", path, int, 1000000, lo=100000, hi=10000000),
        })
    elif t == "pn532_uart":
        out.update({"uart": _take(r, "uart", path, int, 1, choices=(1, 2)),
                    "tx": _pin(r, "tx", path), "rx": _pin(r, "rx", path)})
    elif t == "pn532_i2c":
        out.update({"i2c": _take(r, "i2c", path, int, 0, choices=(0, 1)),
                    "scl": _pin(r, "scl", path), "sda": _pin(r, "sda", path)})
    out["scan_ms"] = _take(r, "scan_ms", path, int, 300, lo=50, hi=5000)
    return out


def _pins_of(obj, path, seen):
    if isinstance(obj, dict):
        for k in sorted(obj):  # sorted: the same message on both interpreters
            v = obj[k]
            p = path + "." + k
            if (k.endswith("pin") or k in ("tx", "rx", "sck", "mosi", "miso", "cs", "rst",
                                           "scl", "sda")) and isinstance(v, int):
                if v in seen:
                    raise ConfigError("%s: GPIO%d is already used by %s" % (p, v, seen[v]))
                seen[v] = p
            else:
                _pins_of(v, p, seen)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _pins_of(v, "%s[%d]" % (path, i), seen)


def validate(raw):
    """Return a normalized copy of `raw` with defaults, or raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a JSON object")
    st = _take(raw, "station", "", dict)
    cfg = {"station": {
        "identity": _take(st, "identity", "station", str),
        "csms_url": _take(st, "csms_url", "station", str),
        "password": _take(st, "password", "station", str, None),
        "cafile": _take(st, "cafile", "station", str, None),
        "data_dir": _take(st, "data_dir", "station", str, "/data"),
        "vendor": _take(st, "vendor", "station", str, "OpenSource"),
        "model": _take(st, "model", "station", str, "PyStation-ESP32"),
    }}
    url = cfg["station"]["csms_url"]
    if not (url.startswith("ws://") or url.startswith("wss://")):
        raise ConfigError("station.csms_url: must start with ws:// or wss://, got %r" % url)
    if not 1 <= len(cfg["station"]["identity"]) <= 48:
        raise ConfigError("station.identity: 1..48 characters")
    w = _take(raw, "wifi", "", dict, None)
    cfg["wifi"] = None if w is None else {
        "ssid": _take(w, "ssid", "wifi", str),
        "password": _take(w, "password", "wifi", str, ""),
        "hostname": _take(w, "hostname", "wifi", str, None),
    }
    n = _take(raw, "ntp", "", dict, {})
    cfg["ntp"] = {"host": _take(n, "host", "ntp", str, "pool.ntp.org"),
                  "every_s": _take(n, "every_s", "ntp", int, 3600, lo=60)}
    cfg["watchdog_ms"] = _take(raw, "watchdog_ms", "", int, 1500, lo=0, hi=2000)
    evs = _take(raw, "evses", "", list)
    if not evs:
        raise ConfigError("evses: at least one EVSE is required")
    cfg["evses"] = [_evse(e, "evses[%d]" % i, i) for i, e in enumerate(evs)]
    ids = [e["id"] for e in cfg["evses"]]
    if len(set(ids)) != len(ids):
        raise ConfigError("evses: duplicate id in %s" % ids)
    cfg["reader"] = _reader(_take(raw, "reader", "", dict, {"type": "none"}))
    _pins_of({"evses": cfg["evses"], "reader": cfg["reader"]}, "config", {})
    return cfg


def load(path=PATH):
    try:
        f = open(path)
    except OSError:
        raise ConfigError("%s: not found. Copy board/config.example.json there (mpremote cp "
                          "config.json :%s) and edit pins and network settings" % (path, path))
    try:
        try:
            raw = json.load(f)
        except ValueError as e:
            raise ConfigError("%s: not valid JSON (%s)" % (path, e))
    finally:
        f.close()
    return validate(raw)


def relay_pins(path=PATH):
    """(pin, active_low) of every relay, read with as little work as possible for boot.py."""
    out = []
    try:
        with open(path) as f:
            raw = json.load(f)
        for e in raw.get("evses") or ():
            r = e.get("relay") or {}
            if isinstance(r.get("pin"), int):
                out.append((r["pin"], bool(r.get("active_low"))))
    except Exception:
        pass
    return out


def redact(obj):
    """Copy of a config (or any dict) with secret values replaced by "***"."""
    if isinstance(obj, dict):
        out = {}
        for k in obj:
            v = obj[k]
            low = k.lower()
            if v and any(w in low for w in SECRET_WORDS) and not isinstance(v, (dict, list)):
                out[k] = "***"
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj
