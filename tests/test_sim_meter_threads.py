# The simulator's meter while the safety stepper switches the relay on its own thread and
# the event loop reads the register: every closed interval is billed once, with the relay
# state it had. A simulated clock that yields to the other thread on every read makes the
# interleavings that over-billed (two threads integrating the same interval) frequent.
# Portable: pytest (CPython) and micropython (driven from tests/test_sim_meter.py).
import time

from firmware import compat
from host.sim_board import SimMeter, SimRelay

try:
    import _thread
except ImportError:
    _thread = None


def test_meter_bills_power_times_closed_time_under_concurrent_switching_and_reads():
    if _thread is None:
        return
    clock = [1000]
    real = compat.ticks_ms

    def ticks():
        v = clock[0]
        time.sleep(0)           # let the other thread in between the read and its use
        return v
    compat.ticks_ms = ticks
    try:
        relay = SimRelay()
        m = SimMeter(relay)
        m.ev_power_w = 3600000.0    # 1 Wh per simulated ms closed
        closed = [0]
        done = [False]

        def stepper():
            try:
                for i in range(400):
                    clock[0] += 1 + i % 3          # open
                    relay.set(True)
                    time.sleep(0)
                    b = 2 + i % 5                  # closed
                    clock[0] += b
                    closed[0] += b
                    relay.set(False)
                    time.sleep(0)
            finally:
                done[0] = True
        _thread.start_new_thread(stepper, ())
        reads = 0
        last = 0.0
        while not done[0]:
            wh = m.energy_wh()
            assert wh >= last, (last, wh)
            last = wh
            reads += 1
        wh = m.energy_wh()
    finally:
        compat.ticks_ms = real
    assert reads > 10, reads
    assert abs(wh - closed[0]) < 1e-6, "billed %r Wh for %d ms closed (%d reads)" % (
        wh, closed[0], reads)
