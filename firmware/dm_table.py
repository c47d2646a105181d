# The device model's definitions: one flat tuple per variable (OCPP 2.0.1 part 2 appendix
# "Referenced Components and Variables", dm_components_vars.csv). Rows hold constants only,
# so the table costs one small tuple per variable on the device; current values live in
# firmware.device_model.
#
# Row: (component, variable, variable instance, flags, dataType, unit, minLimit, maxLimit,
#       valuesList, default). A component with an instance is written "Name#instance".
# For string-like types maxLimit is the maximum length; a minLimit on a string row is the
# minimum length (checked on SetVariables, never reported).
from firmware.compat import const

# Mutability (low two bits of flags).
RO = const(0)
RW = const(1)
WO = const(2)
MUT_MASK = const(3)
# Further flag bits.
PERSIST = const(4)   # kept across reboots (implied for RW and WO)
CONST = const(8)     # never changes at run time (reported as constant)
REBOOT = const(16)   # a SetVariables change takes effect after a reboot
SECRET = const(32)   # never printed, reported or returned
EVSE = const(64)     # one instance per EVSE (component.evse.id)
CONN = const(128)    # one instance per connector (evse.id + connectorId 1)
DYN = const(256)     # Actual computed on every read (see DeviceModel._dynamic)
T_TARGET = const(512)  # attribute Target supported
T_MINSET = const(1024)
T_MAXSET = const(2048)

MUTABILITY = ("ReadOnly", "ReadWrite", "WriteOnly")
ATTRS = ("Actual", "Target", "MinSet", "MaxSet")

# Measurands this firmware can take from firmware.hal.Meter / the pilot.
MEASURANDS = "Current.Import,Current.Offered,Energy.Active.Import.Register,Power.Active.Import,Voltage"
# Transaction start/stop points (E01) this station can detect. ParkingBayOccupancy (no bay
# sensor) and DataSigned (no signing meter) are left out so a CSMS setting them is told so.
TX_POINTS = "EVConnected,Authorized,PowerPathClosed,EnergyTransfer"
AVAILABILITY = "Available,Occupied,Reserved,Unavailable,Faulted"

# Message limits the firmware enforces (ItemsPerMessage / BytesPerMessage) are sized for
# the ESP32 heap: a NotifyReport part of 4 KB is built, sent and dropped before the next.
ITEMS = const(16)
BYTES = const(4096)

C_COMM = "OCPPCommCtrlr"
C_DEV = "DeviceDataCtrlr"
C_CLOCK = "ClockCtrlr"
C_SEC = "SecurityCtrlr"
C_AUTH = "AuthCtrlr"
C_CACHE = "AuthCacheCtrlr"
C_LIST = "LocalAuthListCtrlr"
C_TX = "TxCtrlr"
C_SAMP = "SampledDataCtrlr"
C_ALIGN = "AlignedDataCtrlr"
C_CS = "ChargingStation"
C_EVSE = "EVSE"
C_CONN = "Connector"

INT = "integer"
DEC = "decimal"
BOOL = "boolean"
STR = "string"
DT = "dateTime"
OPT = "OptionList"
SEQ = "SequenceList"
MEM = "MemberList"

ROWS = (
    # ---- OCPPCommCtrlr (B01..B04, B09/B10, part 4 retry back-off and keep-alive)
    (C_COMM, "ActiveNetworkProfile", None, RO | PERSIST, INT, None, 0, 8, None, 1),
    (C_COMM, "FileTransferProtocols", None, RO | CONST, MEM, None, None, None, "HTTP,HTTPS", "HTTP,HTTPS"),
    (C_COMM, "HeartbeatInterval", None, RW, INT, "s", 1, 86400, None, 300),
    (C_COMM, "MessageTimeout", "Default", RO | CONST, INT, "s", 1, 600, None, 30),
    (C_COMM, "MessageAttemptInterval", "TransactionEvent", RW, INT, "s", 1, 3600, None, 10),
    (C_COMM, "MessageAttempts", "TransactionEvent", RW, INT, None, 1, 100, None, 3),
    (C_COMM, "NetworkConfigurationPriority", None, RW, SEQ, None, None, 40, "0,1,2", "1"),
    (C_COMM, "NetworkProfileConnectionAttempts", None, RW, INT, None, 1, 100, None, 3),
    (C_COMM, "OfflineThreshold", None, RW, INT, "s", 0, 86400, None, 60),
    (C_COMM, "ResetRetries", None, RW, INT, None, 0, 10, None, 2),
    (C_COMM, "RetryBackOffRandomRange", None, RW, INT, "s", 0, 3600, None, 10),
    (C_COMM, "RetryBackOffRepeatTimes", None, RW, INT, None, 0, 20, None, 5),
    (C_COMM, "RetryBackOffWaitMinimum", None, RW, INT, "s", 1, 3600, None, 10),
    (C_COMM, "UnlockOnEVSideDisconnect", None, RW, BOOL, None, None, None, None, True),
    (C_COMM, "WebSocketPingInterval", None, RW, INT, "s", 0, 3600, None, 30),
    # ---- DeviceDataCtrlr (B05..B08)
    (C_DEV, "BytesPerMessage", "GetReport", RO | CONST, INT, "B", None, None, None, BYTES),
    (C_DEV, "BytesPerMessage", "GetVariables", RO | CONST, INT, "B", None, None, None, BYTES),
    (C_DEV, "BytesPerMessage", "SetVariables", RO | CONST, INT, "B", None, None, None, BYTES),
    (C_DEV, "ConfigurationValueSize", None, RO | CONST, INT, None, None, None, None, 1000),
    (C_DEV, "ItemsPerMessage", "GetReport", RO | CONST, INT, None, None, None, None, ITEMS),
    (C_DEV, "ItemsPerMessage", "GetVariables", RO | CONST, INT, None, None, None, None, ITEMS),
    (C_DEV, "ItemsPerMessage", "SetVariables", RO | CONST, INT, None, None, None, None, ITEMS),
    (C_DEV, "ReportingValueSize", None, RO | CONST, INT, None, None, None, None, 2500),
    # ---- ClockCtrlr
    (C_CLOCK, "DateTime", None, RO | DYN, DT, None, None, None, None, None),
    (C_CLOCK, "TimeAdjustmentReportingThreshold", None, RW, INT, "s", 0, 86400, None, 60),
    (C_CLOCK, "TimeSource", None, RW, SEQ, None, None, None, "Heartbeat,RealTimeClock", "Heartbeat"),
    # ---- SecurityCtrlr (A00..A05)
    (C_SEC, "BasicAuthPassword", None, WO | SECRET, STR, None, 16, 40, None, None),
    (C_SEC, "CertificateEntries", None, RO, INT, None, None, None, None, 0),
    (C_SEC, "Identity", None, RO | PERSIST, STR, None, 1, 48, None, None),
    (C_SEC, "OrganizationName", None, RW, STR, None, None, 50, None, ""),
    (C_SEC, "SecurityProfile", None, RO | PERSIST, INT, None, 0, 3, None, 1),
    # ---- AuthCtrlr (C01..C16)
    (C_AUTH, "AuthorizeRemoteStart", None, RW, BOOL, None, None, None, None, True),
    (C_AUTH, "DisableRemoteAuthorization", None, RW, BOOL, None, None, None, None, False),
    (C_AUTH, "Enabled", None, RW, BOOL, None, None, None, None, True),
    (C_AUTH, "LocalAuthorizeOffline", None, RW, BOOL, None, None, None, None, True),
    (C_AUTH, "LocalPreAuthorize", None, RW, BOOL, None, None, None, None, False),
    (C_AUTH, "MasterPassGroupId", None, RW, STR, None, None, 36, None, None),
    (C_AUTH, "OfflineTxForUnknownIdEnabled", None, RW, BOOL, None, None, None, None, False),
    # ---- AuthCacheCtrlr (C10..C12)
    (C_CACHE, "Available", None, RO | CONST, BOOL, None, None, None, None, True),
    (C_CACHE, "DisablePostAuthorize", None, RW, BOOL, None, None, None, None, False),
    (C_CACHE, "Enabled", None, RW, BOOL, None, None, None, None, True),
    (C_CACHE, "LifeTime", None, RW, INT, "s", 0, 31536000, None, 86400),
    (C_CACHE, "Policy", None, RW, OPT, None, None, None, "LRU", "LRU"),
    (C_CACHE, "Storage", None, RO, INT, "B", None, 4096, None, 0),
    # ---- LocalAuthListCtrlr (D01, D02, C13, C14)
    (C_LIST, "Available", None, RO | CONST, BOOL, None, None, None, None, True),
    (C_LIST, "BytesPerMessage", None, RO | CONST, INT, "B", None, None, None, BYTES),
    (C_LIST, "DisablePostAuthorize", None, RW, BOOL, None, None, None, None, False),
    (C_LIST, "Enabled", None, RW, BOOL, None, None, None, None, True),
    (C_LIST, "Entries", None, RO, INT, None, None, 100, None, 0),
    (C_LIST, "ItemsPerMessage", None, RO | CONST, INT, None, None, None, None, ITEMS),
    (C_LIST, "Storage", None, RO, INT, "B", None, 16384, None, 0),
    # ---- TxCtrlr (E01..E14)
    (C_TX, "EVConnectionTimeOut", None, RW, INT, "s", 1, 3600, None, 60),
    (C_TX, "MaxEnergyOnInvalidId", None, RW, INT, "Wh", 0, 1000000, None, 0),
    (C_TX, "StopTxOnEVSideDisconnect", None, RW, BOOL, None, None, None, None, True),
    (C_TX, "StopTxOnInvalidId", None, RW, BOOL, None, None, None, None, True),
    (C_TX, "TxBeforeAcceptedEnabled", None, RW, BOOL, None, None, None, None, False),
    (C_TX, "TxStartPoint", None, RW, MEM, None, None, None, TX_POINTS, "PowerPathClosed"),
    (C_TX, "TxStopPoint", None, RW, MEM, None, None, None, TX_POINTS, "EVConnected,Authorized"),
    # ---- SampledDataCtrlr (J02)
    (C_SAMP, "Available", None, RO | CONST, BOOL, None, None, None, None, True),
    (C_SAMP, "Enabled", None, RW, BOOL, None, None, None, None, True),
    (C_SAMP, "TxEndedInterval", None, RW, INT, "s", 0, 86400, None, 0),
    (C_SAMP, "TxEndedMeasurands", None, RW, MEM, None, None, None, MEASURANDS, "Energy.Active.Import.Register"),
    (C_SAMP, "TxStartedMeasurands", None, RW, MEM, None, None, None, MEASURANDS, "Energy.Active.Import.Register"),
    (C_SAMP, "TxUpdatedInterval", None, RW, INT, "s", 0, 86400, None, 60),
    (C_SAMP, "TxUpdatedMeasurands", None, RW, MEM, None, None, None, MEASURANDS,
     "Energy.Active.Import.Register,Power.Active.Import"),
    # ---- AlignedDataCtrlr (J01)
    (C_ALIGN, "Available", None, RO | CONST, BOOL, None, None, None, None, True),
    (C_ALIGN, "Enabled", None, RW, BOOL, None, None, None, None, True),
    (C_ALIGN, "Interval", None, RW, INT, "s", 0, 86400, None, 900),
    (C_ALIGN, "Measurands", None, RW, MEM, None, None, None, MEASURANDS, "Energy.Active.Import.Register"),
    (C_ALIGN, "SendDuringIdle", None, RW, BOOL, None, None, None, None, False),
    (C_ALIGN, "TxEndedInterval", None, RW, INT, "s", 0, 86400, None, 0),
    (C_ALIGN, "TxEndedMeasurands", None, RW, MEM, None, None, None, MEASURANDS, "Energy.Active.Import.Register"),
    # ---- Charging infrastructure (part 2 appendix 3): station, EVSEs, connectors.
    # Hardware-derived values (phases, power limit, connector type) are filled in per
    # instance from the hal.Evse objects when the model is built.
    (C_CS, "AvailabilityState", None, RO, OPT, None, None, None, AVAILABILITY, "Available"),
    (C_CS, "Available", None, RO, BOOL, None, None, None, None, True),
    (C_CS, "SupplyPhases", None, RO | CONST, INT, None, 0, 3, None, 3),
    (C_EVSE, "AvailabilityState", None, RO | EVSE, OPT, None, None, None, AVAILABILITY, "Available"),
    (C_EVSE, "Available", None, RO | EVSE, BOOL, None, None, None, None, True),
    (C_EVSE, "Power", None, RO | EVSE, DEC, "W", 0, None, None, 0.0),
    (C_EVSE, "SupplyPhases", None, RO | EVSE | CONST, INT, None, 0, 3, None, 3),
    (C_CONN, "AvailabilityState", None, RO | CONN, OPT, None, None, None, AVAILABILITY, "Available"),
    (C_CONN, "Available", None, RO | CONN, BOOL, None, None, None, None, True),
    (C_CONN, "ConnectorType", None, RO | CONN | CONST, STR, None, None, None, None, "cType2"),
    (C_CONN, "SupplyPhases", None, RO | CONN | CONST, INT, None, 0, 3, None, 3),
)

# SummaryInventory (B07.FR.09): availability of the station, each EVSE and each connector.
SUMMARY = ("AvailabilityState",)
