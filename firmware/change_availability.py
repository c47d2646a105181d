# Availability block, ChangeAvailability part (G03/G04): sets the station, an EVSE or its
# connector Operative or Inoperative. Loaded on demand (station.ON_DEMAND); the three levels
# (avail.json) and applying them to the EVSEs stay in the resident firmware.availability.
from firmware import log
from firmware.availability import DOC


def _rejected(reason):
    return {"status": "Rejected", "statusInfo": {"reasonCode": reason}}


class Block:
    def __init__(self, station):
        self.st = station
        station.rpc.register("ChangeAvailability", self.change)

    def change(self, p):
        av = self.st.blocks["availability"]
        op = p["operationalStatus"] == "Operative"
        d = {"cs": av.doc["cs"], "off": list(av.doc["off"]), "coff": list(av.doc["coff"])}
        ids = self.st.board.ids
        e = p.get("evse")
        if e and e.get("id"):  # evse.id 0 is the station itself
            i = e["id"]
            c = e.get("connectorId")
            if i not in ids:
                return _rejected("UnknownEvse")
            if c is not None and c != 1:
                return _rejected("UnknownConnectorId")
            lst = d["coff" if c else "off"]
            if op and i in lst:
                lst.remove(i)
            elif not op and i not in lst:
                lst.append(i)
            ids = [i]
        else:
            d["cs"] = op
        if d != av.doc:
            self.st.store.save(DOC, d)  # before the response: survives a power cut
            av.doc = d
        log.info("avail", "ChangeAvailability %s %s" % (p["operationalStatus"], e or "station"))

        async def after():  # the StatusNotifications follow the response (G03 step 4)
            self.st.blocks["availability"].sync(ids)

        return {"status": "Scheduled" if av.sync(ids, False) else "Accepted"}, after
