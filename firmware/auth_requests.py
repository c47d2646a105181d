# Authorization block, CSMS requests part: ClearCache (C11), SendLocalList (D01) and
# GetLocalListVersion (D02). Loaded on demand (station.ON_DEMAND): the cache and the list
# stay in the resident authorization block, which every authorization reads.
from firmware import log
from firmware.rpc import CallError
from firmware.auth_cache import normalise, token_key
from firmware.authorization import LIST, NO_AUTH, _NoList, _local_list


class Block:
    def __init__(self, station):
        self.st = station
        r = station.rpc
        r.register("ClearCache", self.clear_cache)
        r.register("SendLocalList", self.send_local_list)
        r.register("GetLocalListVersion", self.get_local_list_version)

    def _auth(self):
        return self.st.blocks["authorization"]

    def clear_cache(self, payload):
        auth = self._auth()
        if not auth.cache_enabled():
            return {"status": "Rejected"}  # C11.FR.04
        try:
            auth.cache.clear()
        except OSError as e:
            log.warn("auth", "ClearCache failed: %s" % (e,))
            return {"status": "Rejected"}  # C11.FR.05
        return {"status": "Accepted"}

    def get_local_list_version(self, payload):
        # D02.FR.01-03: 0 when disabled or never sent.
        auth = self._auth()
        return {"versionNumber": auth.list.version if auth.list_enabled() else 0}

    def send_local_list(self, payload):
        auth = self._auth()
        dm = self.st.dm
        items = payload.get("localAuthorizationList") or []
        limit = dm.get(LIST, "ItemsPerMessage")
        if limit and len(items) > limit:
            raise CallError("OccurrenceConstraintViolation",
                            "at most %d entries per SendLocalList" % limit)
        limit = dm.get(LIST, "BytesPerMessage")
        if limit and self.st.rpc.frame_len > limit:
            raise CallError("FormatViolation", "SendLocalList larger than %d bytes" % limit)
        version = payload.get("versionNumber")
        full = payload.get("updateType") == "Full"
        if not auth.list_enabled() or not isinstance(version, int) or version <= 0:
            return {"status": "Failed"}  # D01.FR.18: version 0 means "no list"
        if not full and version <= auth.list.version:
            return {"status": "VersionMismatch"}  # D01.FR.19
        entries = []
        for item in items:
            tok = item.get("idToken") or {}
            info = item.get("idTokenInfo")
            if not tok.get("idToken") and tok.get("type") != NO_AUTH or (full and info is None):
                return {"status": "Failed"}
            entries.append((token_key(normalise(tok)), info))
        most = dm.max_limit(LIST, "Entries")
        if isinstance(auth.list, _NoList):
            auth.list = _local_list(self.st.store, True)
        lst = auth.list
        try:
            if full:
                keys = set(k for k, _ in entries)
                if len(keys) != len(entries) or len(entries) > most:
                    return {"status": "Failed"}  # D01.FR.06
                lst.replace(entries, version)
            else:
                why = lst.update(entries, version, most)
                if why is not None:
                    log.warn("auth", "SendLocalList refused: %s" % why)
                    return {"status": "Failed"}
        except (OSError, ValueError) as e:
            log.warn("auth", "SendLocalList failed: %s" % (e,))
            return {"status": "Failed"}
        return {"status": "Accepted"}
