# Property: no sequence of pilot, fault and permission events closes the relay when it must
# not, and a closed relay never outlives its reason. CPython only (hypothesis).
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from firmware import safety  # noqa: E402
from test_safety import Rig  # noqa: E402

BLOCKING = ("rcd", "diode", "overtemp", "lock", "pilot", "welding", "contactor")

actions = st.one_of(
    st.tuples(st.just("pilot"), st.sampled_from("ABCDEF")),
    st.tuples(st.just("fault"), st.sampled_from(BLOCKING + ("meter",))),
    st.tuples(st.just("clear"), st.sampled_from(BLOCKING + ("meter",))),
    st.tuples(st.just("permit"), st.tuples(st.booleans(), st.booleans(),
                                           st.sampled_from((0, 3, 6, 16, 32, 80)))),
    st.tuples(st.just("feedback"), st.sampled_from((None, True, False))),
    st.tuples(st.just("wait"), st.sampled_from((10, 20, 50, 100, 400, 3000, 7000, 70000))),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(actions, min_size=1, max_size=40), st.booleans(), st.booleans())
def test_relay_never_closed_when_it_must_not(seq, vent, start_charging):
    r = Rig(feedback=False, vent=vent)
    s = r.s
    perm = (False, True, 0)
    if start_charging:  # a foothold so that short sequences reach a closed relay
        perm = (True, True, 16)
        r.charging(16)
    withdrawn_at = None
    prev_closed = r.relay._closed
    for kind, arg in seq:
        if kind == "pilot":
            r.pilot.st = arg
        elif kind == "fault":
            r.hw.faults().add(arg)
        elif kind == "clear":
            r.hw.faults().discard(arg)
        elif kind == "permit":
            perm = arg
            s.permit(*arg)
        elif kind == "feedback":
            r.relay.fb = arg
        steps = arg // 10 if kind == "wait" else 1
        for _ in range(steps):
            r.now += 10
            s.step(r.now)
            closed = r.relay._closed
            assert closed == s.relay_closed()
            ev_ready = r.pilot.st == "C" or (r.pilot.st == "D" and vent)
            permitted = perm[0] and perm[1] and perm[2] >= 6
            board_blocking = [f for f in r.hw.faults() if f != "meter"]
            if closed:
                assert ev_ready, "closed outside C/D(vent)"
                assert not board_blocking, "closed with an active fault"
                assert not s.blocked(), "closed while a fault is latched"
                if not prev_closed:
                    assert permitted, "closed without permission"
                if not permitted:
                    if withdrawn_at is None:
                        withdrawn_at = r.now
                    assert r.now - withdrawn_at < safety.STOP_REACTION_MS
                else:
                    withdrawn_at = None
            else:
                withdrawn_at = None
            if not permitted or s.blocked():
                assert s.offered() == 0, "PWM offered without permission"
            else:
                assert 6 <= s.offered() <= r.hw.max_current
            prev_closed = closed
