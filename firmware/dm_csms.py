# The device model as the CSMS (and the installer) sees it: GetVariables (B06), SetVariables
# (B05) and the base reports (B07), as functions of a firmware.device_model.DeviceModel.
# Only those requests, the console's get/set and the installer's settings need it, so it is
# not resident: the variables block and the console borrow it (compat.borrow) and the last
# to give it back drops it. It works on the model's internals
# (rows, values, checks) as a part of it kept in its own module.
from firmware import dm_table as T
from firmware.device_model import UNKNOWN_COMPONENT, UNKNOWN_VARIABLE, _attr_code


def text(value):
    """A typed value as the OCPP string form."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        s = repr(value)
        return s[:-2] if s.endswith(".0") else s
    return str(value)


def _report_text(v, limit):
    s = text(v)
    return s if limit is None or len(s) <= limit else s[:limit]  # None: no such limit


def redacted(dm, component, variable):
    """True for secrets: console and logs never print them."""
    for r in dm.rows:
        if r[0] == component and r[1] == variable and T.is_secret(r[3]):
            return True
    return False


def _value_size(dm):
    return dm.get("DeviceDataCtrlr", "ReportingValueSize")


# ---------------------------------------------------------------- component/variable lookup
def _find_csms(dm, comp, var):
    """Resolve ComponentType/VariableType dicts from the CSMS; names are case-insensitive
    and an empty instance counts as none (B06.FR.15)."""
    name = comp.get("name") or ""
    ci = comp.get("instance") or None
    vname = var.get("name") or ""
    vi = var.get("instance") or None
    ev = comp.get("evse")
    evse = conn = None
    if ev is not None:
        evse = ev.get("id")
        conn = ev.get("connectorId")
    i = dm._find(name, ci, vname, vi, evse, conn)
    if i != UNKNOWN_COMPONENT and i != UNKNOWN_VARIABLE:
        return i, evse, conn
    # Slow path: case-insensitive match over the table.
    name = (name if ci is None else name + "#" + ci).lower()
    vname = vname.lower()
    vi = vi.lower() if vi else None
    status = UNKNOWN_COMPONENT
    rows = dm.rows
    for j in rows.offsets():
        r = rows[j]
        if r[0].lower() != name:
            continue
        if not dm._instance_ok(r[3], evse, conn):
            continue
        status = UNKNOWN_VARIABLE
        if r[1].lower() == vname and (r[2].lower() if r[2] else None) == vi:
            return j, evse, conn
    return status, evse, conn


def _resolve(dm, item):
    """The result skeleton of a Get/SetVariableData item and its row: (res, i, e, c, a).
    i < 0 when the item names no supported variable attribute; res then has its status."""
    comp = item.get("component") or {}
    var = item.get("variable") or {}
    attr = item.get("attributeType") or "Actual"
    res = {"attributeType": attr, "component": comp, "variable": var}
    i, e, c = _find_csms(dm, comp, var)
    a = _attr_code(attr)
    if i == UNKNOWN_COMPONENT:
        res["attributeStatus"] = "UnknownComponent"
    elif i == UNKNOWN_VARIABLE:
        res["attributeStatus"] = "UnknownVariable"
    elif a < 0 or not dm._supports(dm.rows[i][3], a):
        res["attributeStatus"] = "NotSupportedAttributeType"
        i = -3
    return res, i, e or 0, c or 0, a


# ---------------------------------------------------------------- B06 GetVariables
def get(dm, item):
    """GetVariableResult for one GetVariableData (B06)."""
    res, i, e, c, a = _resolve(dm, item)
    if i < 0:
        return res
    if T.is_secret(dm.rows[i][3]):
        res["attributeStatus"] = "Rejected"
        res["attributeStatusInfo"] = {"reasonCode": "WriteOnly"}
        return res
    res["attributeStatus"] = "Accepted"
    res["attributeValue"] = _report_text(dm._value(i, e, c, a), _value_size(dm))
    return res


# ---------------------------------------------------------------- B05 SetVariables
def _in_range(dm, i, e, c, v):
    row = dm.rows[i]
    lo = row[6]
    hi = dm._max(i, e, c)
    if row[4] in (T.INT, T.DEC):
        return (lo is None or v >= lo) and (hi is None or v <= hi)
    if isinstance(v, str):
        return (hi is None or len(v) <= hi) and (lo is None or row[4] != T.STR or len(v) >= lo)
    return True


def set_many(dm, items, installer=False):
    """SetVariableResult list for a SetVariablesRequest (B05). All accepted values are
    saved in one write, then listeners run. installer=True (local configuration, not
    the CSMS) may also set ReadOnly values; every other check still applies."""
    results = []
    changed = []
    dirty = False
    max_len = dm.get("DeviceDataCtrlr", "ConfigurationValueSize")
    for item in items:
        res, i, e, c, a = _resolve(dm, item)
        results.append(res)
        if i < 0:
            continue
        row = dm.rows[i]
        reason = None
        raw = item.get("attributeValue")
        if row[3] & T.MUT_MASK == T.RO and not installer:
            reason = "ReadOnly"
        elif not isinstance(raw, str):
            reason = "InvalidValue"
        elif max_len is not None and len(raw) > max_len:
            reason = "TooLargeElement"
        else:
            try:
                value = dm._parse(row, raw)
            except ValueError:
                reason = "InvalidValue"
            else:
                if not _in_range(dm, i, e, c, value):
                    reason = "ValueOutOfRange"
                else:
                    chk = dm._checks.get(i)
                    if chk is not None:
                        reason = chk(value)
        if reason is not None:
            res["attributeStatus"] = "Rejected"
            res["attributeStatusInfo"] = {"reasonCode": reason}
            continue
        if dm._store(i, e, c, a, value):
            changed.append((row, value))
            dirty = dirty or dm._persistent(row[3])
        res["attributeStatus"] = "RebootRequired" if row[3] & T.REBOOT else "Accepted"
    if dirty:
        dm.save()
    for row, value in changed:
        dm._fire(row, value)
    return results


# ---------------------------------------------------------------- B07 reports
def report(dm, base):
    """Generator of ReportData dicts for a GetBaseReport reportBase, in a stable order
    (station components, then per EVSE its EVSE and connector components).
    Raises ValueError for an unsupported base."""
    if base == "FullInventory":
        want = 0
    elif base == "ConfigurationInventory":
        want = 1
    elif base == "SummaryInventory":
        want = 2
    else:
        raise ValueError(base)
    return _report(dm, want)


def _wanted(row, want):
    if want == 1:
        return row[3] & T.MUT_MASK != T.RO
    if want == 2:
        return row[1] in T.SUMMARY
    return True


def _report(dm, want):
    rows = dm.rows
    limit = _value_size(dm)
    scoped = []  # (offset, flags) of the wanted per-EVSE and per-connector rows
    for i in rows.offsets():
        r = rows[i]
        if not _wanted(r, want):
            continue
        if r[3] & (T.EVSE | T.CONN):
            scoped.append((i, r[3]))
        else:
            yield _report_data(dm, i, 0, 0, limit)
    for e in dm.evse_ids:
        for scope, c in ((T.EVSE, 0), (T.CONN, 1)):
            for i, f in scoped:
                if f & scope:
                    yield _report_data(dm, i, e, c, limit)


def _report_data(dm, i, e, c, limit):
    r = dm.rows[i]
    f = r[3]
    name = r[0].split("#", 1)
    comp = {"name": name[0]}
    if len(name) > 1:
        comp["instance"] = name[1]
    if e:
        comp["evse"] = {"id": e, "connectorId": c} if c else {"id": e}
    var = {"name": r[1]}
    if r[2] is not None:
        var["instance"] = r[2]
    mut = T.MUTABILITY[f & T.MUT_MASK]
    secret = T.is_secret(f)
    attrs = []
    for a in range(4):
        if not dm._supports(f, a):
            continue
        va = {"type": T.ATTRS[a], "mutability": mut,
              "persistent": bool(dm._persistent(f)), "constant": bool(f & T.CONST)}
        if not secret:
            va["value"] = _report_text(dm._value(i, e, c, a), limit)
        attrs.append(va)
    ch = {"dataType": r[4], "supportsMonitoring": False}
    if r[5] is not None:
        ch["unit"] = r[5]
    if r[6] is not None and r[4] in (T.INT, T.DEC):
        ch["minLimit"] = r[6]
    hi = dm._max(i, e, c)
    if hi is not None:
        ch["maxLimit"] = hi
    if r[8] is not None:
        ch["valuesList"] = r[8]
    return {"component": comp, "variable": var, "variableAttribute": attrs,
            "variableCharacteristics": ch}
