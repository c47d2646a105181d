# The console as a user meets it (issue #16 item 3), on both runtimes: refusals say why, as
# JSON fields; "ok" is the first key of every reply; an empty line gets its one reply;
# `help CMD` gives the syntax; nonsense values are refused, not ignored.
import json


def raw(st, line):
    st.send_line(line)
    return st.read_line()


def test_console_replies_say_why_and_keep_ok_first(csms, station):
    st = station()
    csms.wait_for(lambda: csms.csms.calls("BootNotification", st.identity), 15, "boot")
    # a value of the wrong type: the device model's reason code, not a Python dict repr
    text = raw(st, "set OCPPCommCtrlr.HeartbeatInterval abc")
    assert text.startswith('{"ok": false'), text
    r = json.loads(text)
    assert r["status"] == "Rejected" and r["reasonCode"], r
    assert r["reasonCode"] in r["error"] and "{" not in r["error"], r
    # every reply, success or not, starts with "ok" (micropython dicts have no order)
    for line in ("status", "get OCPPCommCtrlr.HeartbeatInterval", "mem", "help", "nosuch"):
        text = raw(st, line)
        assert text.startswith('{"ok": '), (line, text)
    # an empty line is a line: exactly one reply, then the next command's reply
    assert json.loads(raw(st, "")) == {"ok": False, "error": "empty command; try 'help'"}
    assert json.loads(raw(st, "help"))["ok"] is True
    r = st.cmd("help set")
    assert r["ok"] and r["usage"] == "set Component.Variable VALUE", r
    r = st.cmd("help power")
    assert r["ok"] and r["usage"] == "power N WATTS", r
    assert st.cmd("help nosuch")["ok"] is False
    for bad in ("power 1 -5000", "power 1 nan", "power 1 1e9"):
        r = st.cmd(bad)
        assert r["ok"] is False and "0..100000" in r["error"], (bad, r)
    assert st.cmd("power 1 7200")["ok"] is True
    assert st.status()["evses"][0]["power_w"] == 0   # relay open: nothing drawn yet
