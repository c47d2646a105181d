# Authorization block (OCPP 2.0.1 C01-C06, C09-C16, D01, D02): decides whether an idToken may
# charge, from the Local Authorization List, the Authorization Cache and Authorize requests;
# GroupId and Master Pass stop rules. ClearCache, SendLocalList and GetLocalListVersion are
# answered by firmware.auth_requests, loaded on demand; the cache and the list live here.
#
# Tokens are compared case-insensitively (part 2 C 1.1) and stored only as a truncated SHA-256
# of "type:TOKEN" (C10.FR.12), which is also a bounded-size key.
from firmware import compat, log
from firmware.rpc import CallError, Offline
from firmware.auth_cache import AuthCache, expand, normalise, same_token, token_key

AUTH = "AuthCtrlr"
CACHE = "AuthCacheCtrlr"
LIST = "LocalAuthListCtrlr"

NO_AUTH = "NoAuthorization"
CACHE_FLUSH_MS = 300000  # last-use times reach flash at most this late (see auth_cache)
LIST_FILE = "authlist.jl"  # firmware.local_list.FILE, named here to keep that module unloaded


class _NoList:
    """Stands in for the LocalList while no list was ever sent: most stations never get one,
    and this keeps firmware.local_list out of the heap (~5 KB of .mpy code)."""
    version = 0
    count = 0

    def size(self):
        return 0

    def lookup(self, key):
        return None


def _local_list(store, create):
    if create or store.exists(LIST_FILE) or store.exists(LIST_FILE + ".tmp"):
        from firmware.local_list import LocalList
        return LocalList(store)
    return _NoList()


class Block:
    def __init__(self, station):
        self.st = station
        self.dm = station.dm
        self.cache = AuthCache(station.store)
        self.list = _local_list(station.store, False)
        self.last_source = None  # where the last authorize() decision came from (console/tests)
        self.authorize_requests = 0
        self.dm.provide(LIST, "Entries", lambda e, c: self.list.count)
        self.dm.provide(LIST, "Storage", lambda e, c: self.list.size())
        self.dm.provide("AuthCacheCtrlr", "Storage", lambda e, c: self.cache.storage_bytes())
        station.on("start", self._on_start)
        station.on("console", self._on_console)

    # ---------------------------------------------------------------- settings
    def cache_enabled(self):
        return self.dm.get(CACHE, "Enabled") and self.dm.get(CACHE, "Available")

    def list_enabled(self):
        return self.dm.get(LIST, "Enabled") and self.dm.get(LIST, "Available")

    def online(self):
        return self.st.online()

    # ---------------------------------------------------------------- lookups
    def local_info(self, id_token):
        """(idTokenInfo, source) from the Local Authorization List (priority, C13.FR.01) or the
        Authorization Cache, without asking the CSMS; (None, None) when unknown."""
        key = token_key(id_token)
        if self.list_enabled():
            info = self.list.lookup(key)
            if info is not None:
                return info, "list"
        if self.cache_enabled():
            rec = self.cache.lookup(key, self.dm.get(CACHE, "LifeTime"))
            if rec is not None:
                return expand(rec), "cache"
        return None, None

    def _use(self, id_token, info, source):
        self.last_source = source
        if source == "cache":
            self.cache.touch(token_key(id_token))
        return info

    # ---------------------------------------------------------------- API for transactions
    async def authorize(self, id_token):
        """idTokenInfo deciding whether `id_token` may charge (start or stop). Only an
        Accepted status authorizes; see may_start() for the extra start rules."""
        tok = normalise(id_token)
        if tok["type"] == NO_AUTH or not self.dm.get(AUTH, "Enabled"):
            self.last_source = "none"
            return {"status": "Accepted"}
        info, source = self.local_info(tok)
        if self.online():
            if info is not None:
                if info.get("status") == "Accepted":
                    if self.dm.get(AUTH, "LocalPreAuthorize"):
                        return self._use(tok, info, source)  # C12.FR.02, C14.FR.02
                elif self.dm.get(CACHE if source == "cache" else LIST, "DisablePostAuthorize"):
                    return self._use(tok, info, source)
            if self.dm.get(AUTH, "DisableRemoteAuthorization"):
                if info is not None:
                    return self._use(tok, info, source)
                self.last_source = "none"
                return {"status": "Unknown"}
            try:
                self.authorize_requests += 1
                resp = await self.st.call("Authorize", {"idToken": tok}, wait_online=False)
                got = resp.get("idTokenInfo") or {"status": "Invalid"}
                self.learn(tok, got)  # C10.FR.04
                self.last_source = "csms"
                return got
            except (Offline, compat.TimeoutError, CallError) as e:
                log.warn("auth", "Authorize failed (%r): deciding offline" % (e,))
        # Offline (C13, C15)
        if info is not None:
            if self.dm.get(AUTH, "LocalAuthorizeOffline"):
                return self._use(tok, info, source)
            self.last_source = "offline"
            return {"status": "Unknown"}
        if self.dm.get(AUTH, "OfflineTxForUnknownIdEnabled"):
            self.last_source = "offline-unknown"
            return {"status": "Accepted"}  # C15.FR.08; never cached (C15.FR.01)
        self.last_source = "offline"
        return {"status": "Unknown"}

    def learn(self, id_token, id_token_info):
        """Update the cache from an idTokenInfo the CSMS sent for `id_token` (Authorize or
        TransactionEvent response, C10.FR.04/.05, C12.FR.06)."""
        if not id_token or not isinstance(id_token_info, dict):
            return
        tok = normalise(id_token)
        if tok["type"] == NO_AUTH or not self.cache_enabled():  # C02.FR.03, C10.FR.11
            return
        try:
            self.cache.put(token_key(tok), id_token_info)
        except OSError as e:
            log.warn("auth", "cache not persisted: %s" % (e,))

    def master_pass_group(self):
        return self.dm.get(AUTH, "MasterPassGroupId") or None

    def is_master_pass(self, info):
        mp = self.master_pass_group()
        g = info.get("groupIdToken") if info else None
        return bool(mp and g and (g.get("idToken") or "").upper() == mp.upper())

    def may_start(self, info, evse_id=None):
        """True when `info` lets a transaction start (on `evse_id`): Accepted, not a Master
        Pass (C12.FR.09, C16.FR.03), and the EVSE allowed (C01.FR.21)."""
        if not info or info.get("status") != "Accepted" or self.is_master_pass(info):
            return False
        allowed = info.get("evseId")
        return not allowed or evse_id is None or evse_id in allowed

    def stop_allowed(self, start_token, start_info, stop_token, stop_info):
        """Whether `stop_token` may end the authorization given by `start_token`: the same
        token always (C01.FR.03a); otherwise an Accepted token of the same group (C09.FR.03,
        C09.FR.11) or of the Master Pass group (C16)."""
        if same_token(normalise(start_token), normalise(stop_token)):
            return True
        if not stop_info or stop_info.get("status") != "Accepted":
            return False
        if self.is_master_pass(stop_info):
            return True
        g1 = start_info.get("groupIdToken") if start_info else None
        g2 = stop_info.get("groupIdToken")
        return bool(g1 and g2 and g1.get("idToken") and same_token(g1, g2))

    async def authorize_stop(self, start_token, start_info, stop_token):
        """(allowed, stop idTokenInfo) for a token presented during a transaction: decided
        locally when possible (C01.FR.03, C09.FR.07), else by authorize() (C09.FR.05)."""
        if same_token(normalise(start_token), normalise(stop_token)):
            self.last_source = "same"
            return True, start_info
        tok = normalise(stop_token)
        info, source = self.local_info(tok)
        if info is not None and info.get("status") == "Accepted" and \
                self.stop_allowed(start_token, start_info, tok, info):
            return True, self._use(tok, info, source)
        info = await self.authorize(tok)
        return self.stop_allowed(start_token, start_info, tok, info), info

    # ---------------------------------------------------------------- housekeeping
    def _on_start(self):
        return self._flush_loop()

    async def _flush_loop(self):
        while True:
            await compat.sleep_ms(CACHE_FLUSH_MS)
            try:
                self.cache.flush()
            except OSError as e:
                log.warn("auth", "cache flush failed: %s" % (e,))

    # ---------------------------------------------------------------- console
    def _on_console(self, console):
        console.commands["auth"] = self._console
        console.syntax["auth"] = "auth TOKEN [TYPE] [EVSE]"

    async def _console(self, args):
        """auth TOKEN [TYPE] [EVSE] | auth stop START STOP [TYPE] | auth cache | auth list |
        auth flush"""
        if not args:
            return {"usage": "auth TOKEN [TYPE] [EVSE] | auth stop START STOP [TYPE] | "
                             "auth cache | auth list | auth flush"}
        if args[0] == "cache":
            return {"entries": len(self.cache), "enabled": bool(self.cache_enabled()),
                    "requests": self.authorize_requests}
        if args[0] == "list":
            return {"entries": self.list.count, "version": self.list.version,
                    "bytes": self.list.size(), "enabled": bool(self.list_enabled())}
        if args[0] == "flush":
            self.cache.flush(force=True)
            return {"entries": len(self.cache)}
        if args[0] == "stop" and len(args) >= 3:
            t = args[3] if len(args) > 3 else "ISO14443"
            start = {"idToken": args[1], "type": t}
            start_info, _ = self.local_info(start)
            if start_info is None:
                start_info = await self.authorize(start)
            ok, info = await self.authorize_stop(start, start_info, {"idToken": args[2], "type": t})
            return {"allowed": ok, "idTokenInfo": info, "source": self.last_source}
        tok = {"idToken": args[0], "type": args[1] if len(args) > 1 else "ISO14443"}
        evse = int(args[2]) if len(args) > 2 else None
        info = await self.authorize(tok)
        return {"idTokenInfo": info, "source": self.last_source,
                "mayStart": self.may_start(info, evse)}
