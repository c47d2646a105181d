# The OCPP 2.0.1 device model as the firmware uses it: component/variable lookup, typed
# values, change listeners, validation hooks and persistence. What only the CSMS and the
# installer need (GetVariables, SetVariables, base reports) is in firmware.dm_csms, loaded
# for those requests and dropped after them; what runs once at start-up (hardware values,
# reading the saved values) is in firmware.dm_boot, dropped once the model is made.
#
# Lean on MicroPython: definitions stay in the dm_table text (a row is parsed when read and
# addressed by its offset there); current values live in one dict keyed by a small int
# (row, EVSE, connector, attribute), holding only values that differ from the row default. Persisted: one small JSON document
# with the persistent values that differ from their defaults, saved atomically.
from firmware import dm_table as T
from firmware.compat import iso8601, parse_iso8601, unload

DOC = "dm.json"
NOMINAL_VOLTAGE = 230  # V per phase, for the EVSE Power maxLimit

_NONE = object()

# Lookup failures (negative row indexes).
UNKNOWN_COMPONENT = -1
UNKNOWN_VARIABLE = -2

_LISTS = (T.OPT, T.SEQ, T.MEM)


def _attr_code(attr):
    if attr == "Actual" or attr is None:
        return 0
    try:
        return T.ATTRS.index(attr)
    except ValueError:
        return -1


def _key(idx, evse, conn, a):
    # Small int on both targets (< 2**28): row offset < 16384, EVSE and connector ids < 64.
    return a + 4 * (idx + 16384 * (evse + 64 * conn))


def _unkey(k):
    a = k & 3
    k >>= 2
    return k & 16383, (k >> 14) & 63, k >> 20, a


def _is_int_text(s):
    if not s:
        return False
    if s[0] in "+-":
        s = s[1:]
    return s != "" and all("0" <= ch <= "9" for ch in s)


class DeviceModel:
    def __init__(self, store, evses, table=T.TABLE):
        self.store = store
        self.rows = T.Rows(table)  # rows[offset] -> row tuple
        self.evse_ids = tuple(e.id for e in evses)
        self._vals = {}     # _key(...) -> value that differs from the row default
        self._hi = {}       # _key(row, evse, conn, 0) -> per-instance maxLimit
        self._dyn = {}      # row -> fn(evse, connector) computing the Actual value
        self._checks = {}   # row -> fn(value) -> None or a reasonCode refusing the value
        self._listeners = []
        from firmware import dm_boot  # start-up only: its code leaves the heap again
        dm_boot.hardware(self, evses)
        if self._row("ClockCtrlr", None, "DateTime", None) >= 0:
            self.provide("ClockCtrlr", "DateTime", lambda e, c: iso8601())
        dm_boot.load(self)
        unload("firmware.dm_boot")

    # ---------------------------------------------------------------- lookup
    def _row(self, component, ci, variable, vi):
        return self.rows.find(component if ci is None else component + "#" + ci, variable, vi)

    def _instance_ok(self, flags, evse, conn):
        if flags & T.CONN:
            return evse in self.evse_ids and conn == 1
        if flags & T.EVSE:
            return evse in self.evse_ids and conn is None
        return evse is None and conn is None

    def _find(self, component, ci, variable, vi, evse, conn):
        i = self._row(component, ci, variable, vi)
        if i >= 0 and not self._instance_ok(self.rows[i][3], evse, conn):
            return UNKNOWN_COMPONENT
        return i

    # ---------------------------------------------------------------- firmware API
    def get(self, component, variable, evse=None, connector=None, ci=None, vi=None,
            attr="Actual"):
        """Typed value (int/float/bool/str) or None when unknown or unset."""
        i = self._find(component, ci, variable, vi, evse, connector)
        if i < 0:
            return None
        return self._value(i, evse or 0, connector or 0, _attr_code(attr))

    def _value(self, i, e, c, a):
        if a < 0 or not self._supports(self.rows[i][3], a):
            return None
        if a == 0 and self._dyn:
            fn = self._dyn.get(i)
            if fn is not None:
                return fn(e or None, c or None)
        v = self._vals.get(_key(i, e, c, a), _NONE)
        if v is _NONE:
            return self.rows[i][9] if a == 0 else None
        return v

    def get_list(self, component, variable):
        """The items of a list-typed variable (MemberList, SequenceList, ...); [] when empty.
        Stored values were checked item by item (_parse), so a split is all it takes."""
        v = self.get(component, variable)
        return v.split(",") if v else []

    def set(self, component, variable, value, evse=None, connector=None, ci=None, vi=None,
            attr="Actual"):
        """Internal update by the firmware (no mutability or range check). A string is
        converted to the variable's type. Persists persistent values, fires listeners.
        Returns True when the value changed. Raises KeyError for an unknown variable."""
        i = self._find(component, ci, variable, vi, evse, connector)
        a = _attr_code(attr)
        if i < 0 or a < 0:
            raise KeyError("%s.%s" % (component, variable))
        row = self.rows[i]
        value = self._coerce(row, value)
        if not self._store(i, evse or 0, connector or 0, a, value):
            return False
        if self._persistent(row[3]):
            self.save()
        self._fire(row, value)
        return True

    def on_change(self, fn):
        """fn(component, variable, value) after every accepted change."""
        self._listeners.append(fn)

    def provide(self, component, variable, fn):
        """Compute a variable's Actual value on every read: fn(evse, connector) -> value."""
        i = self._row(component, None, variable, None)
        if i < 0:
            raise KeyError("%s.%s" % (component, variable))
        self._dyn[i] = fn

    def check(self, component, variable, fn, vi=None):
        """Extra validation for SetVariables (dm_csms.set_many): fn(value) -> None to allow,
        or a reasonCode."""
        i = self._row(component, None, variable, vi)
        if i < 0:
            raise KeyError("%s.%s" % (component, variable))
        self._checks[i] = fn

    def max_limit(self, component, variable, evse=None, connector=None, vi=None):
        i = self._find(component, None, variable, vi, evse, connector)
        if i < 0:
            return None
        return self._max(i, evse or 0, connector or 0)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _supports(flags, a):
        return a == 0 or flags & (T.T_TARGET << (a - 1))

    @staticmethod
    def _persistent(flags):
        return flags & T.MUT_MASK != T.RO or flags & T.PERSIST

    def _max(self, i, e, c):
        """maxLimit of a row for one instance (EVSE Power is set from the hardware)."""
        return self._hi.get(_key(i, e, c, 0), self.rows[i][7])

    def _coerce(self, row, value):
        """A value from text (parsed) or JSON (ints widened for decimals) in the row's type."""
        if isinstance(value, str) and row[4] != T.STR:
            return self._parse(row, value)
        if row[4] == T.DEC and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def _store(self, i, e, c, a, value):
        k = _key(i, e, c, a)
        old = self._vals.get(k, _NONE)
        if old is _NONE:
            old = self.rows[i][9] if a == 0 else None
        if old == value and type(old) is type(value):
            return False
        if a == 0 and value == self.rows[i][9] and type(value) is type(self.rows[i][9]):
            self._vals.pop(k, None)
        else:
            self._vals[k] = value
        return True

    def _fire(self, row, value):
        for fn in self._listeners:
            try:
                fn(row[0], row[1], value)
            except Exception as ex:  # a broken listener must not undo an accepted change
                try:
                    from firmware import log
                    log.exc("dm", "listener failed", ex)
                except Exception:
                    pass

    # ---------------------------------------------------------------- values from text
    def _parse(self, row, s):
        """Convert the OCPP text form into the row's type; ValueError when malformed."""
        dt = row[4]
        if dt == T.INT:
            if not _is_int_text(s):
                raise ValueError("InvalidValue")
            return int(s)
        if dt == T.DEC:
            for ch in s:
                if ch not in "0123456789.+-eE":
                    raise ValueError("InvalidValue")
            v = float(s)  # raises ValueError itself when malformed
            return v
        if dt == T.BOOL:
            low = s.lower()
            if low == "true":
                return True
            if low == "false":
                return False
            raise ValueError("InvalidValue")
        if dt == T.DT:
            parse_iso8601(s)
            return s
        if dt in _LISTS:
            items = s.split(",") if s else []
            allowed = row[8].split(",") if row[8] else None
            seen = []
            for it in items:
                if not it or it in seen or (allowed is not None and it not in allowed):
                    raise ValueError("InvalidValue")
                seen.append(it)
            if dt == T.OPT and len(items) != 1:
                raise ValueError("InvalidValue")
            if dt == T.SEQ and not items:
                raise ValueError("InvalidValue")
        return s

    # ---------------------------------------------------------------- persistence
    def _pkey(self, k):
        # "Comp[#ci][@evse[.conn]]/Var[#vi][:Attr]", read back by dm_boot.load
        i, e, c, a = _unkey(k)
        r = self.rows[i]
        s = r[0]
        if e:
            s += "@%d" % e if not c else "@%d.%d" % (e, c)
        s += "/" + (r[1] if r[2] is None else r[1] + "#" + r[2])
        return s if not a else s + ":" + T.ATTRS[a]

    def save(self):
        """Write the persistent values that differ from their defaults (one document)."""
        doc = {}
        for k, v in self._vals.items():
            i = _unkey(k)[0]
            if self._persistent(self.rows[i][3]):
                doc[self._pkey(k)] = v
        self.store.save(DOC, doc)
