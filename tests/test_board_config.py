# Board configuration: the shipped example validates; bad or missing files give errors
# naming the key. Portable (pytest and micropython).
from fake_machine import portable
import json

from board import config

EXAMPLE = "board/config.example.json"


def shipped():
    with open(EXAMPLE) as f:
        return json.load(f)


def example():
    """The example with a CSMS URL set, as a user's edited copy would have it."""
    raw = shipped()
    raw["station"]["csms_url"] = "ws://127.0.0.1:9000/ocpp"
    return raw


def err(raw):
    return str(portable.raises(config.ConfigError, config.validate, raw))


def test_example_config_is_valid_and_complete():
    c = config.validate(example())
    e = c["evses"][0]
    assert e["pilot"]["adc_pin"] == 36 and e["relay"]["pin"] == 26
    assert e["meter"]["type"] == "sdm630" and c["reader"]["type"] == "mfrc522"
    assert c["watchdog_ms"] == 1500


def test_shipped_example_refuses_its_csms_placeholder_until_set():
    # copying the example unedited must never dial an address by accident
    raw = shipped()
    assert config.PLACEHOLDER_HOST in raw["station"]["csms_url"]
    e = err(raw)
    assert "station.csms_url" in e and "placeholder" in e, e
    raw["station"]["csms_url"] = "ws://127.0.0.1:9000/ocpp"
    assert config.validate(raw)["station"]["csms_url"] == "ws://127.0.0.1:9000/ocpp"


def test_csms_url_port_and_host_are_checked():
    for url, why in (("ws://h:0/ocpp", "bad port"), ("ws://h:99999/ocpp", "bad port"),
                     ("ws://h:80x/ocpp", "bad port"), ("ws:///ocpp", "no host"),
                     ("http://h/ocpp", "ws:// or wss://"), ("ws://[::1]:x/o", "bad port"),
                     ("ws://h /ocpp", "whitespace")):
        raw = example()
        raw["station"]["csms_url"] = url
        e = err(raw)
        assert why in e, (url, e)
    for url in ("wss://csms.example:443/ocpp", "ws://[::1]:9000/ocpp", "ws://h/ocpp"):
        raw = example()
        raw["station"]["csms_url"] = url
        assert config.validate(raw)["station"]["csms_url"] == url


def test_defaults_are_filled():
    raw = {"station": {"identity": "X", "csms_url": "ws://h/ocpp"},
           "evses": [{"pilot": {"pwm_pin": 25, "adc_pin": 36},
                      "relay": {"pin": 26, "feedback_pin": None},
                      "pp": None, "rcd": None, "lock": None, "temperature": None}]}
    c = config.validate(raw)
    e = c["evses"][0]
    assert e["id"] == 1 and e["max_current"] == 32 and e["meter"] == {"type": "none"}
    assert e["cable_amps"] == 32, "fixed cable: rated current"
    assert c["reader"]["type"] == "none" and c["wifi"] is None


def test_errors_name_the_key():
    raw = example()
    raw["evses"][0]["pilot"]["adc_pin"] = "36"
    assert err(raw).startswith("evses[0].pilot.adc_pin: expected int")
    raw = example()
    raw["evses"][0]["pilot"]["adc_pin"] = 4
    assert "evses[0].pilot.adc_pin: GPIO4 is not an ADC1 pin" in err(raw)
    raw = example()
    del raw["station"]["csms_url"]
    assert err(raw) == "station.csms_url: missing (required)"
    raw = example()
    raw["station"]["csms_url"] = "http://x"
    assert "station.csms_url" in err(raw)
    raw = example()
    raw["evses"][0]["meter"]["type"] = "sdm999"
    assert "evses[0].meter.type: 'sdm999' is not one of" in err(raw)
    raw = example()
    raw["evses"][0]["max_current"] = 100
    assert "evses[0].max_current: 100 out of range" in err(raw)
    raw = example()
    raw["evses"][0]["pilot"]["cal"] = [5, 1]
    assert "evses[0].pilot.cal" in err(raw)
    raw = example()
    raw["evses"][0]["relay"]["pin"] = 25
    assert err(raw) == "evses[0].relay.pin: GPIO25 is already used by evses[0].pilot.pwm_pin"
    raw = example()
    raw["evses"] = []
    assert "evses: at least one" in err(raw)
    raw = example()
    raw["evses"][0]["allow_ventilation"] = 1
    assert "allow_ventilation: expected bool" in err(raw)


def test_missing_and_broken_files():
    e = portable.raises(config.ConfigError, config.load, "/nonexistent/config.json")
    assert "not found" in str(e) and "config.example.json" in str(e)
    path = "/tmp/_board_cfg_test.json"
    with open(path, "w") as f:
        f.write("{not json")
    e = portable.raises(config.ConfigError, config.load, path)
    assert "not valid JSON" in str(e)


def test_relay_pins_for_boot_and_redaction():
    path = "/tmp/_board_cfg_test2.json"
    raw = example()
    raw["evses"][0]["relay"]["active_low"] = True
    with open(path, "w") as f:
        json.dump(raw, f)
    assert config.relay_pins(path) == [(26, True)]
    assert config.relay_pins("/nonexistent") == []
    red = config.redact(config.validate(raw))
    text = json.dumps(red)
    assert "change-me" not in text and red["wifi"]["password"] == "***"
    assert red["wifi"]["ssid"] == "my-network"


def test_unknown_keys_are_refused_with_their_path_and_a_hint():
    raw = example()
    raw["evses"][0]["max_curent"] = 16
    assert err(raw) == "evses[0].max_curent: unknown key (did you mean max_current?)"
    raw = example()
    raw["station"]["identiy"] = raw["station"].pop("identity")
    assert err(raw).startswith("station.identity: missing")
    raw = example()
    raw["evses"][0]["pilot"]["pwm_pn"] = 4
    assert err(raw) == "evses[0].pilot.pwm_pn: unknown key (did you mean pwm_pin?)"
    raw = example()
    raw["watchdog"] = 2000
    assert err(raw) == "watchdog: unknown key (did you mean watchdog_ms?)"
    raw = example()
    raw["evses"][0]["colour"] = "red"
    assert err(raw) == "evses[0].colour: unknown key"
    raw = example()
    raw["evses"][0]["meter"] = {"type": "s0", "pin": 32, "baud": 9600}
    assert err(raw) == "evses[0].meter.baud: unknown key"


def _paths(obj, path, out):
    """(container, key, path) of every key in the example, nested."""
    if isinstance(obj, dict):
        for k in sorted(obj):
            p = path + "." + k if path else k
            out.append((obj, k, p))
            _paths(obj[k], p, out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _paths(v, "%s[%d]" % (path, i), out)
    return out


def test_every_misspelt_key_is_refused_by_name():
    # a typo anywhere (the user's most likely mistake) never passes and never crashes
    n = len(_paths(example(), "", []))
    for i in range(n):
        raw = example()
        obj, k, p = _paths(raw, "", [])[i]
        obj[k + "x"] = obj.pop(k)
        msg = err(raw)
        assert msg.startswith(p + "x: unknown key") or msg.startswith(p + ": missing"), (p, msg)
        assert "\n" not in msg


def test_wrong_types_anywhere_are_one_line_errors():
    for i in range(len(_paths(example(), "", []))):
        for bad in ("x", [1], {"a": 1}, True, -1):
            raw = example()
            obj, k, p = _paths(raw, "", [])[i]
            obj[k] = bad
            try:
                config.validate(raw)
            except config.ConfigError as e:
                assert "\n" not in str(e) and str(e)
            # an accepted value is fine (e.g. a string where a string goes)


def test_safety_parts_can_only_be_left_out_explicitly():
    for key in ("rcd", "temperature", "pp", "lock"):
        raw = example()
        del raw["evses"][0][key]
        assert err(raw) == 'evses[0].%s: missing; to go without it write "%s": null' % (
            key, key)
    raw = example()
    raw["evses"][0]["RCD"] = raw["evses"][0].pop("rcd")
    assert err(raw).startswith("evses[0].rcd: missing")
    raw = example()
    del raw["evses"][0]["relay"]["feedback_pin"]
    assert err(raw).startswith("evses[0].relay.feedback_pin: missing")
    raw = example()
    e = raw["evses"][0]
    e["rcd"] = None
    e["temperature"] = None
    e["relay"]["feedback_pin"] = None
    c = config.validate(raw)
    assert c["evses"][0]["rcd"] is None and c["evses"][0]["temperature"] is None
    w = c["warnings"]
    assert any(x.startswith("evses[0].rcd is null: NO residual-current") for x in w), w
    assert any(x.startswith("evses[0].temperature is null: NO over-temp") for x in w), w
    assert any(x.startswith("evses[0].relay.feedback_pin is null") for x in w), w


def test_warnings_are_printed_at_boot():
    raw = example()
    raw["evses"][0]["rcd"] = None
    path = "/tmp/_board_cfg_test3.json"
    with open(path, "w") as f:
        json.dump(raw, f)
    lines = []
    config.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        config.load(path)
    finally:
        del config.print
    assert any(x.startswith("CONFIG WARNING: evses[0].rcd is null") for x in lines), lines
    lines = []
    config.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        c = config.validate(example())
    finally:
        del config.print
    assert not lines, "validate() itself prints nothing"
    assert not [x for x in c["warnings"] if "rcd" in x or "strapping" in x], c["warnings"]


def pin_err(section, key, gpio):
    raw = example()
    obj = raw
    for k in section:
        obj = obj[k]
    obj[key] = gpio
    return err(raw)


def test_pins_are_checked_against_the_esp32():
    r = ("evses", 0, "relay")
    assert pin_err(r, "pin", 34) == ("evses[0].relay.pin: GPIO34 is input-only "
                                     "(GPIO34-39 can not drive an output)")
    assert "input-only" in pin_err(("evses", 0, "pilot"), "pwm_pin", 39)
    assert "input-only" in pin_err(("evses", 0, "rcd"), "test_pin", 35)
    assert "input-only" in pin_err(("reader",), "mosi", 36)
    assert "input-only" in pin_err(("evses", 0, "meter"), "tx", 38)
    assert pin_err(r, "pin", 6) == ("evses[0].relay.pin: GPIO6 is wired to the SPI flash "
                                    "(GPIO6-11 are not usable)")
    assert "SPI flash" in pin_err(r, "feedback_pin", 11)
    assert pin_err(r, "pin", 20) == "evses[0].relay.pin: the ESP32 has no GPIO20"
    assert "no GPIO24" in pin_err(r, "pin", 24)
    assert "no GPIO28" in pin_err(r, "feedback_pin", 28)
    assert "out of range" in pin_err(r, "pin", 40)
    assert "not an ADC1 pin" in pin_err(("evses", 0, "temperature"), "adc_pin", 25)
    # input-only pins are fine as inputs
    raw = example()
    raw["evses"][0]["relay"]["feedback_pin"] = 37
    config.validate(raw)


def test_strapping_pins_warn_and_outputs_may_not_share_a_pin():
    raw = example()
    raw["evses"][0]["relay"]["pin"] = 12
    c = config.validate(raw)
    assert c["evses"][0]["relay"]["pin"] == 12
    assert any(w.startswith("evses[0].relay.pin: GPIO12 is a strapping pin")
               for w in c["warnings"]), c["warnings"]
    raw = example()
    raw["evses"][0]["rcd"]["test_pin"] = 26
    assert err(raw) == "evses[0].rcd.test_pin: GPIO26 is already used by evses[0].relay.pin"
    raw = example()
    raw["reader"]["rst"] = 4
    assert "GPIO4 is already used by evses[0].meter.de_pin" in err(raw)


def _second_evse(raw, meter):
    e = json.loads(json.dumps(raw["evses"][0]))
    e["id"] = 2
    e["pilot"].update(pwm_pin=32, adc_pin=37)
    e["relay"].update(pin=13, feedback_pin=None)
    e["pp"] = e["rcd"] = e["temperature"] = None
    e["meter"] = meter
    raw["reader"] = {"type": "none"}
    raw["evses"].append(e)
    return raw


def test_evses_may_share_one_rs485_bus_but_nothing_else():
    raw = example()
    m = dict(raw["evses"][0]["meter"], addr=2)
    c = config.validate(_second_evse(raw, m))
    assert c["evses"][1]["meter"]["tx"] == c["evses"][0]["meter"]["tx"] == 17
    raw = example()
    m = dict(raw["evses"][0]["meter"], uart=1, addr=2)
    assert "GPIO17 is already used by evses[0].meter.tx" in err(_second_evse(raw, m))


def test_s0_meter_edge_and_pulse_rate_fit_the_evse():
    raw = example()
    raw["evses"][0]["meter"] = {"type": "s0", "pin": 32}
    m = config.validate(raw)["evses"][0]["meter"]
    assert m == {"type": "s0", "pin": 32, "pulses_per_kwh": 1000, "min_pulse_ms": 30,
                 "edge": "falling"}
    raw["evses"][0]["meter"]["edge"] = "both"
    assert "evses[0].meter.edge: 'both' is not one of falling, rising" in err(raw)
    # 16 A x 3 x 230 V at 10000 pulses/kWh is 30.7 pulses/s: 30 ms on + 30 ms off is too slow
    raw["evses"][0]["meter"] = {"type": "s0", "pin": 32, "pulses_per_kwh": 10000}
    assert err(raw).startswith("evses[0].meter.min_pulse_ms: 30 ms on + off is too slow")
    raw["evses"][0]["meter"]["min_pulse_ms"] = 10
    config.validate(raw)


def _chip_config(chip, pins):
    """The example re-wired for another chip: pins = (pwm, cp adc, pp adc, relay, feedback,
    rcd, rcd test, ntc adc)."""
    raw = example()
    raw["chip"] = chip
    e = raw["evses"][0]
    pwm, adc, pp, relay, fb, rcd, test, ntc = pins
    e["pilot"].update(pwm_pin=pwm, adc_pin=adc)
    e["pp"]["adc_pin"] = pp
    e["relay"].update(pin=relay, feedback_pin=fb)
    e["rcd"].update(pin=rcd, test_pin=test)
    e["temperature"]["adc_pin"] = ntc
    e["meter"] = {"type": "none"}
    raw["reader"] = {"type": "none"}
    return raw


S3 = (4, 1, 2, 5, 6, 7, 15, 8)
C3 = (6, 0, 1, 7, 10, 4, 5, 3)


def test_pins_are_checked_against_the_esp32_s3_and_c3():
    c = config.validate(_chip_config("esp32s3", S3))
    assert c["chip"] == "esp32s3" and c["evses"][0]["pilot"]["adc_pin"] == 1
    assert config.validate(_chip_config("esp32c3", C3))["chip"] == "esp32c3"
    assert config.validate(example())["chip"] == "esp32", "the default"
    raw = _chip_config("esp32s3", S3)
    raw["evses"][0]["pilot"]["adc_pin"] = 36
    assert err(raw) == "evses[0].pilot.adc_pin: GPIO36 is not an ADC1 pin (use GPIO1-10)"
    raw = _chip_config("esp32s3", S3)
    raw["evses"][0]["relay"]["pin"] = 27
    assert "GPIO27 is wired to the SPI flash (GPIO26-32" in err(raw)
    raw["evses"][0]["relay"]["pin"] = 22
    assert err(raw) == "evses[0].relay.pin: the ESP32-S3 has no GPIO22"
    raw["evses"][0]["relay"]["pin"] = 38          # no input-only pins on the S3
    config.validate(raw)
    raw["evses"][0]["relay"]["pin"] = 35
    assert any("GPIO35 is used by USB-JTAG (19, 20) or octal" in w
               for w in config.validate(raw)["warnings"])
    raw["evses"][0]["relay"]["pin"] = 3
    assert any("GPIO3 is a strapping pin" in w for w in config.validate(raw)["warnings"])
    raw = _chip_config("esp32c3", C3)
    raw["evses"][0]["relay"]["pin"] = 13
    assert "GPIO13 is wired to the SPI flash (GPIO12-17" in err(raw)
    raw["evses"][0]["relay"]["pin"] = 22
    assert "22 out of range 0..21" in err(raw)
    raw["evses"][0]["relay"]["pin"] = 7
    raw["evses"][0]["temperature"]["adc_pin"] = 5
    assert "GPIO5 is not an ADC1 pin (use GPIO0-4)" in err(raw)
    raw = _chip_config("esp32c3", C3)
    raw["evses"][0]["meter"] = {"type": "sdm120", "uart": 2, "tx": 20, "rx": 21}
    assert "evses[0].meter.uart: 2 is not one of 1" in err(raw), "the C3 has no UART2"
    raw["evses"][0]["meter"]["uart"] = 1
    raw["evses"][0]["relay"]["pin"] = 9
    assert any("GPIO9 is a strapping pin" in w for w in config.validate(raw)["warnings"])
    raw = example()
    raw["chip"] = "esp32-s3"
    assert err(raw) == "chip: 'esp32-s3' is not one of esp32, esp32s3, esp32c3"
    raw["chip"] = "esp32"                          # a failed S3 check leaves no state behind
    config.validate(raw)


def test_non_finite_numbers_are_refused():
    # NaN passes every range check; MicroPython's json would refuse it on the board
    for bad in (float("nan"), float("inf")):
        raw = example()
        raw["evses"][0]["nominal_voltage"] = bad
        assert "nominal_voltage" in err(raw) and "finite" in err(raw)


def test_s0_rate_at_exact_limit_is_refused_without_margin():
    # 7360 W at 1000/kWh: 489 ms period; 2 x 240 ms fits exactly but leaves no margin for jitter
    raw = example()
    e = raw["evses"][0]
    e["max_current"], e["phases"], e["nominal_voltage"] = 32, 1, 230
    e["meter"] = {"type": "s0", "pin": 32, "pulses_per_kwh": 1000, "min_pulse_ms": 240}
    assert "min_pulse_ms: 240 ms on + off is too slow" in err(raw)
