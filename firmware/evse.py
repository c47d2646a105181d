# EVSE and connector model: one Safety per board EVSE stepped every 10 ms by the safety
# stepper (firmware/stepper.py, its own thread), the card reader polled, and the connector
# status (Available / Occupied / Reserved / Unavailable / Faulted) derived from pilot, faults
# and availability.
#
# The stepper only buffers its events; tasks here turn them into station events, so nothing
# the OCPP side does (file writes, awaits, blocking calls) can delay the relay logic. On a
# board the stepper runs from power-up and buffers what happened before the station existed
# (an EV plugged in at boot): the first events seen here are those.
#
# Station events emitted:
#   "pilot" (evse_id, old, new)      debounced pilot state changed
#   "relay" (evse_id, closed)
#   "fault" / "fault_cleared" (evse_id, name)
#   "connector_status" (evse_id, status)   derived status changed
#   "token" (id_token dict)          a card was presented / the start button pressed
#   "offer" (evse_id, amps)          the pilot offer changed (0 = no PWM)
#
# Charging limits: listeners emit "charging_limit" (evse_id, source, amps or None) and this
# block keeps them by source ("profile" from smart charging, "local" from the console or an
# energy manager, "external" from a board input); evse_id 0 is station-wide and applies to
# every EVSE, None lifts that source's limit. The EVSE is permitted the lowest of the
# station-wide and its own limits; Safety clamps that, every step, to evse_hw.max_current
# (rating, config and the cable's PP coding), so a limit can only lower the current. Below
# MIN_AMPS the EVSE suspends: Safety stops the PWM at once and leaves the relay to the EV's
# reaction time; the transactions block reports SuspendedEVSE (see limited()).
from firmware import compat, log
from firmware.safety import Safety, MIN_AMPS
from firmware.stepper import Stepper

SAFETY_PERIOD_MS = 10
READER_PERIOD_MS = 100
CONNECTED = ("B", "C", "D")


class Evse:
    """Charging-side view of one EVSE."""

    def __init__(self, hw):
        self.hw = hw
        self.id = hw.id
        # On a board, board/main.py owns the safety stepper (the watchdog checks it) and has
        # already attached a Safety to each EVSE: reuse it, never a second one per relay.
        self.safety = getattr(hw, "safety", None) or Safety(hw)
        self.pilot = None
        self.authorized = False   # set by the transactions block
        self.available = True     # set by the availability block (ChangeAvailability)
        self.reserved = False     # set by a reservation block
        self.limit = None         # effective charging limit in amps; None = hardware maximum
        self.limits = {}          # source -> amps set for this EVSE alone
        self.held = False         # cable kept locked after an EV-side disconnect (E09.FR.03)
        self.status = None        # last derived connector status

    def connected(self):
        return self.pilot in CONNECTED


class Block:
    def __init__(self, station):
        self.st = station
        self.evses = [Evse(hw) for hw in station.board.evses]
        self._by_id = {}
        for e in self.evses:
            self._by_id[e.id] = e
            e.status = self.connector_status(e.id)
        self._events = compat.Queue()   # (evse_id, events) from the safety stepper
        # evse_id -> [pilot, relay, offer, faults] as queued for dispatch so far: what a
        # resync after a ring overflow compares the Safety with
        self._handed = {}
        for e in self.evses:
            self._handed[e.id] = [None, False, 0, set()]   # nothing handed yet
        self.stepper = None
        self.station_limits = {}   # source -> amps for the whole station (evse_id 0)
        station.on("start", self._on_start)
        station.on("charging_limit", self._on_limit)

    # ---------------------------------------------------------------- API
    def get(self, evse_id):
        return self._by_id.get(evse_id)

    def ids(self):
        return [e.id for e in self.evses]

    def connected(self, evse_id):
        e = self._by_id.get(evse_id)
        return e is not None and e.connected()

    def relay_closed(self, evse_id):
        e = self._by_id.get(evse_id)
        return e is not None and e.safety.relay_closed()

    def offered(self, evse_id):
        e = self._by_id.get(evse_id)
        return e.safety.offered() if e is not None else 0

    def blocked(self, evse_id):
        """A fault that stops charging is latched (see safety.POLICY)."""
        e = self._by_id.get(evse_id)
        return e is not None and e.safety.blocked()

    def faults(self, evse_id):
        e = self._by_id.get(evse_id)
        return e.safety.faults() if e is not None else []

    def permit(self, evse_id, authorized):
        """The charging logic allows (or withdraws) energy on an EVSE; safety decides."""
        e = self._by_id.get(evse_id)
        if e is not None:
            was = e.authorized
            e.authorized = bool(authorized)
            self._apply(e)
            if was != e.authorized:
                # smart charging shares a station maximum among the EVSEs given energy
                self.st.emit("permitted", evse_id, e.authorized)

    def set_available(self, evse_id, available):
        e = self._by_id.get(evse_id)
        if e is not None:
            e.available = bool(available)
            self._apply(e)
            self.refresh(evse_id)

    def set_reserved(self, evse_id, reserved):
        e = self._by_id.get(evse_id)
        if e is not None:
            e.reserved = bool(reserved)
            self.refresh(evse_id)

    def set_limit(self, evse_id, amps, source="local"):
        """Set (amps) or lift (None) the limit `source` puts on `evse_id` (0: every EVSE).
        False for an unknown EVSE."""
        if amps is not None and amps < 0:
            amps = 0
        if evse_id == 0:
            table = self.station_limits
            targets = self.evses
        else:
            e = self._by_id.get(evse_id)
            if e is None:
                return False
            table = e.limits
            targets = (e,)
        if amps is None:
            table.pop(source, None)
        else:
            table[source] = amps
        for e in targets:
            lim = self._effective(e)
            if lim != e.limit:
                log.info("evse", "EVSE %d charging limit %s A (%s)" % (e.id, lim, source))
            e.limit = lim
            self._apply(e)
        return True

    def _effective(self, e):
        lim = None
        for table in (self.station_limits, e.limits):
            for src in table:
                a = table[src]
                if lim is None or a < lim:
                    lim = a
        return lim

    def limit(self, evse_id):
        """The effective charging limit of the EVSE in amps (before the hardware clamp),
        None when nothing limits it."""
        e = self._by_id.get(evse_id)
        return e.limit if e is not None else None

    def limited(self, evse_id):
        """A charging limit below MIN_AMPS suspends the EVSE (SuspendedEVSE)."""
        e = self._by_id.get(evse_id)
        return e is not None and e.limit is not None and e.limit < MIN_AMPS

    def _on_limit(self, evse_id, source, amps):
        if not self.set_limit(evse_id, amps, source):
            log.warn("evse", "charging limit for unknown EVSE %s ignored" % (evse_id,))

    def _external_limit(self, evse_id, amps):
        self.st.emit("charging_limit", evse_id, "external", amps)

    def _apply(self, e):
        self._lock(e)
        # no limit: None lets safety follow the hardware maximum live (a PP that reads a
        # cable only after the card was presented), not a copy taken now
        e.safety.permit(e.authorized, e.available, e.limit)

    def _lock(self, e):
        """Socket lock (no-op for tethered cables): engaged before energy is permitted on a
        connected EV, released only once the relay is open (never under load) or the EV is
        gone. A lock that does not follow is a board-reported 'lock' fault, which blocks."""
        if e.authorized and e.connected():
            e.hw.lock.set(True)
            e.held = False
        elif not e.safety.relay_closed() and not e.held:
            e.hw.lock.set(False)

    def release(self, evse_id):
        """The driver presented the token of the session that left the cable locked."""
        e = self._by_id.get(evse_id)
        if e is not None and e.held:
            e.held = False
            self._lock(e)

    def connector_status(self, evse_id):
        """ConnectorStatusEnumType of the EVSE's (single) connector."""
        e = self._by_id[evse_id]
        if e.safety.blocked():
            return "Faulted"
        if not e.available:
            return "Unavailable"
        if e.connected():
            return "Occupied"
        if e.reserved:
            return "Reserved"
        return "Available"

    def refresh(self, evse_id):
        e = self._by_id.get(evse_id)
        if e is None:
            return
        s = self.connector_status(evse_id)
        if s != e.status:
            e.status = s
            self.st.emit("connector_status", evse_id, s)

    def status(self, evse_id):
        """Console view of one EVSE."""
        e = self._by_id.get(evse_id)
        if e is None:
            return {"id": evse_id}
        mv = self.st.blocks.get("meter_values")
        tx = self.st.blocks.get("transactions")
        t = tx.active(evse_id) if tx is not None else None
        try:
            wh = mv.energy_wh(evse_id) if mv is not None else e.hw.meter.energy_wh()
            w = e.hw.meter.power_w()
        except Exception:
            wh, w = None, None
        return {"id": evse_id, "pilot": e.pilot, "status": e.status,
                "relay": e.safety.relay_closed(), "offered": e.safety.offered(),
                "faults": e.safety.faults(), "authorized": e.authorized,
                "available": e.available, "locked": e.hw.lock.locked(),
                "transaction": t["id"] if t else None,
                "charging_state": t.get("state") if t else None,
                "limit": e.limit, "limits": dict(e.limits),
                "energy_wh": round(wh, 2) if wh is not None else None,
                "power_w": round(w, 1) if w is not None else None}

    # ---------------------------------------------------------------- tasks
    def _on_start(self):
        # a board with a limit input (board/device.py, host/sim_board.py) reports through
        # this; attached once every block listens, so its first reading is reported too
        attach = getattr(self.st.board, "attach_limits", None)
        if attach is not None:
            attach(self._external_limit)
        for e in self.evses:
            self._apply(e)
        stepper = getattr(self.st.board, "stepper", None)   # board/main.py runs one
        own = stepper is None
        if own:
            stepper = Stepper([e.safety for e in self.evses], period_ms=SAFETY_PERIOD_MS)
            stepper.start()
            self.st.spawn(stepper.watch_loop())
        self.stepper = stepper
        self.st.spawn(self._intake(stepper, own))
        self.st.spawn(self._dispatch())
        self.st.spawn(self._reader_loop())

    async def _intake(self, stepper, own):
        """Move the stepper's event lists to the dispatch queue; report step failures and,
        after the stepper's buffer overflowed, resync from the Safety objects."""
        dropped = -1      # resync once at start: the ring may have overflowed before
        errors = stepper.errors
        try:
            while True:
                got = stepper.pop()
                while got is not None:
                    s, evs = got
                    self._hand(s.hw.id, evs)
                    got = stepper.pop()
                if stepper.errors != errors:
                    errors = stepper.errors
                    where, exc = stepper.last_error or (None, None)
                    log.exc("evse", "safety step failed (EVSE %s): relay opened" % where, exc)
                if stepper.dropped != dropped:
                    if dropped >= 0:
                        log.warn("evse", "safety events lost (%d): resync" %
                                 (stepper.dropped - dropped))
                    dropped = stepper.dropped
                    self._resync()
                await stepper.flag.wait()
        finally:
            if own:
                stepper.stop()   # relays open

    def _hand(self, evse_id, evs):
        """Queue the events that change what dispatch was handed. After a resync the ring may
        still hold lists the resync already accounted for (the stepper goes on meanwhile):
        those repeat nothing."""
        h = self._handed[evse_id]
        out = None
        for ev in evs:
            kind, value = ev
            if kind == "pilot":
                if value == h[0]:
                    continue
                h[0] = value
            elif kind == "relay":
                if value == h[1]:
                    continue
                h[1] = value
            elif kind == "offer":
                if value == h[2]:
                    continue
                h[2] = value
            elif kind == "fault":
                if value in h[3]:
                    continue
                h[3].add(value)
            elif kind == "fault_cleared":
                if value not in h[3]:
                    continue
                h[3].discard(value)
            if out is None:
                out = []
            out.append(ev)
        if out:
            self._events.put_nowait((evse_id, out))

    def _resync(self):
        """Event lists were lost to a full ring: hand on the difference between each Safety
        and what dispatch was handed. New faults first (a replug fault ends the session with
        its own reason), then the relay opening, the pilot, the faults that cleared, and a
        relay closing last, as the Safety itself orders them."""
        for e in self.evses:
            s = e.safety
            h = self._handed[e.id]
            closed = s.relay_closed()
            st = s.state()
            offer = s.offered()
            now = set(s.faults())
            evs = []
            for name in now:
                if name not in h[3]:
                    evs.append(("fault", name))
            if not closed and h[1]:
                evs.append(("relay", False))
            if st is not None and st != h[0]:
                evs.append(("pilot", st))
            for name in h[3]:
                if name not in now:
                    evs.append(("fault_cleared", name))
            if closed and not h[1]:
                evs.append(("relay", True))
            if offer != h[2]:
                evs.append(("offer", offer))
            if evs:
                self._hand(e.id, evs)

    async def _dispatch(self):
        while True:
            evse_id, events = await self._events.get()
            e = self._by_id.get(evse_id)
            if e is None:
                continue
            for ev in events:
                kind, value = ev
                try:
                    if kind == "pilot":
                        old = e.pilot
                        e.pilot = value
                        log.info("evse", "EVSE %d pilot %s -> %s" % (e.id, old, value))
                        if old in CONNECTED and not e.connected() and e.authorized and \
                                e.hw.lock.locked() and \
                                not self.st.dm.get("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"):
                            e.held = True  # E09.FR.03: EV side unplugged, the cable stays locked
                        self._lock(e)
                        if e.connected():
                            # Occupied first: its StatusNotification is queued before the
                            # TransactionEvent (Started) the "pilot" listeners queue, as the
                            # E02/E03 sequence diagrams draw it. Not on unplug: ending the
                            # transaction may apply a scheduled Unavailable, and the connector
                            # goes from Occupied straight to that (G01.FR.05)
                            self.refresh(e.id)
                        self.st.emit("pilot", e.id, old, value)
                    elif kind == "relay":
                        log.info("evse", "EVSE %d relay %s" % (e.id, "closed" if value else "open"))
                        if not value:
                            self._lock(e)
                        self.st.emit("relay", e.id, value)
                    elif kind == "offer":
                        self.st.emit("offer", e.id, value)
                    elif kind == "fault" or kind == "fault_cleared":
                        log.warn("evse", "EVSE %d %s %s" % (e.id, kind.replace("_", " "), value))
                        self.st.emit(kind, e.id, value)
                except Exception as exc:
                    log.exc("evse", "handling %s" % (ev,), exc)
            self.refresh(e.id)

    async def _reader_loop(self):
        reader = self.st.board.reader
        while True:
            try:
                got = reader.poll()
            except Exception as exc:
                log.warn("evse", "reader poll failed: %s" % (exc,))
                got = None
            if got:
                token, kind = got
                log.info("evse", "token presented (%s)" % kind)
                self.st.emit("token", {"idToken": token, "type": kind})
            await compat.sleep_ms(READER_PERIOD_MS)

