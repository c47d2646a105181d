# The device model's definitions (OCPP 2.0.1 part 2 appendix "Referenced Components and
# Variables", dm_components_vars.csv). The table is one text constant, a row per line, so
# it stays in flash with frozen or ROMFS code and costs one object in RAM otherwise (as
# tuples it took 13 KB of heap on the 64-bit port). Rows are parsed when they are read;
# current values live in firmware.device_model.
#
# Row: component|variable|variable instance|flags|type|unit|minLimit|maxLimit|valuesList|default
#   component: "Name" or "Name#instance"; an empty field is "none".
#   flags: mutability r (ReadOnly) w (ReadWrite) o (WriteOnly), then any of
#     P persistent  C constant  B reboot required  S secret  E per EVSE  N per connector
#     D computed on every read  T/L/H attributes Target/MinSet/MaxSet supported
#   type: i integer  d decimal  b boolean  s string  t dateTime  o OptionList
#     q SequenceList  m MemberList
#   For string-like types maxLimit is the maximum length; a minLimit on a string row is the
#   minimum length (checked on SetVariables, never reported).
#   valuesList: $M measurands, $T transaction points, $A availability states (below).
#   default: typed by the row's type; '' is the empty string.
# Requirement ids per component: OCPPCommCtrlr B01..B04, B09/B10 and part 4 (retry back-off,
# keep-alive); DeviceDataCtrlr B05..B08; SecurityCtrlr A00..A05; AuthCtrlr C01..C16;
# AuthCacheCtrlr C10..C12; LocalAuthListCtrlr D01, D02, C13, C14; TxCtrlr E01..E14;
# SampledDataCtrlr J02; AlignedDataCtrlr J01; SmartChargingCtrlr K01..K10 (Entries' maxLimit
# and PeriodsPerSchedule / ProfileStackLevel bound what smart_charging keeps) and K11..K13
# (external limits: ExternalControlSignalsEnabled gates NotifyChargingLimit /
# ClearedChargingLimit); ChargingStation/EVSE/Connector part 2
# appendix 3 (phases, power limit and connector type are set per instance from hal.Evse).
from firmware.compat import const

# Flags as parsed: mutability in the low two bits, then one bit per letter of FLAG_LETTERS.
RO = const(0)
RW = const(1)
WO = const(2)
MUT_MASK = const(3)
PERSIST = const(4)   # kept across reboots (implied for RW and WO)
CONST = const(8)     # never changes at run time (reported as constant)
REBOOT = const(16)   # a SetVariables change takes effect after a reboot
SECRET = const(32)   # never printed, reported or returned
EVSE = const(64)     # one instance per EVSE (component.evse.id)
CONN = const(128)    # one instance per connector (evse.id + connectorId 1)
DYN = const(256)     # Actual computed on every read (see DeviceModel.provide)
T_TARGET = const(512)  # attribute Target supported
T_MINSET = const(1024)
T_MAXSET = const(2048)
FLAG_LETTERS = "PCBSENDTLH"

MUTABILITY = ("ReadOnly", "ReadWrite", "WriteOnly")
ATTRS = ("Actual", "Target", "MinSet", "MaxSet")

INT = "integer"
DEC = "decimal"
BOOL = "boolean"
STR = "string"
DT = "dateTime"
OPT = "OptionList"
SEQ = "SequenceList"
MEM = "MemberList"
TYPES = {"i": INT, "d": DEC, "b": BOOL, "s": STR, "t": DT, "o": OPT, "q": SEQ, "m": MEM}

# Measurands this firmware can take from firmware.hal.Meter / the pilot.
MEASURANDS = "Current.Import,Current.Offered,Energy.Active.Import.Register,Power.Active.Import,Voltage"
# Transaction start/stop points (E01) this station can detect. ParkingBayOccupancy (no bay
# sensor) and DataSigned (no signing meter) are left out so a CSMS setting them is told so.
TX_POINTS = "EVConnected,Authorized,PowerPathClosed,EnergyTransfer"
AVAILABILITY = "Available,Occupied,Reserved,Unavailable,Faulted"
_MACROS = {"$M": MEASURANDS, "$T": TX_POINTS, "$A": AVAILABILITY}

# Message limits the firmware enforces (ItemsPerMessage / BytesPerMessage, 16 and 4096 in
# the table) are sized for the ESP32 heap: a NotifyReport part of 4 KB is built, sent and
# dropped before the next.
ITEMS = const(16)
BYTES = const(4096)

TABLE = """
OCPPCommCtrlr|ActiveNetworkProfile||rP|i||0|8||1
OCPPCommCtrlr|FileTransferProtocols||rC|m||||HTTP,HTTPS|HTTP,HTTPS
OCPPCommCtrlr|HeartbeatInterval||w|i|s|1|86400||300
OCPPCommCtrlr|MessageTimeout|Default|rC|i|s|1|600||30
OCPPCommCtrlr|MessageAttemptInterval|TransactionEvent|w|i|s|1|3600||10
OCPPCommCtrlr|MessageAttempts|TransactionEvent|w|i||1|100||3
OCPPCommCtrlr|NetworkConfigurationPriority||w|q|||40|0,1,2|1
OCPPCommCtrlr|NetworkProfileConnectionAttempts||w|i||1|100||3
OCPPCommCtrlr|OfflineThreshold||w|i|s|0|86400||60
OCPPCommCtrlr|ResetRetries||w|i||0|10||2
OCPPCommCtrlr|RetryBackOffRandomRange||w|i|s|0|3600||10
OCPPCommCtrlr|RetryBackOffRepeatTimes||w|i||0|20||5
OCPPCommCtrlr|RetryBackOffWaitMinimum||w|i|s|1|3600||10
OCPPCommCtrlr|UnlockOnEVSideDisconnect||w|b|||||true
OCPPCommCtrlr|WebSocketPingInterval||w|i|s|0|3600||30
DeviceDataCtrlr|BytesPerMessage|GetReport|rC|i|B||||4096
DeviceDataCtrlr|BytesPerMessage|GetVariables|rC|i|B||||4096
DeviceDataCtrlr|BytesPerMessage|SetVariables|rC|i|B||||4096
DeviceDataCtrlr|ConfigurationValueSize||rC|i||1|1000||1000
DeviceDataCtrlr|ItemsPerMessage|GetReport|rC|i|||||16
DeviceDataCtrlr|ItemsPerMessage|GetVariables|rC|i|||||16
DeviceDataCtrlr|ItemsPerMessage|SetVariables|rC|i|||||16
DeviceDataCtrlr|ReportingValueSize||rC|i||1|2500||2500
ClockCtrlr|DateTime||rD|t|||||
ClockCtrlr|TimeAdjustmentReportingThreshold||w|i|s|0|86400||60
ClockCtrlr|TimeSource||w|q||||Heartbeat,RealTimeClock|Heartbeat
SecurityCtrlr|BasicAuthPassword||oS|s||16|40||
SecurityCtrlr|AdditionalRootCertificateCheck||rP|b|||||false
SecurityCtrlr|CertificateEntries||rD|i||0|8||0
SecurityCtrlr|CertSigningRepeatTimes||w|i||0|10||3
SecurityCtrlr|CertSigningWaitMinimum||w|i|s|0|86400||60
SecurityCtrlr|Identity||rP|s||1|48||
SecurityCtrlr|MaxCertificateChainSize||rC|i||0|10000||10000
SecurityCtrlr|OrganizationName||w|s|||50||''
SecurityCtrlr|SecurityProfile||rP|i||0|3||1
AuthCtrlr|AuthorizeRemoteStart||w|b|||||true
AuthCtrlr|DisableRemoteAuthorization||w|b|||||false
AuthCtrlr|Enabled||w|b|||||true
AuthCtrlr|LocalAuthorizeOffline||w|b|||||true
AuthCtrlr|LocalPreAuthorize||w|b|||||false
AuthCtrlr|MasterPassGroupId||w|s|||36||
AuthCtrlr|OfflineTxForUnknownIdEnabled||w|b|||||false
AuthCacheCtrlr|Available||rC|b|||||true
AuthCacheCtrlr|DisablePostAuthorize||w|b|||||false
AuthCacheCtrlr|Enabled||w|b|||||true
AuthCacheCtrlr|LifeTime||w|i|s|0|31536000||86400
AuthCacheCtrlr|Policy||w|o||||LRU|LRU
AuthCacheCtrlr|Storage||r|i|B||4096||0
LocalAuthListCtrlr|Available||rC|b|||||true
LocalAuthListCtrlr|BytesPerMessage||rC|i|B||||4096
LocalAuthListCtrlr|DisablePostAuthorize||w|b|||||false
LocalAuthListCtrlr|Enabled||w|b|||||true
LocalAuthListCtrlr|Entries||r|i|||100||0
LocalAuthListCtrlr|ItemsPerMessage||rC|i|||||16
LocalAuthListCtrlr|Storage||r|i|B||16384||0
TxCtrlr|EVConnectionTimeOut||w|i|s|1|3600||60
TxCtrlr|MaxEnergyOnInvalidId||w|i|Wh|0|1000000||0
TxCtrlr|StopTxOnEVSideDisconnect||w|b|||||true
TxCtrlr|StopTxOnInvalidId||w|b|||||true
TxCtrlr|TxBeforeAcceptedEnabled||w|b|||||false
TxCtrlr|TxStartPoint||w|m||||$T|PowerPathClosed
TxCtrlr|TxStopPoint||w|m||||$T|EVConnected,Authorized
SampledDataCtrlr|Available||rC|b|||||true
SampledDataCtrlr|Enabled||w|b|||||true
SampledDataCtrlr|TxEndedInterval||w|i|s|0|86400||0
SampledDataCtrlr|TxEndedMeasurands||w|m||||$M|Energy.Active.Import.Register
SampledDataCtrlr|TxStartedMeasurands||w|m||||$M|Energy.Active.Import.Register
SampledDataCtrlr|TxUpdatedInterval||w|i|s|0|86400||60
SampledDataCtrlr|TxUpdatedMeasurands||w|m||||$M|Energy.Active.Import.Register,Power.Active.Import
AlignedDataCtrlr|Available||rC|b|||||true
AlignedDataCtrlr|Enabled||w|b|||||true
AlignedDataCtrlr|Interval||w|i|s|0|86400||900
AlignedDataCtrlr|Measurands||w|m||||$M|Energy.Active.Import.Register
AlignedDataCtrlr|SendDuringIdle||w|b|||||false
AlignedDataCtrlr|TxEndedInterval||w|i|s|0|86400||0
AlignedDataCtrlr|TxEndedMeasurands||w|m||||$M|Energy.Active.Import.Register
SmartChargingCtrlr|ACPhaseSwitchingSupported||rC|b|||||false
SmartChargingCtrlr|Available||rC|b|||||true
SmartChargingCtrlr|Enabled||w|b|||||true
SmartChargingCtrlr|Entries|ChargingProfiles|r|i||0|16||0
SmartChargingCtrlr|ExternalControlSignalsEnabled||w|b|||||true
SmartChargingCtrlr|LimitChangeSignificance||w|d||0|100||10.0
SmartChargingCtrlr|NotifyChargingLimitWithSchedules||w|b|||||false
SmartChargingCtrlr|PeriodsPerSchedule||rC|i|||||24
SmartChargingCtrlr|Phases3to1||rC|b|||||false
SmartChargingCtrlr|ProfileStackLevel||rC|i|||||10
SmartChargingCtrlr|RateUnit||rC|m||||A,W|A,W
ChargingStation|AllowNewSessionsPendingFirmwareUpdate||w|b|||||false
ChargingStation|AvailabilityState||r|o||||$A|Available
ChargingStation|Available||r|b|||||true
ChargingStation|SupplyPhases||rC|i||0|3||3
EVSE|AvailabilityState||rE|o||||$A|Available
EVSE|Available||rE|b|||||true
EVSE|Power||rE|d|W|0|||0.0
EVSE|SupplyPhases||rCE|i||0|3||3
Connector|AvailabilityState||rN|o||||$A|Available
Connector|Available||rN|b|||||true
Connector|ConnectorType||rCN|s|||||cType2
Connector|SupplyPhases||rCN|i||0|3||3
"""

# SummaryInventory (B07.FR.09): availability of the station, each EVSE and each connector.
SUMMARY = ("AvailabilityState",)


def is_secret(flags):
    """Secret or write-only: the value is never printed, reported or returned."""
    return flags & SECRET or flags & MUT_MASK == WO


def _num(s):
    return int(s) if s else None


def parse(line):
    """One table line as a tuple: (component, variable, instance, flags, dataType, unit,
    minLimit, maxLimit, valuesList, default)."""
    f = line.split("|")
    fl = f[3]
    flags = "rwo".index(fl[0])
    for ch in fl[1:]:
        flags |= 4 << FLAG_LETTERS.index(ch)
    dt = TYPES[f[4]]
    d = f[9]
    if d == "":
        d = None
    elif d == "''":
        d = ""
    elif dt == INT:
        d = int(d)
    elif dt == DEC:
        d = float(d)
    elif dt == BOOL:
        d = d == "true"
    return (f[0], f[1], f[2] or None, flags, dt, f[5] or None, _num(f[6]), _num(f[7]),
            _MACROS.get(f[8], f[8] or None), d)


class Rows:
    """The rows of a table text, addressed by the offset of their line (a small int, stable
    for the table). rows[off] parses that row; iterating gives (offset, row) pairs."""

    def __init__(self, text=TABLE):
        self.text = text if text.startswith("\n") else "\n" + text
        self._last = (-1, None)  # callers often read one row a few times in a row

    def __getitem__(self, off):
        if self._last[0] != off:
            t = self.text
            end = t.find("\n", off)
            self._last = (off, parse(t[off:] if end < 0 else t[off:end]))
        return self._last[1]

    def offsets(self):
        t = self.text
        off = 0
        n = len(t)
        while off < n:
            end = t.find("\n", off)
            if end < 0:
                end = n
            if end > off:
                yield off
            off = end + 1

    def __iter__(self):
        for off in self.offsets():
            yield self[off]

    def find(self, component, variable, instance):
        """Offset of a row, or -1 (no such component) / -2 (no such variable)."""
        # one string per lookup: dm.get() runs this on every read of a setting
        key = "\n%s|%s|%s|" % (component, variable, instance or "")
        if key.count("|") != 3 or key.count("\n") != 1:
            return -1  # a separator in a name would match across fields
        t = self.text
        i = t.find(key)
        if i >= 0:
            return i + 1
        return -2 if t.find(key[:len(component) + 2]) >= 0 else -1
