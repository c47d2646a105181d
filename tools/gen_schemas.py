"""Turn the official OCPP 2.0.1 JSON schemas into the device's compact table.

    python -m tools.gen_schemas [--out firmware/schemas.bin] [--schemas DIR]

The device never parses JSON schema. This tool (CPython only) flattens every
action's Request and Response schema into small JSON-encoded nodes, shares every
object or enum sub-schema that occurs more than once (whatever its definition
name), and writes one binary file that firmware/validate.py reads a record at a
time. The output depends only on the schema files, so regenerating is byte-stable.

File layout (little-endian):
    b"OSV1", u16 n_actions, u16 n_records, u8 name_width, u8 max_depth,
    u16 max_record_len
    name table   n_actions * name_width bytes, ASCII action names sorted, NUL padded
    offset table (n_records + 1) * u32 absolute offsets
    records      compact JSON; record 2*i is action i's Request, 2*i+1 its Response

Node encodings (a bare int is a reference to a record):
    [0, extra_ok, required_mask, name0, node0, name1, node1, ...]   object
    [1, maxLength|null, minLength]    string (trailing items omitted when default)
    [2]                               string, format date-time
    [3, "A", "B", ...]                string enum
    [4, minimum|null, maximum|null]   integer
    [5, minimum|null, maximum|null]   number
    [6]                               boolean
    [7, item, minItems, maxItems|null] array
    [8]                               any JSON value (DataTransfer's data)
"""
import argparse
import json
import os
import struct
import sys

MAGIC = b"OSV1"
HEADER = struct.Struct("<4sHHBBH")

OBJECT, STRING, DATETIME, ENUM, INTEGER, NUMBER, BOOLEAN, ARRAY, ANY = range(9)

# Keywords that carry no validation meaning for us; anything else unknown is an error,
# so a future schema using e.g. "pattern" cannot be silently under-checked.
_IGNORED = {"$schema", "$id", "id", "comment", "description", "javaType", "default",
            "definitions", "additionalItems"}
_HANDLED = {"type", "properties", "required", "additionalProperties", "items", "minItems",
            "maxItems", "maxLength", "minLength", "enum", "minimum", "maximum", "format",
            "$ref"}
# Small scalar nodes are cheaper inline than as a record plus a reference.
_SHARE_MIN_LEN = 24


def default_schema_dir():
    import ocpp
    return os.path.join(os.path.dirname(ocpp.__file__), "v201", "schemas")


def default_out():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "firmware", "schemas.bin")


def _dump(node):
    return json.dumps(node, separators=(",", ":"), ensure_ascii=True)


def _trim(node, defaults):
    """Drop trailing items that equal their default, e.g. [1, 36, 0] -> [1, 36]."""
    while len(node) > 1 and defaults and node[-1] == defaults[-1]:
        node.pop()
        defaults = defaults[:-1]
    return node


class _Converter:
    def __init__(self, doc, name):
        self.doc = doc
        self.name = name

    def convert(self, s, stack=()):
        unknown = set(s) - _IGNORED - _HANDLED
        if unknown:
            raise ValueError("%s: unsupported keywords %s" % (self.name, sorted(unknown)))
        if "$ref" in s:
            ref = s["$ref"]
            if not ref.startswith("#/definitions/"):
                raise ValueError("%s: unsupported $ref %s" % (self.name, ref))
            key = ref[len("#/definitions/"):]
            if key in stack:
                raise ValueError("%s: recursive definition %s" % (self.name, key))
            return self.convert(self.doc["definitions"][key], stack + (key,))
        t = s.get("type")
        if t == "object":
            props = s.get("properties", {})
            names = list(props)
            mask = 0
            for r in s.get("required", ()):
                if r not in props:
                    raise ValueError("%s: required %s is not a property" % (self.name, r))
                mask |= 1 << names.index(r)
            node = [OBJECT, 0 if s.get("additionalProperties", True) is False else 1, mask]
            for n in names:
                node.append(n)
                node.append(self.convert(props[n], stack))
            return node
        if t == "string":
            if "enum" in s:
                if "maxLength" in s or "minLength" in s or "format" in s:
                    raise ValueError("%s: enum with string limits" % self.name)
                return [ENUM] + list(s["enum"])
            if "format" in s:
                if s["format"] != "date-time" or "maxLength" in s or "minLength" in s:
                    raise ValueError("%s: unsupported format use" % self.name)
                return [DATETIME]
            return _trim([STRING, s.get("maxLength"), s.get("minLength", 0)], [None, 0])
        if t in ("integer", "number"):
            return _trim([INTEGER if t == "integer" else NUMBER, s.get("minimum"),
                          s.get("maximum")], [None, None])
        if t == "boolean":
            return [BOOLEAN]
        if t == "array":
            items = s.get("items")
            if not isinstance(items, dict):
                raise ValueError("%s: array needs a single items schema" % self.name)
            return _trim([ARRAY, self.convert(items, stack), s.get("minItems", 0),
                          s.get("maxItems")], [None, 0, None])
        if t is None and not set(s) & _HANDLED:
            return [ANY]
        raise ValueError("%s: unsupported type %r" % (self.name, t))


def load_actions(schema_dir):
    """{action: (request_tree, response_tree)} with every $ref expanded."""
    found = {}
    for fn in sorted(os.listdir(schema_dir)):
        if not fn.endswith(".json"):
            continue
        base = fn[:-5]
        for suffix, slot in (("Request", 0), ("Response", 1)):
            if base.endswith(suffix):
                with open(os.path.join(schema_dir, fn), encoding="utf-8-sig") as f:
                    doc = json.load(f)
                found.setdefault(base[:-len(suffix)], [None, None])[slot] = \
                    _Converter(doc, fn).convert(doc)
    for action, pair in found.items():
        if pair[0] is None or pair[1] is None:
            raise ValueError("%s lacks its Request or Response schema" % action)
    return {a: tuple(p) for a, p in found.items()}


def _shareable(node):
    return isinstance(node, list) and node[0] in (OBJECT, ENUM) and \
        len(_dump(node)) >= _SHARE_MIN_LEN


def _children(node):
    if node[0] == OBJECT:
        return node[4::2]
    if node[0] == ARRAY:
        return [node[1]]
    return []


def _count(node, counts):
    if _shareable(node):
        key = _dump(node)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] > 1:
            return  # its subtree was counted at its first sighting
    for c in _children(node):
        _count(c, counts)


def _depth(node):
    return 1 + max([_depth(c) for c in _children(node)] or [0])


class _Table:
    def __init__(self, counts, first_record):
        self.counts = counts
        self.records = []  # bodies of shared records, in creation order
        self.index = {}
        self.first = first_record

    def encode(self, node, root=False):
        """Node with shared sub-nodes replaced by record numbers (bottom-up)."""
        if not isinstance(node, list):
            return node
        out = list(node)
        if node[0] == OBJECT:
            for i in range(4, len(out), 2):
                out[i] = self.encode(node[i])
        elif node[0] == ARRAY:
            out[1] = self.encode(node[1])
        if not root and _shareable(node) and self.counts.get(_dump(node), 0) > 1:
            body = _dump(out)
            if body not in self.index:
                self.index[body] = self.first + len(self.records)
                self.records.append(body)
            return self.index[body]
        return out


def build(schema_dir=None):
    """The table file's bytes and a dict of figures about it."""
    actions = load_actions(schema_dir or default_schema_dir())
    names = sorted(actions)
    counts = {}
    for a in names:
        for tree in actions[a]:
            _count(tree, counts)
    roots_n = 2 * len(names)
    table = _Table(counts, roots_n)
    roots = []
    for a in names:
        for tree in actions[a]:
            key = _dump(tree)
            # An action root identical to a shared node (common for plain responses)
            # becomes a bare reference to it.
            if counts.get(key, 0) > 1 and _shareable(tree):
                roots.append(_dump(table.encode(tree)))
            else:
                roots.append(_dump(table.encode(tree, root=True)))
    bodies = [r.encode("ascii") for r in roots + table.records]
    width = max(len(a) for a in names)
    depth = max(_depth(t) for a in names for t in actions[a])
    max_len = max(len(b) for b in bodies)
    head = HEADER.pack(MAGIC, len(names), len(bodies), width, depth, max_len)
    name_table = b"".join(a.encode("ascii").ljust(width, b"\0") for a in names)
    start = len(head) + len(name_table) + 4 * (len(bodies) + 1)
    offsets = []
    for b in bodies:
        offsets.append(start)
        start += len(b)
    offsets.append(start)
    data = head + name_table + struct.pack("<%dI" % len(offsets), *offsets) + b"".join(bodies)
    figures = {"actions": len(names), "records": len(bodies), "shared": len(table.records),
               "bytes": len(data), "max_record": max_len, "max_depth": depth}
    return data, figures


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.gen_schemas", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=default_out(), help="table file to write")
    p.add_argument("--schemas", default=None, help="schema directory (default: the ocpp package's)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    data, fig = build(args.schemas)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    if not args.quiet:
        print("%s: %d actions, %d records (%d shared), %d bytes, largest record %d, depth %d"
              % (args.out, fig["actions"], fig["records"], fig["shared"], fig["bytes"],
                 fig["max_record"], fig["max_depth"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
