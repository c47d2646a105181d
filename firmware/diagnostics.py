# Diagnostics block (OCPP 2.0.1 part 2, N): NotifyEvent for hardware faults (N07 alerts).
#
# Every safety fault that appears or clears ("fault" / "fault_cleared" station events from
# the EVSE block) becomes one eventData on the standard component and variable for that
# fault (part 2 appendix 3.2), trigger Delta (a boolean state variable changed value; that
# is also what TC_G_20 expects for a lock failure, G05.FR.02), eventNotificationType
# HardWiredNotification, techCode = our fault name, cleared = true when it recovers.
#
# These events are not transaction-related, so they do not go through the persistent
# message queue: they are sent with station.call, a batch per NotifyEvent (seqNo 0, tbc
# false). While offline up to MAX_PENDING events wait in RAM (the oldest go first when it
# overflows) and leave after the reconnect; a batch the CSMS refuses or does not answer
# ATTEMPTS times is dropped.
from firmware import compat, log
from firmware.msg_queue import send_loop

# fault name -> (component, variable, on the connector rather than the EVSE)
FAULTS = {
    "rcd": ("RCD", "Tripped", False),
    "contactor": ("PowerContactor", "Problem", False),       # close/open failed
    "welding": ("PowerContactor", "Tripped", False),         # mirror contact tripped
    "lock": ("ConnectorPlugRetentionLock", "Problem", True),
    "pilot": ("CPPWMController", "Problem", True),
    "diode": ("CPPWMController", "Problem", True),
    "overtemp": ("TemperatureSensor", "Active", False),      # over MaxSet
    "meter": ("FiscalMetering", "Problem", False),           # read error
}
MAX_PENDING = 8
BATCH = 4
ATTEMPTS = 3
RETRY_MS = 2000
ID_BLOCK = 32  # eventIds reserved on flash per write, so ids stay unique across reboots
DOC = "events.json"


class Block:
    def __init__(self, station):
        self.st = station
        # the diagnostics log on flash (firmware.log), uploaded by GetLog (firmware.get_log);
        # a board may give its cap in bytes (log_bytes), else log.FILE_TOTAL
        log.open_file(station.store.dir, getattr(station.board, "log_bytes", log.FILE_TOTAL))
        import os
        for n in os.listdir(station.store.dir):  # upload copies a power cut left behind
            if n.startswith("getlog.tmp"):
                station.store.remove(n)
        self.pending = []
        self._wake = compat.asyncio.Event()
        d = station.store.load(DOC) or {}
        self._next = d.get("next", 1)
        self._limit = self._next  # reserve on first use
        station.on("fault", self._on_fault)
        station.on("fault_cleared", self._on_cleared)
        station.on("start", self._on_start)
        station.on("connected", self._wake.set)
        station.on("boot_accepted", self._wake.set)

    def _event_id(self):
        if self._next >= self._limit:
            self._limit = self._next + ID_BLOCK
            try:
                self.st.store.save(DOC, {"next": self._limit})
            except OSError as e:
                log.warn("diag", "eventId block not saved: %s" % (e,))
        n = self._next
        self._next += 1
        return n

    def _on_fault(self, evse_id, name):
        self.notify(evse_id, name, False)

    def _on_cleared(self, evse_id, name):
        self.notify(evse_id, name, True)

    def notify(self, evse_id, name, cleared):
        comp, var, on_conn = FAULTS.get(name, ("EVSE", "Problem", False))
        evse = {"id": evse_id}
        if on_conn:
            evse["connectorId"] = 1
        data = {"eventId": self._event_id(), "timestamp": compat.iso8601(),
                "trigger": "Delta", "actualValue": "false" if cleared else "true",
                "techCode": name[:50], "cleared": cleared,
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": comp, "evse": evse}, "variable": {"name": var}}
        tx = self.st.blocks.get("transactions")
        t = tx.active(evse_id) if tx is not None else None
        if t is not None:
            data["transactionId"] = t["id"]
        if len(self.pending) >= MAX_PENDING:
            old = self.pending.pop(0)
            log.warn("diag", "NotifyEvent %d dropped: buffer full" % old["eventId"])
        self.pending.append(data)
        self._wake.set()

    def _on_start(self):
        self.st.spawn(send_loop(self.st, self._wake, self._head, self._done, _policy, "diag"))

    def _head(self):
        # a fresh batch and generatedAt for every attempt; kept while offline
        if not self.pending:
            return None
        return "NotifyEvent", {"generatedAt": compat.iso8601(), "seqNo": 0, "tbc": False,
                               "eventData": self.pending[:BATCH]}, None, None

    def _done(self, item, resp, err):
        # answered or given up: either way the batch leaves
        batch = item[1]["eventData"]
        self.pending = [x for x in self.pending if not [d for d in batch if d is x]]


def _policy(action, attempts):
    return ATTEMPTS, RETRY_MS
