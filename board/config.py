# The board's single JSON configuration file: load, validate, fill defaults.
# Every error is one line naming the offending key path, e.g. "evses[0].pilot.adc_pin: ...".
# Strict: unknown keys are refused (with a "did you mean" hint), protections (rcd,
# temperature, relay.feedback_pin) and the pp/lock parts are left out only by an explicit
# null, and pins are checked against the chip (ESP32, ESP32-S3, ESP32-C3). Runs on the
# device once at boot and is unloaded afterwards; tools/deploy.py runs it on the host.
import json

PATH = "/config.json"
# What each chip's pins can do (Espressif's ESP-IDF GPIO pages): name, highest GPIO, GPIOs
# missing below it, SPI flash range (refused), first input-only GPIO, ADC1 range (ADC2 is
# unusable while WiFi runs), strapping pins and other pins that only warn, why they warn,
# and the UART / I2C ids the chip has.
CHIPS = (
    ("esp32", "ESP32", 39, (20, 24, 28, 29, 30, 31), 6, 11, 34, 32, 39, (0, 2, 5, 12, 15),
     (1, 3), "the USB serial console (UART0)", (1, 2), (0, 1)),
    ("esp32s3", "ESP32-S3", 48, (22, 23, 24, 25), 26, 32, 99, 1, 10, (0, 3, 45, 46),
     (19, 20, 33, 34, 35, 36, 37), "USB-JTAG (19, 20) or octal flash/PSRAM (33-37)", (1, 2),
     (0, 1)),
    ("esp32c3", "ESP32-C3", 21, (), 12, 17, 99, 0, 4, (2, 8, 9), (18, 19), "USB-JTAG",
     (1,), (0,)),
)
METERS = ("sdm630", "sdm120", "s0", "none")
READERS = ("mfrc522", "pn532_uart", "pn532_i2c", "none")
SECRET_WORDS = ("password", "secret", "key", "psk", "token")
_REQ = object()


class ConfigError(ValueError):
    pass


# Per validate(): pins in use as [gpio, path, shared-bus tag] and the boot warnings.
_pins = []
_warn = []
_chip = [CHIPS[0]]


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
    # NaN/inf pass every range check (comparisons are False) and MicroPython's json refuses them
    if typ is float and v - v != 0:
        raise ConfigError("%s: %r is not a finite number" % (p, v))
    if choices is not None and v not in choices:
        raise ConfigError("%s: %r is not one of %s" % (p, v, ", ".join(str(c) for c in choices)))
    if lo is not None and v < lo or hi is not None and v > hi:
        raise ConfigError("%s: %r out of range %s..%s" % (p, v, lo, hi))
    return v


def _pin(src, key, path, default=_REQ, use="i", bus=None):
    """A GPIO number checked against the chip: `use` is "i" input, "o" output (or open
    drain), "a" analog input (ADC1). `bus` tags pins a shared bus may repeat (RS485)."""
    c = _chip[0]
    v = _take(src, key, path, int, default, lo=0, hi=c[2])
    if v is None:
        return None
    p = path + "." + key
    if v in c[3]:
        raise ConfigError("%s: the %s has no GPIO%d" % (p, c[1], v))
    if c[4] <= v <= c[5]:
        raise ConfigError("%s: GPIO%d is wired to the SPI flash (GPIO%d-%d are not usable)"
                          % (p, v, c[4], c[5]))
    if use == "o" and v >= c[6]:
        raise ConfigError("%s: GPIO%d is input-only (GPIO%d-%d can not drive an output)"
                          % (p, v, c[6], c[2]))
    if use == "a" and not c[7] <= v <= c[8]:
        raise ConfigError("%s: GPIO%d is not an ADC1 pin (use GPIO%d-%d)" % (p, v, c[7], c[8]))
    if v in c[9]:
        _warn.append("%s: GPIO%d is a strapping pin; make sure the circuit does not pull it "
                     "at reset or the board may not boot" % (p, v))
    elif v in c[10]:
        _warn.append("%s: GPIO%d is used by %s" % (p, v, c[11]))
    _pins.append((v, p, bus))
    return v


def _near(word, names):
    """The name in `names` closest to `word` by edit distance, if close enough to be the
    one meant (at most 2 edits, or a third of its length)."""
    best, bd = None, 99
    for n in names:
        prev = list(range(len(n) + 1))
        for i, a in enumerate(word):
            cur = [i + 1]
            for j, b in enumerate(n):
                cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (a != b)))
            prev = cur
        d = prev[-1]
        if d < bd and (d <= 2 or 3 * d <= len(n)):
            best, bd = n, d
    return best


def _only(src, out, path):
    """Refuse keys of `src` that the validator did not read into `out` (typos). A key with
    a close match is named first: it is the likely cause of the others (a misspelt "type")."""
    bad = None
    for k in sorted(src):  # sorted: the same message on both interpreters
        if k not in out:
            hint = _near(k, sorted(out))
            if bad is None or hint and not bad[1]:
                bad = (k, hint)
    if bad is not None:
        p = path + "." + bad[0] if path else bad[0]
        raise ConfigError("%s: unknown key%s" % (
            p, " (did you mean %s?)" % bad[1] if bad[1] else ""))
    return out


def _part(src, key, path, why):
    """An optional part that must be named: an object, or null to go without it (`why`
    set: a boot warning says what is lost)."""
    p = path + "." + key
    if not isinstance(src, dict) or key not in src:
        raise ConfigError("%s: missing; to go without it write \"%s\": null" % (p, key))
    v = src[key]
    if v is None:
        if why:
            _warn.append("%s is null: %s" % (p, why))
        return None
    if not isinstance(v, dict):
        raise ConfigError("%s: expected an object or null" % p)
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
    out["pilot"] = _only(p, {
        "pwm_pin": _pin(p, "pwm_pin", pp, use="o"),
        "adc_pin": _pin(p, "adc_pin", pp, use="a"),
        "cal": cal,
        "invert": _take(p, "invert", pp, bool, False),
        "samples": _take(p, "samples", pp, int, 64, lo=16, hi=512),
        "debounce": _take(p, "debounce", pp, int, 3, lo=1, hi=5),
        "diode_v": _take(p, "diode_v", pp, float, -10.5, lo=-12.0, hi=-1.0),
    }, pp)
    x = _part(e, "pp", path, None)
    xp = path + ".pp"
    out["pp"] = None if x is None else _only(x, {
        "adc_pin": _pin(x, "adc_pin", xp, use="a"),
        "pullup_ohm": _take(x, "pullup_ohm", xp, int, 1000, lo=100),
        "supply_mv": _take(x, "supply_mv", xp, int, 3300, lo=1000, hi=5000),
    }, xp)
    if out["pp"] is None and not out["cable_amps"]:
        out["cable_amps"] = out["max_current"]
    rp = path + ".relay"
    r = _take(e, "relay", path, dict)
    if "feedback_pin" not in r:
        raise ConfigError("%s.feedback_pin: missing; to go without it write "
                          "\"feedback_pin\": null" % rp)
    fb = _pin(r, "feedback_pin", rp, None)
    if fb is None:
        _warn.append("%s.feedback_pin is null: a welded or stuck contactor is not detected"
                     % rp)
    out["relay"] = _only(r, {
        "pin": _pin(r, "pin", rp, use="o"),
        "active_low": _take(r, "active_low", rp, bool, False),
        "feedback_pin": fb,
        "feedback_active_low": _take(r, "feedback_active_low", rp, bool, False),
    }, rp)
    x = _part(e, "rcd", path, "NO residual-current protection (fit an external RCD type B)")
    xp = path + ".rcd"
    out["rcd"] = None if x is None else _only(x, {
        "pin": _pin(x, "pin", xp),
        "active_low": _take(x, "active_low", xp, bool, True),
        "test_pin": _pin(x, "test_pin", xp, None, use="o"),
    }, xp)
    x = _part(e, "lock", path, "the socket is not locked while charging"
              if out["pp"] is not None else None)
    xp = path + ".lock"
    out["lock"] = None if x is None else _only(x, {
        "pin": _pin(x, "pin", xp, use="o"),
        "active_low": _take(x, "active_low", xp, bool, False),
        "feedback_pin": _pin(x, "feedback_pin", xp, None),
        "feedback_active_low": _take(x, "feedback_active_low", xp, bool, False),
    }, xp)
    x = _part(e, "temperature", path, "NO over-temperature protection")
    xp = path + ".temperature"
    out["temperature"] = None if x is None else _only(x, {
        "adc_pin": _pin(x, "adc_pin", xp, use="a"),
        "r25": _take(x, "r25", xp, int, 10000, lo=100),
        "beta": _take(x, "beta", xp, int, 3950, lo=1000, hi=10000),
        "pullup_ohm": _take(x, "pullup_ohm", xp, int, 10000, lo=100),
        "limit_c": _take(x, "limit_c", xp, float, 80.0, lo=20.0, hi=150.0),
        "hysteresis_c": _take(x, "hysteresis_c", xp, float, 10.0, lo=1.0, hi=50.0),
    }, xp)
    mp = path + ".meter"
    m = _take(e, "meter", path, dict, {"type": "none"})
    t = _take(m, "type", mp, str, "none", choices=METERS)
    meter = {"type": t}
    if t in ("sdm630", "sdm120"):
        u = _take(m, "uart", mp, int, _chip[0][12][-1], choices=_chip[0][12])
        tag = "uart%d" % u   # EVSEs may share one RS485 bus (different addr)
        meter.update({
            "uart": u,
            "tx": _pin(m, "tx", mp, use="o", bus=tag + "tx"),
            "rx": _pin(m, "rx", mp, bus=tag + "rx"),
            "de_pin": _pin(m, "de_pin", mp, None, use="o", bus=tag + "de"),
            "baud": _take(m, "baud", mp, int, 9600, choices=(2400, 4800, 9600, 19200, 38400)),
            "addr": _take(m, "addr", mp, int, 1, lo=1, hi=247),
            "timeout_ms": _take(m, "timeout_ms", mp, int, 300, lo=20, hi=5000),
        })
    elif t == "s0":
        meter.update({
            "pin": _pin(m, "pin", mp),
            "pulses_per_kwh": _take(m, "pulses_per_kwh", mp, int, 1000, lo=1),
            "min_pulse_ms": _take(m, "min_pulse_ms", mp, int, 30, lo=1, hi=1000),
            "edge": _take(m, "edge", mp, str, "falling", choices=("falling", "rising")),
        })
        if meter["pin"] >= _chip[0][6]:
            _warn.append("%s.pin: GPIO%d has no internal pull-up: fit one for the S0 output"
                         % (mp, meter["pin"]))
        # a valid S0 pulse is >= min_pulse_ms on and as long off: the pulse rate at full
        # power must fit, or pulses would be rejected as bounce (under-billing)
        w = out["max_current"] * out["phases"] * out["nominal_voltage"]
        per_s = w * meter["pulses_per_kwh"] / 3600000.0
        # 25 % margin: 1 ms ticks and IRQ latency make a real gap read shorter than the dead time
        if per_s * 2 * meter["min_pulse_ms"] * 1.25 > 1000:
            raise ConfigError("%s.min_pulse_ms: %d ms on + off is too slow for %d pulses/kWh "
                              "at %d W (at most %d ms)" % (
                                  mp, meter["min_pulse_ms"], meter["pulses_per_kwh"], w,
                                  int(400 / per_s)))
    out["meter"] = _only(m, meter, mp)
    return _only(e, out, path)


def _reader(r):
    path = "reader"
    t = _take(r, "type", path, str, "none", choices=READERS)
    out = {"type": t}
    if t == "mfrc522":
        out.update({
            "spi": _take(r, "spi", path, int, 2, choices=(1, 2)),
            "sck": _pin(r, "sck", path, use="o"), "mosi": _pin(r, "mosi", path, use="o"),
            "miso": _pin(r, "miso", path), "cs": _pin(r, "cs", path, use="o"),
            "rst": _pin(r, "rst", path, None, use="o"),
            "baudrate": _take(r, "baudrate", path, int, 1000000, lo=100000, hi=10000000),
        })
    elif t == "pn532_uart":
        out.update({"uart": _take(r, "uart", path, int, 1, choices=_chip[0][12]),
                    "tx": _pin(r, "tx", path, use="o"), "rx": _pin(r, "rx", path)})
    elif t == "pn532_i2c":
        out.update({"i2c": _take(r, "i2c", path, int, 0, choices=_chip[0][13]),
                    "scl": _pin(r, "scl", path, use="o"), "sda": _pin(r, "sda", path, use="o")})
    out["scan_ms"] = _take(r, "scan_ms", path, int, 300, lo=50, hi=5000)
    return _only(r, out, path)


def _limit_input(x, ids):
    """The energy manager's input (optional; absent or null: none). Its reading is the
    "external" charging limit of EVSE `evse` (0: the whole station):
      digital: while the input is active the limit is `amps` (0 suspends charging, e.g. a
               utility's ripple-control block), inactive = no limit
      analog:  an ADC1 pin reading 0..3.3 V (a 0-10 V signal through a divider) is scaled
               to 0..full_scale_amps, in whole amps; below 6 A charging suspends"""
    if x is None:
        return None
    path = "limit_input"
    t = _take(x, "type", path, str, choices=("digital", "analog"))
    out = {"type": t, "evse": _take(x, "evse", path, int, 0, lo=0, hi=16)}
    if out["evse"] and out["evse"] not in ids:
        raise ConfigError("%s.evse: no EVSE %d (evses have %s; 0 = the whole station)"
                          % (path, out["evse"], ids))
    if t == "digital":
        out.update({"pin": _pin(x, "pin", path),
                    "active_low": _take(x, "active_low", path, bool, True),
                    "amps": _take(x, "amps", path, float, 0.0, lo=0.0, hi=80.0)})
    else:
        out.update({"adc_pin": _pin(x, "adc_pin", path, use="a"),
                    "full_scale_amps": _take(x, "full_scale_amps", path, float, 32.0,
                                             lo=6.0, hi=80.0)})
    return _only(x, out, path)


def _no_shared_pins():
    seen = {}
    for v, p, bus in _pins:
        o = seen.get(v)
        if o is None:
            seen[v] = (p, bus)
        elif bus is None or o[1] != bus:
            raise ConfigError("%s: GPIO%d is already used by %s" % (p, v, o[0]))


# The shipped example carries this host so that a copied, unedited config is refused instead
# of dialling somebody's LAN.
PLACEHOLDER_HOST = "SET-YOUR-CSMS-HOST"


def _check_url(url):
    from firmware.ws import split_url, WsError
    try:
        host = split_url(url)[1]
    except WsError as e:
        raise ConfigError("station.csms_url: %s" % e)
    if PLACEHOLDER_HOST.lower() in host.lower():
        raise ConfigError("station.csms_url: still the example's placeholder %r; set the URL "
                          "of your CSMS (ws://host:port/path or wss://...)" % url)


def validate(raw):
    """Return a normalized copy of `raw` with defaults, or raise ConfigError. The copy's
    "warnings" lists what deserves a console line at boot (parts left out, strapping pins)."""
    del _pins[:]
    del _warn[:]
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a JSON object")
    chip = _take(raw, "chip", "", str, "esp32", choices=[c[0] for c in CHIPS])
    for c in CHIPS:
        if c[0] == chip:
            _chip[0] = c
    st = _take(raw, "station", "", dict)
    cfg = {"chip": chip, "station": _only(st, {
        "identity": _take(st, "identity", "station", str),
        "csms_url": _take(st, "csms_url", "station", str),
        "password": _take(st, "password", "station", str, None),
        "cafile": _take(st, "cafile", "station", str, None),
        "data_dir": _take(st, "data_dir", "station", str, "/data"),
        "vendor": _take(st, "vendor", "station", str, "OpenSource"),
        "model": _take(st, "model", "station", str, "PyStation-ESP32"),
    }, "station")}
    _check_url(cfg["station"]["csms_url"])
    if not 1 <= len(cfg["station"]["identity"]) <= 48:
        raise ConfigError("station.identity: 1..48 characters")
    w = _take(raw, "wifi", "", dict, None)
    cfg["wifi"] = None if w is None else _only(w, {
        "ssid": _take(w, "ssid", "wifi", str),
        "password": _take(w, "password", "wifi", str, ""),
        "hostname": _take(w, "hostname", "wifi", str, None),
    }, "wifi")
    n = _take(raw, "ntp", "", dict, {})
    cfg["ntp"] = _only(n, {"host": _take(n, "host", "ntp", str, "pool.ntp.org"),
                           "every_s": _take(n, "every_s", "ntp", int, 3600, lo=60)}, "ntp")
    cfg["watchdog_ms"] = _take(raw, "watchdog_ms", "", int, 1500, lo=0, hi=2000)
    evs = _take(raw, "evses", "", list)
    if not evs:
        raise ConfigError("evses: at least one EVSE is required")
    cfg["evses"] = [_evse(e, "evses[%d]" % i, i) for i, e in enumerate(evs)]
    ids = [e["id"] for e in cfg["evses"]]
    if len(set(ids)) != len(ids):
        raise ConfigError("evses: duplicate id in %s" % ids)
    cfg["reader"] = _reader(_take(raw, "reader", "", dict, {"type": "none"}))
    cfg["limit_input"] = _limit_input(_take(raw, "limit_input", "", dict, None), ids)
    _only(raw, cfg, "")
    _no_shared_pins()
    cfg["warnings"] = _warn[:]
    del _pins[:]
    del _warn[:]
    _chip[0] = CHIPS[0]
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
    cfg = validate(raw)
    for w in cfg["warnings"]:
        print("CONFIG WARNING:", w)
    return cfg


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
