# What the device model does once, when it is made: the values the hardware gives (phases,
# connector type, the EVSE Power maxLimit) and the saved values read back from dm.json.
# Imported by DeviceModel() and dropped again right after, so its code is not resident.
from firmware.device_model import DOC, NOMINAL_VOLTAGE, _attr_code, _key


def hardware(dm, evses):
    phases = 0
    for ev in evses:
        e = ev.id
        phases = max(phases, ev.phases)
        for comp, var, c, v in (("EVSE", "SupplyPhases", 0, ev.phases),
                                ("Connector", "SupplyPhases", 1, ev.phases),
                                ("Connector", "ConnectorType", 1, ev.connector_type)):
            i = dm._row(comp, None, var, None)
            if i >= 0:
                dm._store(i, e, c, 0, v)
        i = dm._row("EVSE", None, "Power", None)
        if i >= 0:
            # the rating, not max_current: a board's PP sets that to 0 without a cable
            amps = getattr(ev, "rated_current", ev.max_current)
            dm._hi[_key(i, e, 0, 0)] = float(amps * ev.phases * NOMINAL_VOLTAGE)
    i = dm._row("ChargingStation", None, "SupplyPhases", None)
    if i >= 0 and evses:
        dm._store(i, 0, 0, 0, phases)


def load(dm):
    """The saved values (keys as DeviceModel._pkey writes them); entries this firmware no
    longer has, or cannot read, are left out."""
    doc = dm.store.load(DOC, None)
    if not isinstance(doc, dict):
        return
    for pk, v in doc.items():
        try:
            cpart, vpart = pk.split("/", 1)
            a = 0
            if ":" in vpart:
                vpart, an = vpart.split(":", 1)
                a = _attr_code(an)
            e = c = 0
            if "@" in cpart:
                cpart, loc = cpart.split("@", 1)
                if "." in loc:
                    loc, cs = loc.split(".", 1)
                    c = int(cs)
                e = int(loc)
            comp, ci = (cpart.split("#", 1) + [None])[:2]
            var, vi = (vpart.split("#", 1) + [None])[:2]
            i = dm._find(comp, ci, var, vi, e or None, c or None)
        except (ValueError, AttributeError):
            continue
        if i < 0 or a < 0 or not dm._persistent(dm.rows[i][3]):
            continue  # a variable this firmware no longer has
        try:
            v = dm._coerce(dm.rows[i], v)
        except ValueError:
            continue
        dm._store(i, e, c, a, v)
