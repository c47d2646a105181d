"""OCPP 2.0.1 payload validation against the official schemas, sized for the device.

tools/gen_schemas.py compiles the schemas into firmware/schemas.bin (layout and node
encoding are described there). Nothing is loaded at import: a check opens the file,
finds the action by binary search in the name table, reads the action's record and
the shared records it references (one bounded read each, cached for that call only)
and walks the payload alongside. The walk follows the schema, so recursion depth is
the schema's (at most 14 levels), never the payload's, and nothing is allocated on
the success path beyond the decoded records.

Error codes (OCPP-J 2.0.1 edition 3, part 4 table 8; the errata change none of them):
- FormatViolation ("payload syntactically incorrect"): the payload is not a JSON
  object, or an object carries a property its schema does not define
  (additionalProperties false). ProtocolError ("not conform the PDU structure") is
  left to the RPC layer for broken frames.
- OccurrenceConstraintViolation: a required property is missing, or an array has
  fewer than minItems / more than maxItems elements. Both are the cardinality
  column ("Card.", e.g. 1..*) of the part 2 message tables, i.e. occurrence
  constraints. Spelled as in edition 3 (the 2020 text had "Occurence").
- TypeConstraintViolation: wrong JSON type, including null, and booleans where a
  number is expected. As in JSON schema draft 6, 3.0 is accepted as an integer.
- PropertyConstraintViolation: right type, invalid value: maxLength/minLength,
  enum, minimum/maximum, date-time that is not RFC 3339.

check_response is lenient about unknown properties (a CSMS may add fields the
station can ignore) and about date-times without UTC offset (read as UTC: some CSMS
libraries send them, and a refused BootNotificationResponse would keep the station from
ever booting, whereas a refused request at least shows the CSMS its error); everything
it needs is still checked. When the table is
missing or damaged, checks are skipped (None) and known_action accepts any name,
rather than refusing all traffic; table_ok() reports it. date-time strings longer
than 64 characters are refused without parsing (RFC 3339 allows unbounded fractions;
no real timestamp needs them).
"""
import json
import struct

from firmware.compat import parse_iso8601, path_exists

FORMAT = "FormatViolation"
OCCURRENCE = "OccurrenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
NOT_IMPLEMENTED = "NotImplemented"

_OBJECT, _STRING, _DATETIME, _ENUM, _INTEGER, _NUMBER, _BOOLEAN, _ARRAY, _ANY = range(9)
_HEADER_LEN = 12
_MAX_DESC = 255
_MAX_DATETIME = 64  # longer than any sane RFC 3339 stamp; caps the parse cost

try:
    _path = __file__.rsplit("/", 1)[0] + "/schemas.bin"
except NameError:
    _path = ""
# Frozen code has no directory of its own (its __file__ names no file), and a firmware/
# directory on the board's filesystem would hide the frozen package (sys.path has "" first):
# there the table sits at the root, copied by `tools deploy --frozen`.
if not path_exists(_path):
    _path = "schemas.bin"
_head = None  # (n_actions, n_records, name_width, offsets_at, max_record)
_last = (None, -1)  # last action looked up, and its index


def set_table(path):
    """Use another table file (tests, or a ROMFS location on the board)."""
    global _path, _head, _last
    _path = path
    _head = None
    _last = (None, -1)


def _open():
    """(file, header) or (None, None) when the table cannot be used."""
    global _head
    try:
        f = open(_path, "rb")
    except OSError:
        return None, None
    if _head is None:
        b = f.read(_HEADER_LEN)
        if len(b) != _HEADER_LEN or b[:4] != b"OSV1":
            f.close()
            return None, None
        n, nrec, width, _depth, maxrec = struct.unpack("<HHBBH", b[4:])
        _head = (n, nrec, width, _HEADER_LEN + n * width, maxrec)
    return f, _head


def table_ok():
    f, h = _open()
    if f is None:
        return False
    f.close()
    return True


def _find(f, h, action):
    global _last
    if _last[0] == action:
        return _last[1]
    n, width = h[0], h[2]
    if not isinstance(action, str) or not action or len(action) > width:
        return -1
    key = action.encode()
    lo, hi = 0, n
    found = -1
    while lo < hi:
        mid = (lo + hi) // 2
        f.seek(_HEADER_LEN + mid * width)
        name = f.read(width).rstrip(b"\0")
        if name == key:
            found = mid
            break
        if name < key:
            lo = mid + 1
        else:
            hi = mid
    _last = (action, found)
    return found


def known_action(action):
    """True when `action` is an OCPP 2.0.1 message (it has a Request schema)."""
    f, h = _open()
    if f is None:
        return isinstance(action, str) and action != ""
    try:
        return _find(f, h, action) >= 0
    finally:
        f.close()


class _Walk:
    def __init__(self, f, h, strict):
        self.f = f
        self.h = h
        self.strict = strict
        self.cache = {}

    def record(self, i):
        node = self.cache.get(i)
        if node is None:
            h = self.h
            if not 0 <= i < h[1]:
                raise ValueError("bad record %d" % i)
            self.f.seek(h[3] + 4 * i)
            a, b = struct.unpack("<II", self.f.read(8))
            if not 0 < b - a <= h[4]:
                raise ValueError("bad record %d" % i)
            self.f.seek(a)
            node = json.loads(self.f.read(b - a))
            self.cache[i] = node
        return node

    def check(self, node, v):
        """None, or (code, path relative to v, message)."""
        while type(node) is int:
            node = self.record(node)
        k = node[0]
        if k == _OBJECT:
            if type(v) is not dict:
                return _type_error("object", v)
            return self.check_object(node, v)
        if k == _ARRAY:
            if type(v) is not list:
                return _type_error("array", v)
            n = len(node)
            count = len(v)
            if count < (node[2] if n > 2 else 0):
                return (OCCURRENCE, "", "%d items, minItems is %d" % (count, node[2]))
            if n > 3 and node[3] is not None and count > node[3]:
                return (OCCURRENCE, "", "%d items, maxItems is %d" % (count, node[3]))
            item = node[1]
            for i in range(count):
                err = self.check(item, v[i])
                if err is not None:
                    return _under("[%d]" % i, err)
            return None
        if k == _ANY:
            return None
        if k == _STRING or k == _ENUM or k == _DATETIME:
            if type(v) is not str:
                return _type_error("string", v)
            if k == _ENUM:
                for i in range(1, len(node)):
                    if node[i] == v:
                        return None
                return (PROPERTY, "", "%s not in enum" % _show(v))
            if k == _DATETIME:
                if _datetime_ok(v, self.strict):
                    return None
                return (PROPERTY, "", "%s is not an RFC 3339 date-time" % _show(v))
            n = len(node)
            if n > 1 and node[1] is not None and len(v) > node[1]:
                return (PROPERTY, "", "length %d exceeds maxLength %d" % (len(v), node[1]))
            if n > 2 and len(v) < node[2]:
                return (PROPERTY, "", "length %d below minLength %d" % (len(v), node[2]))
            return None
        if k == _BOOLEAN:
            if type(v) is not bool:
                return _type_error("boolean", v)
            return None
        # integer or number; bool is an int subclass on CPython, hence the exact checks
        t = type(v)
        if k == _INTEGER:
            if not (t is int or (t is float and v % 1 == 0)):
                return _type_error("integer", v)
        elif t is not int and t is not float:
            return _type_error("number", v)
        n = len(node)
        if n > 1 and node[1] is not None and v < node[1]:
            return (PROPERTY, "", "%s below minimum %s" % (_show(v), node[1]))
        if n > 2 and node[2] is not None and v > node[2]:
            return (PROPERTY, "", "%s above maximum %s" % (_show(v), node[2]))
        return None

    def check_object(self, node, v):
        required = node[2]
        bit = 1
        seen = 0
        for i in range(3, len(node), 2):
            name = node[i]
            if name in v:
                seen += 1
                err = self.check(node[i + 1], v[name])
                if err is not None:
                    return _under(name, err)
            elif required & bit:
                return (OCCURRENCE, name, "required property missing")
            bit <<= 1
        if seen < len(v) and not node[1] and self.strict:
            # Name the smallest unknown key so the answer does not depend on dict order.
            extra = None
            for key in v:
                key = str(key)
                if not _defines(node, key) and (extra is None or key < extra):
                    extra = key
            return (FORMAT, extra[:40], "property not allowed")
        return None


def _defines(node, key):
    for i in range(3, len(node), 2):
        if node[i] == key:
            return True
    return False


def _under(step, err):
    """Prefix a relative error path with one more step (a property name or [i])."""
    sub = err[1]
    if sub and sub[0] != "[":
        sub = "." + sub
    return (err[0], step + sub, err[2])


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"))


def _type_error(want, v):
    got = "null"
    for t, name in _JSON_TYPES:
        if type(v) is t:
            got = name
            break
    return (TYPE, "", "expected %s, got %s" % (want, got))


def _show(v):
    if type(v) is str:
        if len(v) > 40:
            return repr(v[:40]) + "..."
        return repr(v)
    return str(v)


_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def _datetime_ok(s, strict):
    """RFC 3339 shape; parse_iso8601 checks separators and ranges, this the digits. Not
    strict (responses): a date-time without UTC offset passes, read as UTC."""
    n = len(s)
    if n < 19 or n > _MAX_DATETIME or (strict and n < 20):
        return False
    for i in _DIGITS:
        if not "0" <= s[i] <= "9":
            return False
    if s[n - 1] not in "Zz":
        if n >= 25 and s[n - 6] in "+-":  # the offset's digits (int() would take " 1", "+1")
            for i in (n - 5, n - 4, n - 2, n - 1):
                if not "0" <= s[i] <= "9":
                    return False
        elif strict:
            return False
    try:
        parse_iso8601(s, not strict)
    except ValueError:
        return False
    return True


def _run(action, payload, slot, strict):
    f, h = _open()
    if f is None:
        return None
    try:
        i = _find(f, h, action)
        if i < 0:
            return (NOT_IMPLEMENTED, "unknown action %s" % _show(action))
        if type(payload) is not dict:
            return (FORMAT, "payload must be a JSON object")
        err = _Walk(f, h, strict).check(2 * i + slot, payload)
    finally:
        f.close()
    if err is None:
        return None
    desc = err[2] if not err[1] else err[1] + ": " + err[2]
    return (err[0], desc[:_MAX_DESC])


def check_request(action, payload):
    """None when `payload` is a valid `action` request, else (error_code, description)."""
    return _run(action, payload, 0, True)


def check_response(action, payload):
    """Like check_request for the response to our own `action` call, ignoring unknown
    properties."""
    return _run(action, payload, 1, False)
