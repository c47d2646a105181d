# Provisioning block, SetNetworkProfile part (B09): checks a NetworkConnectionProfile and
# stores it in its configuration slot. Loaded on demand (station.ON_DEMAND); the slots, the
# order they are tried in and the NetworkConfigurationPriority check stay resident in
# firmware.provisioning.NetProfiles (every connect uses them).
from firmware import log
from firmware.provisioning import SLOTS

KEPT = ("ocppVersion", "ocppTransport", "ocppCsmsUrl", "messageTimeout", "securityProfile",
        "ocppInterface")


def check(net, slot, data):
    """(status, reasonCode) for a SetNetworkProfileRequest (B09.FR.01..05)."""
    if slot not in SLOTS:
        return "Rejected", "ValueOutOfRange"
    if data.get("ocppVersion") != "OCPP20" or data.get("ocppTransport") != "JSON":
        return "Rejected", "UnsupportedParam"
    if data.get("vpn") is not None or data.get("apn") is not None:
        return "Rejected", "UnsupportedParam"  # no VPN client, no cellular modem
    url = data.get("ocppCsmsUrl") or ""
    sp = data.get("securityProfile")
    secure = url.startswith("wss://")
    if not (secure or url.startswith("ws://")) or len(url) < 8 or " " in url:
        return "Rejected", "InvalidURL"
    if not isinstance(sp, int) or sp < 1 or sp > 3:
        return "Rejected", "InvalidValue"
    if sp < net.security_profile():
        return "Rejected", "ValueTooLow"
    if secure != (sp >= 2):
        return "Rejected", "InvalidURL"  # profile 1 is ws://, profiles 2 and 3 wss://
    return "Accepted", None


class Block:
    def __init__(self, station):
        self.st = station
        station.rpc.register("SetNetworkProfile", self.set_network_profile)

    def set_network_profile(self, payload):
        net = self.st.net
        slot = payload.get("configurationSlot")
        data = payload.get("connectionData") or {}
        status, reason = check(net, slot, data)
        if status == "Accepted":
            # saved from a copy: a profile that could not be stored must not stay in RAM,
            # where the next save (e.g. after a connection) would write it after all
            old = net.doc["slots"]
            new = dict(old)
            new[str(slot)] = dict((k, data[k]) for k in KEPT if k in data)
            net.doc["slots"] = new
            saved = False
            try:
                net.save()
                saved = True
            except OSError as e:
                log.exc("net", "cannot store network profile", e)
                status, reason = "Failed", "OutOfStorage"
            finally:
                if not saved:
                    net.doc["slots"] = old
        out = {"status": status}
        if reason:
            out["statusInfo"] = {"reasonCode": reason}
        log.info("net", "SetNetworkProfile slot %s: %s %s" % (slot, status, reason or ""))
        return out
