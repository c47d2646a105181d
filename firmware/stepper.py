# The safety stepper: the relay-opening path on its own thread, apart from the event loop.
#
# Every PERIOD_MS it runs, for each Safety: the board's fast sampling of that EVSE
# (hw.fast(now): pilot burst, fault inputs) if the hardware has one, then Safety.step(now);
# then beat(now) (the board feeds its watchdog there). Non-empty event lists go into a
# bounded ring guarded by a lock and wake the asyncio side through a ThreadSafeFlag; the
# asyncio side only consumes them (evse.Block). On the ESP32 the thread is a FreeRTOS task
# and a DNS lookup, socket I/O or a long print on the event loop releases the GIL while it
# blocks, so they no longer delay the relay; a TLS handshake's crypto and flash erases
# still hold it (README, Safety).
#
# An exception in the sampling or step of one EVSE opens its relay and latches the blocking
# fault "internal" (Safety.fail); one outside them opens every relay. The stepper goes on.
# Without _thread the same step() runs from an asyncio task. The thread's per-period work
# allocates nothing unless an event list is produced.
import time

from firmware import compat
from firmware.compat import ticks_ms, ticks_diff, ticks_add

try:
    import _thread
except ImportError:
    _thread = None

PERIOD_MS = 10
CAPACITY = 32          # event lists the event loop may fall behind by (then a resync)
_STACK = 8192


def _sleep(ms):
    if compat.MICROPYTHON:
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


class Stepper:
    def __init__(self, safeties, beat=None, period_ms=PERIOD_MS, capacity=CAPACITY):
        self.safeties = list(safeties)
        # bound once: binding a method per step would allocate
        self._fast = [getattr(s.hw, "fast", None) for s in self.safeties]
        self.beat = beat
        self.period_ms = period_ms
        self._who = [None] * capacity
        self._what = [None] * capacity
        self._head = 0
        self._n = 0
        self.dropped = 0         # event lists lost to a full ring (the consumer resyncs)
        self._lock = _thread.allocate_lock() if _thread is not None else None
        self.flag = compat.ThreadSafeFlag()
        self.errors = 0
        self.last_error = None   # (evse id or None, exception), for the consumer to report
        self.late = [0, 0]       # [worst lateness of the stepper's wake-ups in ms, wake-ups]
        self.last_ms = ticks_ms()
        self.loop_ms = self.last_ms   # last wake-up of the event loop (watch_loop)
        self.threaded = False
        self._due = 0
        self._idle = None
        self._run = False
        self._gen = 0            # run token: a thread or task of an older start() stops
        self.alive = False       # a thread or task is in the stepping loop
        self.idling = False      # the thread left it and calls the idle function

    # ---------------------------------------------------------------- one period
    def step(self, now):
        fast = self._fast
        i = 0
        for s in self.safeties:
            try:
                f = fast[i]
                if f is not None:
                    f(now)
                evs = s.step(now)
            except Exception as e:
                evs = self._failed(s, now, e)
            if evs:
                self._push(s, evs)
            i += 1
        if self.beat is not None:
            self.beat(now)
        self.last_ms = now

    def _failed(self, s, now, e):
        self.errors += 1
        self.last_error = (getattr(s.hw, "id", None), e)
        return s.fail(now)

    def fail_all(self, now, e):
        """Something outside one EVSE's step failed: every relay opens."""
        self.errors += 1
        self.last_error = (None, e)
        for s in self.safeties:
            evs = s.fail(now)
            if evs:
                self._push(s, evs)

    def _push(self, s, evs):
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            cap = len(self._who)
            if self._n < cap:
                j = (self._head + self._n) % cap
                self._who[j] = s
                self._what[j] = evs
                self._n += 1
            else:
                self.dropped += 1
        finally:
            if lock is not None:
                lock.release()
        self.flag.set()

    def pop(self):
        """(safety, events) of the oldest pending list, or None."""
        lock = self._lock
        if lock is not None:
            lock.acquire()
        try:
            if not self._n:
                return None
            j = self._head
            item = (self._who[j], self._what[j])
            self._who[j] = self._what[j] = None
            self._head = (j + 1) % len(self._who)
            self._n -= 1
            return item
        finally:
            if lock is not None:
                lock.release()

    # ---------------------------------------------------------------- the event loop's side
    async def watch_loop(self, period_ms=50):
        """Event-loop heartbeat: loop_ms is its last wake-up (the board's watchdog policy
        reads it) and safety.stall its worst lateness; a hold over 1 s is logged."""
        from firmware import safety, log
        stall = safety.stall
        due = None
        while True:
            now = ticks_ms()
            self.loop_ms = now
            if due is not None:
                late = ticks_diff(now, due)
                if late > stall[0]:
                    stall[0] = late
                stall[1] += 1
                if late > 1000:
                    log.warn("stepper", "event loop held for %d ms; safety kept stepping" % late)
            compat.sample_mem()  # the console's `mem` peak where mem_peak() is missing
            due = ticks_add(now, period_ms)
            await compat.sleep_ms(period_ms)

    # ---------------------------------------------------------------- running it
    def _tick(self):
        # returns the ms to sleep; the due time stays in self._due (no tuple per period)
        due = self._due
        now = ticks_ms()
        late = ticks_diff(now, due)
        lt = self.late
        if late > lt[0]:
            lt[0] = late
        lt[1] += 1
        try:
            self.step(now)
        except Exception as e:
            self.fail_all(now, e)
        due = ticks_add(due, self.period_ms)
        wait = ticks_diff(due, ticks_ms())
        if wait < 0:              # fell behind (a stall): no burst of catch-up steps
            due = ticks_ms()
            wait = 0
        self._due = due
        return wait

    def _loop(self, gen):
        self.alive = True
        self._due = ticks_ms()
        try:
            while self._run and self._gen == gen:
                _sleep(self._tick())
        finally:
            self.open_all()
            # set before alive drops: whoever waits for that (stop(), then the board's
            # keep_watchdog_alive) knows whether this thread takes the idle function on
            self.idling = self._idle is not None and self._gen == gen
            self.alive = False
        # stopped with an idle function (Ctrl-C on a board): relays stay open and this same
        # thread keeps calling it, because the ESP32 task watchdog is fed per FreeRTOS task
        try:
            while self._idle is not None and not self._run and self._gen == gen:
                try:
                    self._idle()
                except Exception:
                    pass
                _sleep(100)
        finally:
            self.idling = False   # start() waits for this before a new thread steps

    async def _task(self, gen):
        self.alive = True
        self._due = ticks_ms()
        try:
            while self._run and self._gen == gen:
                await compat.sleep_ms(self._tick())
        finally:
            if self._gen == gen:     # not a newer start()'s task
                self.alive = False

    def start(self, use_thread=True, wait_ms=None):
        """Run on a thread where the runtime has one, else as an asyncio task. A thread of
        an earlier run still in its loop (stop() returns after wait_ms at the latest) is
        told to end and waited for: two threads must never step the same Safety objects.
        RuntimeError if it does not end within wait_ms (default 1 s or 5 periods)."""
        if wait_ms is None:
            wait_ms = max(1000, 5 * self.period_ms)
        self._gen += 1
        gen = self._gen
        if self.threaded:
            t0 = ticks_ms()
            while (self.alive or self.idling) and ticks_diff(ticks_ms(), t0) < wait_ms:
                _sleep(2)
            if self.alive or self.idling:
                raise RuntimeError("safety stepper: the previous thread has not ended")
        self._run = True
        if use_thread and _thread is not None:
            try:
                _thread.stack_size(_STACK)
            except (AttributeError, ValueError, OSError):
                pass
            self.threaded = True
            _thread.start_new_thread(self._loop, (gen,))
            while not self.alive and self._run:   # the first step has the relays in hand
                _sleep(1)
            return None
        self.threaded = False
        self.alive = False   # an older task ends at its next wake-up, on the token
        return compat.create_task(self._task(gen))

    def stop(self, idle=None, wait_ms=200):
        """Stop stepping and open every relay (Ctrl-C, end of the event loop). With `idle`,
        the stepper's thread stays and calls idle() every 100 ms (the board feeds its
        watchdog there); stop() without it ends that too."""
        self._idle = idle
        self._run = False
        t0 = ticks_ms()
        while self.alive and self.threaded and ticks_diff(ticks_ms(), t0) < wait_ms:
            _sleep(2)
        self.open_all()

    def open_all(self):
        for s in self.safeties:
            try:
                s.hw.relay.set(False)
                s.hw.pilot.offer(0)
            except Exception:
                pass
