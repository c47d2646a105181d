# Keeps an energy register that is counted in RAM (S0 pulses, the simulator) across reboots
# and power cuts with few flash writes. The Store document holds a mark that runs `step_wh`
# ahead of the register: it is rewritten (Store.save: atomic, so a cut leaves the old or the
# new mark) only when the register reaches it, i.e. about once per `step_wh`, never per pulse.
# The meter hands out nothing above the mark, so after a cut the register restarts at the
# mark, at or above every reading given before (hal.Meter: monotonic; meterStart after a
# reboot is never below an earlier reading). The price of a cut while energy flows: up to
# `step_wh` is counted that never flowed (we never lose counted energy, we may add some).
# When the flow stops (relay opened) the register is written once, so a stop followed by a
# reboot or a cut adds less than 1 Wh. Marks are whole Wh rounded up: a float's text form
# reloads exactly on CPython and the unix port, but not always on a port with single
# precision floats (ESP32), where it could come back a fraction below a reported reading.

STEP_WH = 10.0


class SavedEnergy:
    def __init__(self, store, name, step_wh=STEP_WH):
        self.store = store
        self.name = name
        self.step_wh = step_wh
        self.saves = 0          # flash writes, for tests and wear figures
        self._flowing = False
        try:
            self.mark = float(store.load(name)["wh"])
        except (TypeError, KeyError, ValueError):
            self.mark = 0.0     # no document yet (or a damaged one): a new register
        self.start_wh = self.mark   # the register at boot

    def cap(self, wh):
        """What may be handed out now: `wh`, but never more than the saved mark."""
        return wh if wh < self.mark else self.mark

    def keep(self, wh, flowing=True):
        """Record the register `wh` (call from the meter's poll, not from an interrupt)."""
        if self._flowing and not flowing:
            if wh <= self.mark - 1 or wh > self.mark:
                self._save(wh)
        elif wh > self.mark:
            self._save(wh + self.step_wh)
        self._flowing = flowing

    def _save(self, wh):
        mark = int(wh)
        if mark < wh:
            mark += 1
        self.store.save(self.name, {"wh": mark})
        self.mark = mark
        self.saves += 1
