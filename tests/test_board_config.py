# Board configuration: the shipped example validates; bad or missing files give errors
# naming the key. Portable (pytest and micropython).
from fake_machine import portable
import json

from board import config

EXAMPLE = "board/config.example.json"


def example():
    with open(EXAMPLE) as f:
        return json.load(f)


def err(raw):
    return str(portable.raises(config.ConfigError, config.validate, raw))


def test_example_config_is_valid_and_complete():
    c = config.validate(example())
    e = c["evses"][0]
    assert e["pilot"]["adc_pin"] == 36 and e["relay"]["pin"] == 26
    assert e["meter"]["type"] == "sdm630" and c["reader"]["type"] == "mfrc522"
    assert c["watchdog_ms"] == 1500


def test_defaults_are_filled():
    raw = {"station": {"identity": "X", "csms_url": "ws://h/ocpp"},
           "evses": [{"pilot": {"pwm_pin": 25, "adc_pin": 36}, "relay": {"pin": 26}}]}
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
    assert "GPIO25 is already used by config.evses[0].pilot.pwm_pin" in err(raw)
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
