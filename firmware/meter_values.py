# Meter values block (OCPP 2.0.1 J01, J02): takes readings from each EVSE's hal.Meter and
# shapes them as MeterValueType dicts.
#
#  - Transaction meter values (SampledDataCtrlr) only ever travel inside TransactionEvent:
#    the transactions block asks for started()/updated()/ended() samples, and this block
#    ticks TxUpdatedInterval per transaction by calling tx.meter_event().
#  - Clock-aligned values (AlignedDataCtrlr) are taken on boundaries counted from midnight
#    UTC: MeterValues for EVSEs without a transaction, a TransactionEvent (Sample.Clock) for
#    EVSEs with one, nothing at all during transactions when SendDuringIdle is set.
#  - TxEndedMeasurands samples (sampled every TxEndedInterval from the start, and aligned
#    every AlignedDataCtrlr.TxEndedInterval) are kept in RAM, bounded, and go into the
#    Ended event together with the Transaction.End reading.
#
# Energy.Active.Import.Register is reported exactly as the meter's register (J02.FR.17) but
# never lower than a value already reported (J02.FR.16).
from array import array

from firmware import compat, log
from firmware.rpc import CallError, Offline

SAMP = "SampledDataCtrlr"
ALIGN = "AlignedDataCtrlr"
ENERGY = "Energy.Active.Import.Register"
NAP_MS = 60000  # longest sleep of the clock-aligned loop
MAX_ENDED = 16  # TxEnded samples kept per transaction (E06.FR.13: thin out, keep ends)
# The measurands this block can read, their units, and the phase names a reading may carry.
MEASURANDS = (ENERGY, "Power.Active.Import", "Current.Import", "Voltage", "Current.Offered")
UNITS = ("Wh", "W", "A", "V", "A")
PHASE_NAMES = (None, "L1", "L2", "L3", "L1-N", "L2-N", "L3-N")


def _num(x):
    return round(float(x), 2)


def _shape(context, at, codes, vals):
    """MeterValueType from readings as Block._read returns them."""
    out = []
    for i in range(len(codes)):
        k = codes[i] >> 3
        sv = {"value": _num(vals[i]), "context": context, "measurand": MEASURANDS[k],
              "unitOfMeasure": {"unit": UNITS[k]}}
        if codes[i] & 7:
            sv["phase"] = PHASE_NAMES[codes[i] & 7]
        out.append(sv)
    return {"timestamp": compat.iso8601(at), "sampledValue": out}


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self._last_wh = {}      # evse id -> highest energy reported
        self._ended = {}        # evse id -> TxEnded rows for the Ended event (_keep_ended)
        self._tasks = {}        # evse id -> periodic task of the running transaction
        self._aligned_changed = compat.asyncio.Event()
        station.dm.on_change(self._on_var)
        station.on("start", self._on_start)
        station.on("tx_started", self._on_tx_started)
        station.on("tx_ended", self._on_tx_ended)

    # ---------------------------------------------------------------- readings
    def energy_wh(self, evse_id):
        """Monotonic energy register of one EVSE in Wh."""
        hw = self.st.board.evse(evse_id)
        last = self._last_wh.get(evse_id, 0.0)
        try:
            wh = float(hw.meter.energy_wh())
        except Exception as e:
            log.warn("meter", "EVSE %d meter read failed: %s" % (evse_id, e))
            return last
        if wh < last:
            return last
        self._last_wh[evse_id] = wh
        return wh

    def seen_wh(self, evse_id, wh):
        """Raise the monotonic floor (e.g. from a value persisted before a power cut)."""
        if wh is not None and wh > self._last_wh.get(evse_id, 0.0):
            self._last_wh[evse_id] = float(wh)

    def power_w(self, evse_id):
        try:
            return float(self.st.board.evse(evse_id).meter.power_w())
        except Exception:
            return 0.0

    def _read(self, evse_id, measurands):
        """Readings of the supported measurands among `measurands`: (codes, values), one
        code byte per value naming its measurand and phase (MEASURANDS, PHASE_NAMES); None
        when there is no such EVSE or nothing to read."""
        hw = self.st.board.evse(evse_id)
        if hw is None:
            return None
        codes = bytearray()
        vals = []
        for m in measurands:
            k = MEASURANDS.index(m) if m in MEASURANDS else -1
            if k == 0:
                vals.append(self.energy_wh(evse_id))
            elif k == 1:
                vals.append(self.power_w(evse_id))
            elif k == 2 or k == 3:
                try:
                    per_phase = hw.meter.current_a() if k == 2 else hw.meter.voltage_v()
                except Exception:
                    per_phase = None
                for i, v in enumerate((per_phase or ())[:3]):
                    codes.append(k << 3 | (i + 1 if k == 2 else i + 4))
                    vals.append(v)
                continue
            elif k == 4:
                ev = self.st.blocks.get("evse")
                vals.append((ev.offered(evse_id) if ev is not None else 0) or 0)
            else:
                continue
            codes.append(k << 3)
        return (codes, vals) if codes else None

    def sample(self, evse_id, measurands, context, at=None):
        """One MeterValueType with the supported measurands among `measurands`, or None.
        `at`: unix time of the sample (default now)."""
        r = self._read(evse_id, measurands)
        return _shape(context, compat.now() if at is None else at, *r) if r else None

    def trigger_sample(self, evse_id):
        """A TriggerMessage(MeterValues) sample: the AlignedDataCtrlr measurands (F06.FR.06),
        the energy register when none are configured."""
        return self.sample(evse_id, self.dm.get_list(ALIGN, "Measurands") or (ENERGY,), "Trigger")

    def _values(self, evse_id, comp, var, context):
        mv = self.sample(evse_id, self.dm.get_list(comp, var), context)
        return [mv] if mv else None

    # ---------------------------------------------------------------- for transactions
    def started(self, evse_id):
        """meterValue list for TransactionEvent(Started): TxStartedMeasurands (E01.FR.09)."""
        return self._values(evse_id, SAMP, "TxStartedMeasurands", "Transaction.Begin")

    def updated(self, evse_id, context="Sample.Periodic"):
        return self._values(evse_id, SAMP, "TxUpdatedMeasurands", context)

    def triggered(self, evse_id):
        """TriggerMessage(TransactionEvent / MeterValues): the TxUpdated measurands."""
        return self._values(evse_id, SAMP, "TxUpdatedMeasurands", "Trigger")

    def ended(self, evse_id, final_wh=None):
        """meterValue list for TransactionEvent(Ended): the TxEnded samples collected during
        the transaction, then the Transaction.End reading (E06.FR.11). `final_wh` overrides
        the register (transactions recovered after a power cut)."""
        out = [_shape(ctx, at, codes, vals) for ctx, codes, at, vals in
               self._ended.pop(evse_id, ())]
        ms = self.dm.get_list(SAMP, "TxEndedMeasurands")
        if final_wh is not None:
            self.seen_wh(evse_id, final_wh)
            if ENERGY not in ms:
                ms = list(ms) + [ENERGY]
        mv = self.sample(evse_id, ms, "Transaction.End")
        if mv:
            out.append(mv)
        return out or None

    def _keep_ended(self, evse_id, measurands, context, at=None):
        """Take a TxEnded sample and keep it as a compact row (context, codes, time, values)
        until the Ended event: a MeterValueType of dicts costs about seven times the RAM. The
        time stays out of the array (a single-precision port would round it)."""
        r = self._read(evse_id, measurands)
        if r is None:
            return
        lst = self._ended.get(evse_id) or []
        if len(lst) >= MAX_ENDED:
            lst = lst[0::2]  # drop every second intermediate sample (E06.FR.13)
        lst.append((context, bytes(r[0]), compat.now() if at is None else at, array("d", r[1])))
        self._ended[evse_id] = lst

    # ---------------------------------------------------------------- periodic tasks
    def _on_start(self):
        self.st.spawn(self._aligned_loop())

    def _on_tx_started(self, evse_id, tx):
        self._ended[evse_id] = []
        old = self._tasks.pop(evse_id, None)
        if old is not None:
            old.cancel()
        self._tasks[evse_id] = self.st.spawn(self._tx_loop(evse_id, tx["id"]))

    def _on_tx_ended(self, evse_id, tx):
        t = self._tasks.pop(evse_id, None)
        if t is not None:
            t.cancel()

    async def _tx_loop(self, evse_id, tx_id):
        """TxUpdatedInterval (J02.FR.11) and TxEndedInterval sampling for one transaction."""
        start = compat.ticks_ms()
        next_upd = next_end = 0
        while True:
            upd = self.dm.get(SAMP, "TxUpdatedInterval") or 0
            end = self.dm.get(SAMP, "TxEndedInterval") or 0
            now = compat.ticks_diff(compat.ticks_ms(), start)
            if upd > 0 and next_upd == 0:
                next_upd = upd * 1000
            if end > 0 and next_end == 0:
                next_end = end * 1000
            if upd > 0 and now >= next_upd:
                next_upd += upd * 1000
                if next_upd <= now:
                    next_upd = now + upd * 1000
                tx = self.st.blocks.get("transactions")
                values = self.updated(evse_id)
                if tx is not None and values:
                    tx.meter_event(evse_id, tx_id, "MeterValuePeriodic", values)
            if end > 0 and now >= next_end:
                next_end += end * 1000
                if next_end <= now:
                    next_end = now + end * 1000
                self._keep_ended(evse_id, self.dm.get_list(SAMP, "TxEndedMeasurands"),
                                 "Sample.Periodic")
            waits = [w - now for w in (next_upd if upd > 0 else 0, next_end if end > 0 else 0) if w]
            await compat.sleep_ms(max(20, min(waits)) if waits else 1000)

    def next_aligned(self, now, interval):
        """Next clock-aligned instant after `now` (unix s), intervals counted from midnight."""
        midnight = now - now % 86400
        k = int((now - midnight) // interval) + 1
        t = midnight + k * interval
        return t if t < midnight + 86400 else midnight + 86400

    def _on_var(self, component, variable, value):
        if component == ALIGN:
            self._aligned_changed.set()

    async def _aligned_loop(self):
        """Sleeps until the next boundary, in naps of at most NAP_MS (a clock set from the
        CSMS is noticed within one), and starts over when an AlignedDataCtrlr value changes.
        Times stay exact (ints where floats are single precision): boundaries are compared
        with ==, never with a float tolerance."""
        while True:
            self._aligned_changed.clear()
            interval = self.dm.get(ALIGN, "Interval") or 0
            end_iv = self.dm.get(ALIGN, "TxEndedInterval") or 0
            now = compat.now()
            t_int = self.next_aligned(now, interval) if interval > 0 else None
            t_end = self.next_aligned(now, end_iv) if end_iv > 0 else None
            at = t_int if t_end is None or (t_int is not None and t_int < t_end) else t_end
            ms = NAP_MS if at is None else int((at - now) * 1000)
            try:
                await compat.wait_for_ms(self._aligned_changed.wait(), max(0, min(ms, NAP_MS)))
                continue
            except compat.TimeoutError:
                pass
            now = compat.now()
            if at is None or ms > NAP_MS or now < at - 1 or now > at + NAP_MS // 1000:
                continue  # a nap, or the clock was set while sleeping
            if t_int == at:
                await self._clock_tick(at)
            if t_end == at:
                self._clock_ended(at)
            await compat.sleep_ms(20)

    def _clock_ended(self, at):
        tx = self.st.blocks.get("transactions")
        if tx is None:
            return
        ms = self.dm.get_list(ALIGN, "TxEndedMeasurands")
        for e in self.st.board.evses:
            if tx.active(e.id):
                self._keep_ended(e.id, ms, "Sample.Clock", at)

    async def _clock_tick(self, at):
        """J01.FR.14/.19/.20/.22"""
        tx = self.st.blocks.get("transactions")
        busy = [e.id for e in self.st.board.evses if tx is not None and tx.active(e.id)]
        if busy and self.dm.get(ALIGN, "SendDuringIdle"):
            return
        ms = self.dm.get_list(ALIGN, "Measurands")
        for e in self.st.board.evses:
            mv = self.sample(e.id, ms, "Sample.Clock", at)
            if mv is None:
                continue
            if e.id in busy:
                t = tx.active(e.id)
                tx.meter_event(e.id, t["id"], "MeterValueClock", [mv])
            else:
                await self.send(e.id, [mv])

    async def send(self, evse_id, meter_values):
        """MeterValuesRequest (not queued: clock-aligned idle values are not transaction
        related; offline they are simply not sent)."""
        try:
            await self.st.call("MeterValues", {"evseId": evse_id, "meterValue": meter_values},
                               wait_online=False)
        except (Offline, CallError, compat.TimeoutError) as e:
            log.warn("meter", "MeterValues for EVSE %d not sent: %r" % (evse_id, e))
