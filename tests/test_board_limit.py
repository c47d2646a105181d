# Charging limits on the ESP32 board (fake `machine`): the limit reaches the pilot's PWM
# duty per IEC 61851-1 within one safety step, never above the cable (PP) or the rating, and
# the energy manager's limit input (config key limit_input) is validated and read.
# Portable (pytest and micropython).
from fake_machine import portable  # noqa: F401
from fake_machine import example_config
import os
import machine
from fake_machine.waves import PilotWave

from board import config
from board import device
from board import pilot as P
from firmware import safety
from firmware.compat import ticks_ms

DATA = "/tmp/boardlim-" + "".join("%02x" % b for b in os.urandom(6))


def raw_cfg(limit_input=None, cable_amps=32, max_current=32):
    raw = example_config(DATA)
    e = raw["evses"][0]
    e["pp"] = None
    e["cable_amps"] = cable_amps
    e["max_current"] = max_current
    raw["reader"] = {"type": "none"}
    if limit_input is not None:
        raw["limit_input"] = limit_input
    return raw


def board(**kw):
    machine.reset_all()
    return device.EspBoard(config.validate(raw_cfg(**kw)))


def charging(b, amps):
    """Board EVSE 1 with an EV in C, permitted `amps`: (safety, pwm, step)."""
    machine.created[("adc", 36)].source = PilotWave(6.0, -12.0, 26.7, noise_v=0.0)
    e = b.evses[0]
    s = safety.Safety(e)
    s.permit(True, True, amps)
    now = [ticks_ms()]

    def step(n=1):
        for _ in range(n):
            now[0] += 10
            e.fast(now[0])
            s.step(now[0])
    step(10)
    return s, machine.created[("pwm", 25)], step


def duty(pwm):
    return pwm.duty_u16() * 100.0 / 65535


def test_K01_limit_16A_sets_duty_26_7_percent_within_one_step():
    b = board()
    s, pwm, step = charging(b, None)
    assert s.relay_closed() and abs(duty(pwm) - P.duty_for(32)) < 0.01
    s.permit(True, True, 16)        # the evse block's limit input
    step(1)
    assert abs(duty(pwm) - 26.667) < 0.01, duty(pwm)   # 16 / 0.6
    s.permit(True, True, 63)        # above the rating: the 32 A rating stays
    step(1)
    assert abs(duty(pwm) - P.duty_for(32)) < 0.01
    s.permit(True, True, 5)         # below 6 A: no PWM (steady +12 V), relay waits for the EV
    step(1)
    assert pwm.duty_u16() == 65535 and s.offered() == 0 and s.relay_closed()


def test_cable_PP_13A_caps_a_32A_limit_at_the_pwm():
    b = board(cable_amps=13)
    s, pwm, step = charging(b, 32)
    assert s.offered() == 13 and abs(duty(pwm) - P.duty_for(13)) < 0.01


def test_digital_limit_input_reads_amps_while_active():
    b = board(limit_input={"type": "digital", "pin": 13, "active_low": True, "amps": 6,
                           "evse": 0})
    got = []
    b.attach_limits(lambda i, a: got.append((i, a)))
    assert got == [(0, None)]                   # pulled up, active low: inactive
    pin = machine.created[("pin", 13)]
    assert b.poll_limit() is False
    pin.value(0)
    assert b.poll_limit() is True and got[-1] == (0, 6.0)
    pin.value(1)
    b.poll_limit()
    assert got[-1] == (0, None)


def test_analog_limit_input_scales_to_whole_amps_with_hysteresis():
    b = board(limit_input={"type": "analog", "adc_pin": 32, "full_scale_amps": 32,
                           "evse": 1})
    adc = machine.created[("adc", 32)]
    got = []
    b.attach_limits(lambda i, a: got.append((i, a)))

    def at(amps):
        adc.source = lambda: int(amps / 32.0 * 65535)
        b.poll_limit()
        return got[-1]
    assert at(16.5) == (1, 16.0)
    assert at(17.1) == (1, 16.0)     # inside the hysteresis: no change
    assert at(17.3) == (1, 17.0)
    assert at(16.9) == (1, 16.0)     # below the step: down at once, never above the signal
    assert at(17.1) == (1, 16.0)
    assert at(5.8) == (1, 5.0)       # a 5.8 A signal suspends, it is not rounded up to 6 A
    assert at(3.1) == (1, 3.0)


def _refused(li, words):
    try:
        config.validate(raw_cfg(limit_input=li))
    except config.ConfigError as e:
        msg = str(e)
        assert msg.startswith("limit_input"), msg
        for w in words:
            assert w in msg, msg
        return
    raise AssertionError("accepted %r" % (li,))


def test_limit_input_config_is_strict():
    assert config.validate(raw_cfg())["limit_input"] is None
    c = config.validate(raw_cfg(limit_input={"type": "digital", "pin": 13}))
    assert c["limit_input"] == {"type": "digital", "evse": 0, "pin": 13, "active_low": True,
                                "amps": 0.0}
    _refused({"type": "analog", "adc_pin": 13}, ["adc_pin", "ADC1"])
    _refused({"type": "digital", "pin": 13, "evse": 2}, ["evse", "no EVSE 2"])
    _refused({"type": "digital", "pin": 13, "amp": 6}, ["unknown key", "amps"])
    _refused({"type": "pwm", "pin": 13}, ["type"])
    _refused({"type": "digital", "pin": 26}, ["GPIO26 is already used"])
    _refused({"type": "analog", "adc_pin": 32, "full_scale_amps": 4}, ["out of range"])


def station_board(**kw):
    """A board whose EVSE 1 has an EV in C, its Safety stepped by the test: (board, evse hw,
    LEDC pwm)."""
    from firmware.stepper import Stepper
    b = board(**kw)
    machine.created[("adc", 36)].source = PilotWave(6.0, -12.0, 26.7, noise_v=0.0)
    e = b.evses[0]
    e.safety = safety.Safety(e)
    b.safeties = [e.safety]
    b.stepper = Stepper([e.safety], beat=b.beat)     # stepped here, never started
    return b, e, machine.created[("pwm", 25)]


def stepper_of(b):
    """step(n): n safety steps of 10 ms on the board, yielding to the station between."""
    from firmware.compat import asyncio
    now = [ticks_ms()]

    async def step(n=1):
        for _ in range(n):
            now[0] += 10
            b.stepper.step(now[0])
            await asyncio.sleep(0)
    return step


def test_K12_FR_01_board_limit_input_reaches_the_pwm_through_the_station():
    # the whole path on the board: input -> evse block ("external") -> Safety -> LEDC duty
    from firmware.station import Station
    from firmware.compat import asyncio
    b, e, pwm = station_board(limit_input={"type": "digital", "pin": 13, "active_low": True,
                                           "amps": 10, "evse": 0})
    pin = machine.created[("pin", 13)]
    step = stepper_of(b)

    async def scenario():
        st = Station(b, "ws://127.0.0.1:9", "BLIM1")
        st.emit("start")
        await step(5)
        st.blocks["evse"].permit(1, True)
        await step(5)
        assert e.safety.relay_closed() and abs(duty(pwm) - P.duty_for(32)) < 0.01
        pin.value(0)                                  # the energy manager asks for 10 A
        b.poll_limit()
        await step(1)
        assert abs(duty(pwm) - P.duty_for(10)) < 0.01, duty(pwm)
        assert st.blocks["evse"].status(1)["limit"] == 10
        pin.value(1)
        b.poll_limit()
        await step(1)
        assert abs(duty(pwm) - P.duty_for(32)) < 0.01
        await st.stop()
    asyncio.run(scenario())


def test_K01_daily_profile_drives_the_board_pwm_on_the_simulated_clock():
    # SetChargingProfile (the charging_profiles handler) -> composite limit at a given
    # time (Block.apply(now): the simulated clock) -> evse block -> Safety -> LEDC duty:
    # a period start, a period below 6 A (no PWM), UTC midnight where the day starts over,
    # and the profile cleared
    from firmware.station import Station
    from firmware.compat import asyncio, parse_iso8601
    b, e, pwm = station_board()
    step = stepper_of(b)

    async def scenario():
        st = Station(b, "ws://127.0.0.1:9", "BSC1")
        sc = st.blocks["smart_charging"]
        req = st.borrow("charging_profiles")     # the on-demand request handlers
        await step(5)
        st.blocks["evse"].permit(1, True)
        await step(5)
        assert e.safety.relay_closed() and abs(duty(pwm) - P.duty_for(32)) < 0.01
        r = req.set_profile({"evseId": 1, "chargingProfile": {
            "id": 5, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
            "chargingSchedule": [{"id": 5, "chargingRateUnit": "A",
                                  "startSchedule": "2027-03-01T00:00:00Z",
                                  "chargingSchedulePeriod": [
                                      {"startPeriod": 0, "limit": 16.0},
                                      {"startPeriod": 82800, "limit": 10.0},
                                      {"startPeriod": 86390, "limit": 5.0}]}]}})
        assert r["status"] == "Accepted", r
        # (time, offered A, ms the block then sleeps: until the next boundary, at most 300 s)
        for when, amps, wait in (("2027-03-09T12:00:00Z", 16, 300000),
                                 ("2027-03-09T22:59:58Z", 16, 2000),
                                 ("2027-03-09T23:00:00Z", 10, 300000),
                                 ("2027-03-09T23:59:50Z", 0, 10000),
                                 ("2027-03-10T00:00:00Z", 16, 300000)):
            assert sc.apply(parse_iso8601(when)) == wait, when
            await step(1)
            assert abs(duty(pwm) - P.duty_for(amps)) < 0.01, (when, duty(pwm))
        assert req.clear_profile({"chargingProfileId": 5})["status"] == "Accepted"
        await step(1)
        assert abs(duty(pwm) - P.duty_for(32)) < 0.01
        await st.stop()
    asyncio.run(scenario())
