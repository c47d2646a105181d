# Functional block B (device model part): GetVariables (B06), SetVariables (B05) and
# GetBaseReport -> NotifyReport (B07). The semantics live in firmware.dm_csms; this block
# enforces the message limits and streams reports part by part.
import json

from firmware import compat
from firmware.rpc import CallError

BORROWED = ("firmware.dm_csms",)  # given back when the block is unloaded (compat.unload)
compat.borrow_all(BORROWED, __name__)  # the console borrows it too
from firmware import dm_csms

DEV = "DeviceDataCtrlr"
# NotifyReport frame without reportData items (id, requestId, generatedAt, seqNo, tbc).
REPORT_OVERHEAD = 200


def _next(gen):
    try:
        return json.dumps(next(gen))
    except StopIteration:
        return None


class Block:
    def __init__(self, station):
        self.st = station
        self.reporting = False
        rpc = station.rpc
        rpc.register("GetVariables", self.get_variables)
        rpc.register("SetVariables", self.set_variables)
        rpc.register("GetBaseReport", self.get_base_report)

    def _limits(self, instance):
        dm = self.st.dm
        return (dm.get(DEV, "ItemsPerMessage", vi=instance) or 0,
                dm.get(DEV, "BytesPerMessage", vi=instance) or 0)

    def _check_request(self, instance, items):
        n, b = self._limits(instance)
        if n and len(items) > n:
            raise CallError("OccurrenceConstraintViolation",
                            "%d items, ItemsPerMessage %s is %d" % (len(items), instance, n))
        if b and self.st.rpc.frame_len > b:
            raise CallError("FormatViolation", "request exceeds BytesPerMessage %s (%d)" % (instance, b))

    # ---------------------------------------------------------------- B06
    def get_variables(self, payload):
        items = payload.get("getVariableData") or []
        self._check_request("GetVariables", items)
        dm = self.st.dm
        return {"getVariableResult": [dm_csms.get(dm, it) for it in items]}

    # ---------------------------------------------------------------- B05
    def set_variables(self, payload):
        items = payload.get("setVariableData") or []
        self._check_request("SetVariables", items)
        return {"setVariableResult": dm_csms.set_many(self.st.dm, items)}

    # ---------------------------------------------------------------- B07
    def get_base_report(self, payload):
        try:
            gen = dm_csms.report(self.st.dm, payload.get("reportBase"))
        except ValueError:
            return {"status": "NotSupported"}
        if self.reporting:  # B07.FR.13: one report at a time keeps the heap bounded
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidMessageSeq",
                                                         "additionalInfo": "report in progress"}}
        request_id = payload.get("requestId")

        async def after():
            await self.send_report(request_id, gen)

        return {"status": "Accepted"}, after

    async def send_report(self, request_id, gen):
        """Send NotifyReport parts built one at a time from `gen`: seqNo from 0, tbc on all
        but the last, each part within ItemsPerMessage/BytesPerMessage[GetReport]."""
        if self.reporting:
            return
        self.reporting = True
        try:
            n, b = self._limits("GetReport")
            seq = 0
            pending = _next(gen)
            while True:
                # Items are serialised as they are generated, so only their JSON text is
                # held for a part, never 16 trees of dicts (~15 KB on 64-bit MicroPython).
                batch = []
                size = REPORT_OVERHEAD
                while pending is not None:
                    s = len(pending) + 1
                    if batch and ((n and len(batch) >= n) or (b and size + s > b)):
                        break
                    batch.append(pending)
                    size += s
                    pending = _next(gen)
                    await compat.sleep_ms(0)
                # JSON pieces: the frame is joined once in rpc (one big string per part)
                payload = ['{"requestId":%s,"generatedAt":"%s","seqNo":%d' % (
                    json.dumps(request_id), compat.iso8601(), seq)]
                for i in range(len(batch)):
                    payload.append(("," if i else ',"reportData":[') + batch[i])
                if batch:
                    payload.append("]")
                payload.append(',"tbc":true}' if pending is not None else "}")
                batch = None
                await self.st.call("NotifyReport", payload)
                payload = None
                seq += 1
                if pending is None:
                    return
                await compat.sleep_ms(0)
        except Exception as e:  # offline or refused: the CSMS may ask again
            self.st.log("warn", "NotifyReport %s stopped: %r" % (request_id, e))
        finally:
            self.reporting = False
