"""A fake `machine` module for driving board/ drivers on CPython and the unix micropython.

Only what the drivers use is modelled. Peripherals are wired to test doubles:
  ADC(pin).source = callable() -> raw 16-bit reading (e.g. a waveform generator)
  Pin(n).value(v) from a test sets an input level; Pin.irq handlers fire on edges
  SPI.device / I2C.devices[addr] / UART.device: objects with the small methods below
Every created peripheral is recorded in `created` so tests can find it by pin or id.
"""
import time

created = {}
resets = 0


def _ticks():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __new__(cls, pin, *args, **kw):
        if isinstance(pin, Pin):
            return pin
        p = created.get(("pin", pin))
        if p is None:
            p = object.__new__(cls)
            p.id = pin
            p._v = 0
            p.mode = None
            p.pull = None
            p._irq = None
            p._trigger = 0
            p.writes = 0
            created[("pin", pin)] = p
        return p

    def __init__(self, pin, mode=None, pull=None, value=None):
        if isinstance(pin, Pin) and mode is None:
            return
        if mode is not None:
            self.mode = mode
        if pull is not None:
            self.pull = pull
            if pull == Pin.PULL_UP and self.mode == Pin.IN:
                self._v = 1
        if value is not None:
            self._v = 1 if value else 0

    def init(self, mode=None, pull=None, value=None):
        Pin.__init__(self, self, mode, pull, value)

    def value(self, v=None):
        if v is None:
            return self._v
        old = self._v
        self._v = 1 if v else 0
        self.writes += 1
        if old != self._v:
            for c in getattr(self, "_counters", ()):
                c._edge(self._v)
        if self._irq is not None and old != self._v:
            edge = Pin.IRQ_RISING if self._v else Pin.IRQ_FALLING
            if self._trigger & edge:
                if getattr(self, "_hard", False) or not stalled[0]:
                    self._irq(self)
                elif len(pending) < SCHED_DEPTH:
                    pending.append(self)   # a soft IRQ waits for the scheduler
                else:
                    dropped[0] += 1        # scheduler queue full: the callback is lost
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        self._irq = handler
        self._trigger = trigger
        self._hard = hard


# Late delivery of soft IRQs: while stalled[0] (the VM busy in a long C call: a flash write,
# a TLS handshake, a blocking print), soft pin IRQs queue up to SCHED_DEPTH entries and run
# at run_scheduled(), when the pin may long have changed again; hard IRQs run at the edge.
stalled = [False]
pending = []
dropped = [0]
SCHED_DEPTH = 8


def stall(on=True):
    stalled[0] = on
    if not on:
        run_scheduled()


def run_scheduled():
    while pending:
        p = pending.pop(0)
        if p._irq is not None:
            p._irq(p)


class Counter:
    """machine.Counter (ESP32 PCNT) as documented: counts `edge`s of `src` in hardware,
    whatever the CPU does; value([v]) reads (and sets) the count atomically. The hardware
    register is 16-bit: like the ESP32 port, overflows at +-32000 are carried in software."""
    RISING = 1
    FALLING = 2
    UP = 1
    DOWN = -1

    def __new__(cls, cid, *args, **kw):
        c = created.get(("counter", cid))
        if c is None:
            c = object.__new__(cls)
            c.id = cid
            c.src = None
            created[("counter", cid)] = c
        return c

    def __init__(self, cid, src=None, **kw):
        if src is not None or kw:
            self.init(src, **kw)

    def init(self, src=None, edge=RISING, direction=UP, filter_ns=0):
        if self.src is not None:
            self.src._counters.remove(self)
        self.src = src if src is not None else self.src
        self.edge = edge
        self.direction = direction
        self.filter_ns = filter_ns
        self._hw = 0
        self._over = 0
        self.overflows = 0
        if self.src is not None:
            if not hasattr(self.src, "_counters"):
                self.src._counters = []
            self.src._counters.append(self)

    def _edge(self, level):
        if (self.edge == Counter.RISING) == bool(level):
            self._hw += self.direction
            if abs(self._hw) >= 32000:
                self._over += self._hw
                self._hw = 0
                self.overflows += 1

    def value(self, v=None):
        old = self._over + self._hw
        if v is not None:
            self._over, self._hw = v, 0
        return old

    def deinit(self):
        if self.src is not None:
            self.src._counters.remove(self)
            self.src = None


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.pin = Pin(pin)
        self._freq = freq or 1000
        self._duty = 0 if duty_u16 is None else duty_u16
        self.active = True
        created[("pwm", self.pin.id)] = self

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def deinit(self):
        self.active = False


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, atten=None):
        self.pin = Pin(pin)
        self.atten_value = atten
        self.source = None
        self.reads = 0
        created[("adc", self.pin.id)] = self

    def atten(self, a):
        self.atten_value = a

    def width(self, w):
        pass

    def read_u16(self):
        self.reads += 1
        if self.source is None:
            return 0
        v = int(self.source())
        return 0 if v < 0 else (65535 if v > 65535 else v)

    def read_uv(self):
        # = u16 * 3300000 // 65535, in small ints: on a 32-bit build (as on an ESP32, whose
        # read_uv is C) that product is a bignum, which the no-allocation tests would count
        v = self.read_u16()
        return v * 50 + v * 1550 // 4369


class SPI:
    """Full-duplex: every byte written is handed to device.xfer(bytes) -> bytes."""

    def __init__(self, bus, baudrate=1000000, polarity=0, phase=0, sck=None, mosi=None,
                 miso=None):
        self.bus = bus
        self.device = None
        created[("spi", bus)] = self

    def init(self, *a, **kw):
        pass

    def _xfer(self, data):
        if self.device is None:
            return bytes(len(data))
        return self.device.xfer(bytes(data))

    def write(self, buf):
        self._xfer(buf)

    def read(self, n, write=0):
        return self._xfer(bytes([write]) * n)

    def readinto(self, buf, write=0):
        r = self._xfer(bytes([write]) * len(buf))
        buf[:] = r

    def write_readinto(self, wbuf, rbuf):
        r = self._xfer(wbuf)
        rbuf[:len(r)] = r


class SoftSPI(SPI):
    pass


class I2C:
    def __init__(self, bus=0, scl=None, sda=None, freq=400000):
        self.bus = bus
        self.devices = {}
        created[("i2c", bus)] = self

    def scan(self):
        return sorted(self.devices)

    def _dev(self, addr):
        d = self.devices.get(addr)
        if d is None:
            raise OSError(19)  # ENODEV, as the real port reports a missing ACK
        return d

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).i2c_write(bytes(buf))
        return len(buf)

    def readfrom(self, addr, n, stop=True):
        return self._dev(addr).i2c_read(n)

    def readfrom_into(self, addr, buf, stop=True):
        r = self._dev(addr).i2c_read(len(buf))
        buf[:] = r


class SoftI2C(I2C):
    pass


class UART:
    """Bytes written go to device.uart_write(bytes); device.uart_pending() returns the
    bytes the peer has sent back (consumed by read/readinto). With `realtime = True` the
    bytes take their wire time (10 bits each at the baud rate, on `clock`): txdone() is False
    until then, and flush() spins until then, as on the board."""

    def __init__(self, uid, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, **kw):
        self.id = uid
        self.baudrate = baudrate
        self.device = None
        self._rx = b""
        self.written = []
        self.realtime = False
        self.clock = _ticks   # ms; a test may drive it from event-loop turns instead
        self._tx_end = 0
        self.flushes = 0
        created[("uart", uid)] = self

    def init(self, *a, **kw):
        pass

    def _pull(self):
        if self.device is not None:
            more = self.device.uart_pending()
            if more:
                self._rx += more

    def write(self, buf):
        b = bytes(buf)
        self.written.append(b)
        if self.realtime:
            self._tx_end = self.clock() + (len(b) * 10000 + self.baudrate - 1) // self.baudrate
        if self.device is not None:
            self.device.uart_write(b)
        return len(b)

    def any(self):
        self._pull()
        return len(self._rx)

    def read(self, n=-1):
        self._pull()
        if not self._rx:
            return None
        if n is None or n < 0:
            n = len(self._rx)
        r, self._rx = self._rx[:n], self._rx[n:]
        return r

    def readinto(self, buf, n=None):
        r = self.read(len(buf) if n is None else n)
        if not r:
            return None
        buf[:len(r)] = r
        return len(r)

    def txdone(self):
        return not self.realtime or self.clock() - self._tx_end >= 0

    def flush(self):
        self.flushes += 1
        # on a loop-turn clock time stands still while flush() spins: fail instead of hanging
        assert self.clock is _ticks or UART.txdone(self), "flush() would hold the event loop"
        while not UART.txdone(self):
            pass


class WDT:
    instance = None

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.last_feed = _ticks()
        WDT.instance = self

    def feed(self):
        self.feeds += 1
        self.last_feed = _ticks()


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, tid=-1, **kw):
        self.id = tid
        self.callback = None
        self.period = None

    def init(self, mode=PERIODIC, period=-1, freq=-1, callback=None):
        self.period = period
        self.callback = callback

    def deinit(self):
        self.callback = None


class RTC:
    def __init__(self, *a):
        self.dt = None

    def datetime(self, dt=None):
        if dt is None:
            return self.dt or (2000, 1, 1, 5, 0, 0, 0, 0)
        self.dt = dt


def reset():
    global resets
    resets += 1
    raise SystemExit("machine.reset")


def soft_reset():
    reset()


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def freq(f=None):
    return 240000000


def reset_all():
    """Forget every peripheral (tests call this between cases)."""
    created.clear()
    WDT.instance = None
    stalled[0] = False
    del pending[:]
    dropped[0] = 0
