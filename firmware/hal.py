# The hardware interface the portable core talks to. board/ (ESP32, on `machine`) and
# host/ (simulated) provide implementations with these method names; the core only
# duck-types them. Every method is synchronous and fast: drivers that need slow I/O
# (ADC bursts, Modbus) do it in their own `poll()` coroutine and cache the result.

# Control-pilot states per IEC 61851-1.
PILOT_STATES = ("A", "B", "C", "D", "E", "F")

# Fault names a board may report through `Evse.faults()`; "internal" is latched by the
# safety stepper when a safety step raised (firmware/stepper.py).
FAULT_NAMES = ("rcd", "contactor", "welding", "lock", "pilot", "diode", "overtemp", "meter",
               "internal")


class Pilot:
    """Control pilot of one EVSE."""

    def offer(self, amps):
        """Offer `amps` to the EV (PWM duty per IEC 61851-1). 0 = 100 % (no PWM, EV must
        wait); None = -12 V / 0 % (state F, EVSE not available)."""
        raise NotImplementedError

    def state(self):
        """Latest debounced pilot state, one of PILOT_STATES."""
        raise NotImplementedError


class Relay:
    """Main contactor of one EVSE."""

    def set(self, closed):
        raise NotImplementedError

    def closed(self):
        """What we commanded."""
        raise NotImplementedError

    def feedback(self):
        """Auxiliary contact reading (True = closed) or None when not fitted."""
        return None


class Meter:
    """Energy meter of one EVSE."""

    def energy_wh(self):
        """Import energy register, monotonic, in Wh (float)."""
        raise NotImplementedError

    def power_w(self):
        raise NotImplementedError

    def current_a(self):
        """Per-phase currents (tuple) or None."""
        return None

    def voltage_v(self):
        """Per-phase voltages (tuple) or None."""
        return None

    def estimated(self):
        """True when no real meter is fitted and figures are estimates."""
        return False


class Lock:
    """Socket (connector) lock; boards without one use NoLock."""

    def set(self, locked):
        raise NotImplementedError

    def locked(self):
        """Feedback: True/False, or None when not sensed."""
        raise NotImplementedError

    def commanded(self):
        """The last command: True = lock, False = unlock (or never commanded), None = no
        actuator. Safety times the lock's travel from this, not from the EV plugging in.
        Called every safety step on the stepper's thread: no allocation."""
        raise NotImplementedError


class NoLock(Lock):
    def set(self, locked):
        pass

    def locked(self):
        return None

    def commanded(self):
        return None


class Reader:
    """Identification: RFID reader (and start button) shared by the station."""

    def poll(self):
        """Return (id_token, token_type) once per presented card, else None.
        token_type is an OCPP IdTokenEnumType such as "ISO14443" or "NoAuthorization"."""
        return None


class Evse:
    """Bundle of one EVSE's hardware; `faults()` returns the set of active fault names.
    It is read on both threads (the safety stepper, the event loop's status and console),
    so writers replace `_faults` with a new set and never change a published one in place."""

    def __init__(self, evse_id, pilot, relay, meter, lock=None, max_current=32, phases=3,
                 connector_type="cType2"):
        self.id = evse_id
        self.pilot = pilot
        self.relay = relay
        self.meter = meter
        self.lock = lock or NoLock()
        self.max_current = max_current
        self.phases = phases
        self.connector_type = connector_type
        self._faults = set()

    def faults(self):
        return self._faults


class Board:
    """What the station is given at start-up: EVSEs, a reader, the data directory and
    platform services. Subclasses override `reboot`, `feed_watchdog` and `poll`."""

    vendor = "OpenSource"
    model = "PyStation"
    serial = None
    firmware_version = "0.1.0"
    ota = None  # board/ota.Ota on an ESP32 with OTA partitions ("esp32-image" bundles)

    def __init__(self, evses, reader=None, data_dir="data"):
        self.evses = evses
        self.ids = tuple(e.id for e in evses)
        self._by_id = {}
        for e in evses:
            self._by_id[e.id] = e
        self.reader = reader or Reader()
        self.data_dir = data_dir

    def evse(self, evse_id):
        """The Evse with OCPP id `evse_id`, or None."""
        return self._by_id.get(evse_id)

    async def poll(self):
        """Long-running driver task (ADC sampling, meter polling); default: nothing."""
        return None

    def feed_watchdog(self):
        pass

    def reboot(self):
        """Hard restart of the whole station (machine.reset() on a board)."""
        raise SystemExit(0)
