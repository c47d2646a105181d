# The station orchestrator: owns the connection to the CSMS (connect, back-off, keep-alive),
# the RPC dispatcher, the device model, and the functional blocks. Blocks register their
# handlers and listen to station events; they never import each other.
from firmware import compat, log
from firmware.rpc import Rpc, CallError, Offline
from firmware.storage import Store
from firmware.device_model import DeviceModel
from firmware.msg_queue import MessageQueue

# Functional blocks, each a module with `Block(station)`. Order matters only for start-up.
BLOCKS = ("security", "provisioning", "availability", "authorization",
          "evse", "meter_values", "transactions", "charging_limits", "smart_charging",
          "diagnostics", "firmware_update")
# Blocks that only answer CSMS requests: imported for a request and dropped (module and
# instance) once no request of theirs is in progress, so their code takes heap only while
# in use. Their Block registers handlers for exactly these actions and keeps no state
# between requests; nothing else may hold on to them.
ON_DEMAND = (("variables", ("GetVariables", "SetVariables", "GetBaseReport")),
             ("remote_control", ("RequestStartTransaction", "RequestStopTransaction",
                                 "UnlockConnector", "TriggerMessage")),
             ("data_transfer", ("DataTransfer",)),
             ("transaction_status", ("GetTransactionStatus",)),
             ("certificates", ("InstallCertificate", "GetInstalledCertificateIds",
                               "DeleteCertificate")),
             ("station_cert", ("CertificateSigned",)),
             ("charging_profiles", ("SetChargingProfile", "ClearChargingProfile",
                                    "GetChargingProfiles", "GetCompositeSchedule")),
             ("customer_info", ("CustomerInformation",)),
             ("get_log", ("GetLog",)),
             ("network_profile", ("SetNetworkProfile",)),
             ("auth_requests", ("ClearCache", "SendLocalList", "GetLocalListVersion")),
             ("change_availability", ("ChangeAvailability",)))
# The resident block each of these on-demand blocks cannot work without: with it left out
# (Station(blocks=...)) their actions are not offered, and rpc answers them as it answers an
# action without a handler, instead of an InternalError from the block's constructor.
ON_DEMAND_NEEDS = (("charging_profiles", "smart_charging"), ("auth_requests", "authorization"),
                   ("change_availability", "availability"), ("network_profile", "provisioning"))
# An on-demand block stays this long after its last request, so a burst of requests (a CSMS
# reading variables one by one, DataTransfer traffic) imports it once, not per request.
ON_DEMAND_LINGER_MS = 5000

COMM = "OCPPCommCtrlr"
# Largest incoming message accepted (bigger ones are refused with close 1009). Each received
# message needs about 3x its size in heap on MicroPython, so this is sized for a ~110 KB heap.
MAX_MESSAGE = 20000
OOM_REBOOTS = 3  # MemoryErrors in a row on the network path before a clean reboot
# Offer permessage-deflate (RFC 7692), which OCPP 2.0.1 recommends to save cellular data. A
# 10-bit window keeps the decompressor at about 1 KB; runtimes that cannot compress send
# plain frames, which the extension allows.
DEFLATE = True
# borrowed for each use (compat.borrow): the certificates block and a firmware update share it
CERT_STORE = "firmware.cert_store"
TLS_NEEDS = (CERT_STORE, "firmware.client_cert")  # the station's own certificate (profile 3)


class Station:
    def __init__(self, board, csms_url, identity, password=None, cafile=None, blocks=BLOCKS,
                 on_demand=ON_DEMAND):
        self.board = board
        self.store = Store(board.data_dir)
        self.dm = DeviceModel(self.store, board.evses)
        # MessageTimeout in ms, read once instead of per CALL. The CSMS cannot change it
        # (ReadOnly), the installer can (sim --set): a change empties the cache.
        self._timeout_ms = None
        self.dm.on_change(self._on_var)
        self.csms_url = csms_url.rstrip("/")
        self.identity = identity
        self.dm.set("SecurityCtrlr", "Identity", identity)  # saved only when it changed
        self.password = password
        self.cafile = cafile
        self.rpc = Rpc()
        self.rpc.gate = self._gate
        self.boot_status = None  # None until the first BootNotification reply
        self.start_failed = False
        self.running = False
        self._oom = 0  # MemoryErrors in a row (out_of_memory)
        self.last_error = None
        self._listeners = {}
        self._tasks = []
        self._accepted_ev = compat.asyncio.Event()
        self._may_send = ()  # actions allowed before Accepted besides BootNotification
        self.queue = MessageQueue(self)
        # Network connection profiles (B09/B10); the provisioning block installs its store
        # here. Without it the station connects to csms_url only.
        self.net = None
        self.slot = None  # configuration slot of the current / last connection
        self._fallback_ok = True  # a replaced CSMS root may verify this connection (M05.FR.14)
        self.blocks = {}
        for name in blocks:
            self.blocks[name] = _load(name)(self)
        # on-demand block name -> [requests in progress, {action: handler}, last release (ms),
        # drop timer running]
        self._demand = {}
        self.linger_ms = ON_DEMAND_LINGER_MS
        self._demand_actions = dict(on_demand)
        # action -> on-demand block: rpc asks (rpc.demand) for an action it has no handler
        # for, and gets a handler object made for that one request, so the ~26 cold actions
        # cost one dict entry each while no request runs
        needs = dict(ON_DEMAND_NEEDS)
        self._demand_of = dict((a, name) for name, actions in on_demand
                               if name not in needs or needs[name] in self.blocks
                               for a in actions)
        self.rpc.demand = self._demand_handler

    # ---------------------------------------------------------------- on-demand blocks
    def _enter(self, name, actions):
        d = self._demand.get(name)
        if d is None:
            try:
                blk = _load(name)(self)
            except BaseException:
                # a half-made block (out of memory in its import or constructor) goes with
                # its module and what the module borrowed: the next request imports it afresh
                compat.unload("firmware." + name)
                raise
            finally:  # its handlers are taken back out of rpc (also those of a failed load):
                # requests keep coming through _OnDemand
                got = dict((a, self.rpc.handlers.pop(a, None)) for a in actions)
            d = self._demand[name] = [0, got, 0, False]
            self.blocks[name] = blk
        d[0] += 1
        return d[1]

    def _leave(self, name):
        d = self._demand[name]
        d[0] -= 1
        if d[0] == 0:
            if self.linger_ms <= 0:
                self._drop(name)
                return
            d[2] = compat.ticks_ms()
            if not d[3]:  # one timer per loaded block, however many requests it serves
                d[3] = True
                self.spawn(self._drop_later(name, d))

    def borrow(self, name):
        """An on-demand block for code that is not one of its requests (e.g. TriggerMessage
        asking station_cert for a CSR); loaded if needed, kept until release(name)."""
        self._enter(name, self._demand_actions[name])
        return self.blocks[name]

    def release(self, name):
        self._leave(name)

    def _demand_handler(self, action):
        name = self._demand_of.get(action)
        return None if name is None else _OnDemand(self, name, action).handle

    async def _drop_later(self, name, d):
        while self._demand.get(name) is d:
            wait = self.linger_ms - compat.ticks_diff(compat.ticks_ms(), d[2])
            if wait <= 0 and d[0] == 0:
                self._drop(name)
                return
            await compat.sleep_ms(max(wait, 100))

    def _drop(self, name):
        del self._demand[name]
        del self.blocks[name]
        # the modules it borrowed (BORROWED: the crypto core) go back with it, and stay while
        # another user (a block, a firmware update) still has them
        compat.unload("firmware." + name)

    # ---------------------------------------------------------------- events
    def on(self, event, fn):
        self._listeners.setdefault(event, []).append(fn)

    def emit(self, event, *args):
        """Call the listeners; coroutines they return are spawned and returned as tasks."""
        tasks = []
        for fn in self._listeners.get(event, ()):
            try:
                r = fn(*args)
                if hasattr(r, "send"):
                    tasks.append(self.spawn(r))
            except MemoryError:
                if event == "start":
                    raise  # a half-started station (no safety stepper, no journal) must not run
                compat.collect()
                try:
                    log.error("station", "listener for %s: out of memory" % event)
                except MemoryError:
                    pass
            except Exception as e:
                log.exc("station", "listener for %s failed" % event, e)
        return tasks

    async def emit_wait(self, event, timeout_ms, *args):
        """emit() and then wait, at most timeout_ms, until the coroutines the listeners
        returned have finished (e.g. "reset": end transactions before the reboot)."""
        tasks = self.emit(event, *args)
        t0 = compat.ticks_ms()
        while tasks and compat.ticks_diff(compat.ticks_ms(), t0) < timeout_ms:
            tasks = [t for t in tasks if not t.done()]
            if tasks:
                await compat.sleep_ms(20)

    def security_event(self, kind, tech_info=None):
        """Record a security event (A04): logged on flash, critical ones sent to the CSMS."""
        sec = self.blocks.get("security")
        if sec is not None:
            sec.event(kind, tech_info)
        else:
            log.info("security", "%s %s" % (kind, tech_info or ""))

    def spawn(self, coro):
        t = compat.create_task(self._guarded(coro))
        log.own(t, self.identity)
        self._tasks.append(t)
        if len(self._tasks) > 16:
            self._tasks = [x for x in self._tasks if not x.done()]
        return t

    async def _guarded(self, coro):
        try:
            return await coro
        except MemoryError:
            # a station task (heartbeat, meter loop, sender ...) is gone: the station cannot
            # go on correctly without it, so this reboots at once
            coro = None
            self.out_of_memory("task", True)

    def log(self, level, msg):
        getattr(log, level)("station", msg)

    # ---------------------------------------------------------------- sending
    def message_timeout_ms(self):
        t = self._timeout_ms
        if t is None:
            t = self._timeout_ms = self.dm.get(COMM, "MessageTimeout", vi="Default") * 1000
        return t

    def _on_var(self, component, variable, value):
        if variable == "MessageTimeout" and component == COMM:
            self._timeout_ms = None

    def allow_before_accepted(self, actions):
        """While Pending, a TriggerMessage may ask for messages other than BootNotification."""
        self._may_send = tuple(actions)

    async def call(self, action, payload, timeout_ms=None, msg_id=None, wait_online=True):
        """Send a CALL to the CSMS and return its response payload.
        Before BootNotification is Accepted only BootNotification (and triggered messages) go
        out; others wait. With wait_online=False an offline station raises Offline at once."""
        while True:
            if action != "BootNotification" and self.boot_status != "Accepted" \
                    and action not in self._may_send:
                if not wait_online:
                    raise Offline("not accepted by the CSMS yet")
                await self._accepted_ev.wait()
                continue
            if not self.connected:
                if not wait_online:
                    raise Offline("not connected")
                await self.rpc.link_ev.wait()
                continue
            return await self.rpc.call(action, payload, timeout_ms or self.message_timeout_ms(), msg_id)

    def set_boot_status(self, status):
        self.boot_status = status
        if status == "Accepted":
            self._may_send = ()
            self._accepted_ev.set()
            self.emit("boot_accepted")
        else:
            self._accepted_ev.clear()

    def _gate(self, action, payload):
        # B03.FR.08: while Rejected every CSMS request gets SecurityError, except a
        # TriggerMessage for a BootNotification: the CSMS may end the wait early (TC_B_31).
        if self.boot_status == "Rejected" and not (
                action == "TriggerMessage" and payload.get("requestedMessage") == "BootNotification"):
            return CallError("SecurityError", "station is not accepted by the CSMS")
        return None

    # ---------------------------------------------------------------- connection
    @property
    def connected(self):
        """A WebSocket to the CSMS is attached to rpc, the one record of the connection."""
        return self.rpc.ws is not None

    def url(self):
        from firmware.ws import quote_identity
        return self.csms_url + "/" + quote_identity(self.identity)

    def ca_file(self):
        """The CSMS root certificate(s) for TLS: the installed CSMSRootCertificates
        (firmware.cert_store) when there are any, else the installer's --cafile, which
        provisions the first root until the CSMS installs its own."""
        p = compat.call_lent(CERT_STORE, "csms_roots_pem_path", self.store)
        if p is not None:
            return p
        if self.cafile and compat.path_exists(self.cafile):
            return self.cafile
        return None

    def backoff_ms(self, attempt):
        """Wait before reconnect attempt number `attempt` (0 = first after a loss):
        RetryBackOffWaitMinimum doubled per attempt up to RetryBackOffRepeatTimes, plus
        random(0..RetryBackOffRandomRange)."""
        dm = self.dm
        wait = dm.get(COMM, "RetryBackOffWaitMinimum") or 0
        rng = dm.get(COMM, "RetryBackOffRandomRange") or 0
        rep = dm.get(COMM, "RetryBackOffRepeatTimes") or 0
        return int((wait * (1 << min(attempt, rep))) * 1000) + compat.random_int(0, int(rng * 1000))

    def _candidates(self):
        """[(slot, NetworkConnectionProfile)] in the order to try them."""
        if self.net is not None:
            c = self.net.candidates()
            if c:
                return c
        return [(None, {"ocppCsmsUrl": self.csms_url})]

    async def _connect_once(self, profile):
        from firmware import ws as wsmod
        pw = self.dm.get("SecurityCtrlr", "BasicAuthPassword") or self.password
        url = profile["ocppCsmsUrl"].rstrip("/")
        self.csms_url = url
        t = profile.get("messageTimeout")
        tls = url.startswith("wss:")

        def connect(cafile, client=None):
            return wsmod.connect(
                self.url(), username=self.identity if pw else None, password=pw,
                cafile=cafile, max_size=MAX_MESSAGE, deflate=DEFLATE,
                timeout_ms=int(t * 1000) if t else self.message_timeout_ms(),
                certfile=client[0] if client else None, keyfile=client[1] if client else None)
        if not tls:
            return await connect(None)
        compat.borrow_all(TLS_NEEDS)  # across the connect: roots, fallback, own certificate
        try:
            from firmware import cert_store, client_cert
            gen, client, old = client_cert.pick(self.store, compat.now())
            try:
                ws, old_root = await self._connect_roots(connect, client)
            except (wsmod.WsRefused, wsmod.WsCertError, wsmod.WsAuthError) as e:
                # A02.FR.10: a new station certificate the CSMS refuses; the one it replaced is
                # kept until the new one has connected once. Only a refusal: an unreachable or
                # slow CSMS says nothing about the certificate, and reverting on it would throw
                # a good certificate away (and with it the renewal dates).
                if old is None:
                    raise
                log.warn("net", "%s; trying the previous station certificate" % (e,))
                ws, old_root = await self._connect_roots(connect, old)
                client_cert.revert(self.store)
                self.security_event(
                    "InvalidChargingStationCertificate",
                    "the CSMS refused the new station certificate; using the previous one")
                return ws
            if gen is not None and client_cert.confirm(self.store, gen):
                log.info("net", "connected with the new station certificate")
            if not old_root and cert_store.drop_fallback(self.store):  # M05.FR.13
                self.security_event("ReconfigurationOfSecurityParameters",
                                    "previous CSMS root removed: connected with the new one")
            return ws
        finally:
            compat.release_all(TLS_NEEDS)

    async def _connect_roots(self, connect, client):
        """(ws, True if only the previous CSMS root accepted the CSMS)."""
        from firmware import ws as wsmod
        from firmware import cert_store
        try:
            return await connect(self.ca_file(), client), False
        except wsmod.WsCertError as e:
            # M05.FR.14: a CSMS certificate the new CSMS root does not accept is checked
            # against the replaced root, kept until a connection with the new one worked
            fb = cert_store.csms_fallback_pem_path(self.store) if self._fallback_ok else None
            if fb is None:
                raise
            log.warn("net", "%s; trying the previous CSMS root" % (e,))
            return await connect(fb, client), True

    def _same_csms(self, profile):
        """M05.FR.15: the replaced CSMS root is a fallback only for the CSMS the station last
        connected to (remembered across reboots), not for a migration to another one (B10)."""
        last = self.net.doc.get("last") if self.net is not None else None
        if not last:
            return True
        return (profile.get("ocppCsmsUrl") or "").rstrip("/") == \
            (last[1].get("ocppCsmsUrl") or "").rstrip("/")

    def _connect_failed(self, e, reported):
        """Security events for a failed connection, once per failure streak (A00.FR.316)."""
        from firmware.ws import WsAuthError, WsCertError
        if isinstance(e, WsAuthError):
            kind = "FailedToAuthenticateAtCsms"
        elif isinstance(e, WsCertError):
            kind = "InvalidCsmsCertificate"
        else:
            return
        if kind not in reported:
            reported.append(kind)
            self.security_event(kind, "%s: %s" % (self.csms_url, e))

    async def _connection_loop(self):
        # B10.FR.04: the priority order is read once per boot, so a new
        # NetworkConfigurationPriority takes effect after a reboot.
        cands = self._candidates()
        idx = 0
        fails = 0
        attempt = -1  # the first connection at boot is immediate
        reported = []
        while self.running:
            if attempt >= 0:
                delay = self.backoff_ms(attempt)
                log.info("net", "reconnecting in %d ms (attempt %d)" % (delay, attempt + 1))
                await compat.sleep_ms(delay)
                if not self.running:
                    break
            slot, profile = cands[idx]
            try:
                self._fallback_ok = self._same_csms(profile)
                ws = await self._connect_once(profile)
            except Exception as e:
                self.last_error = "%s" % (e,)
                if isinstance(e, MemoryError):
                    e = None
                    self.out_of_memory("connect")
                else:
                    log.warn("net", "connect to %s failed: %s" % (self.csms_url, e))
                self._connect_failed(e, reported)
                attempt += 1
                fails += 1
                # B10.FR.03: NetworkProfileConnectionAttempts per entry, then the next one;
                # the list ends with the last profile that worked (B10.FR.07).
                if len(cands) > 1 and fails >= self.dm.get(COMM, "NetworkProfileConnectionAttempts"):
                    idx = (idx + 1) % len(cands)
                    fails = 0
                    log.info("net", "trying network profile slot %s" % (cands[idx][0],))
                continue
            if not self.running:  # stop() during the handshake: do not come online
                ws.abort()
                break
            attempt = 0
            fails = 0
            reported = []
            if self.slot != slot and self.slot is not None and self.boot_status == "Accepted":
                self.set_boot_status(None)  # B10: a new profile means a new BootNotification
            self.slot = slot
            if self.net is not None:
                self.net.connected(slot, profile)
            # attached before "connected" is emitted, so its listeners find the link up;
            # serve() detaches it when the link ends
            self.rpc.ws = ws
            ka = None
            try:
                log.info("net", "connected to %s (slot %s)" % (self.csms_url, slot))
                self.emit("connected")
                ka = compat.create_task(ws.keepalive(self.dm.get(COMM, "WebSocketPingInterval") or 0))
                log.own(ka, self.identity)
                reason = await self.rpc.serve(ws)
            finally:
                # also when this task is cancelled: no socket or keep-alive outlives it
                if self.rpc.ws is ws:
                    self.rpc.ws = None
                if ka is not None:
                    ka.cancel()
                try:
                    ws.abort()
                except Exception:
                    pass
            if not self.running:   # stop() closed it: a clean shutdown, not a fault
                log.info("net", "connection closed: station stopping")
                self.emit("disconnected")
                return
            self.last_error = "%s" % (reason,)
            log.warn("net", "connection lost: %s" % (reason,))
            oom = isinstance(reason, MemoryError) or self.rpc.memory_error is not None
            reason = self.rpc.memory_error = None
            self.emit("disconnected")
            if oom:
                self.out_of_memory("protocol")
            else:
                self._oom = 0

    def out_of_memory(self, where, fatal=False):
        """A MemoryError on the network or protocol path: logged once per streak, the heap
        collected, the connection retried; the OOM_REBOOTS-th in a row reboots cleanly
        (relays open first; transactions stay in the journal and resume after the boot)
        instead of failing to reconnect forever."""
        compat.collect()
        self._oom += 1
        if self._oom == 1 or fatal:
            try:
                log.error("station", "out of memory (%s): heap collected, %s"
                          % (where, "rebooting" if fatal else "retrying"))
            except MemoryError:
                pass
        if (self._oom < OOM_REBOOTS and not fatal) or not self.running:
            return
        ev = self.blocks.get("evse")
        sp = getattr(ev, "stepper", None)
        if sp is not None:
            sp.stop()  # relays open, before anything that could fail again
        self.running = False
        try:
            self.reboot("ApplicationReset")
        except MemoryError:
            compat.collect()
            self.board.reboot()

    async def reconnect(self):
        """Drop the current connection (e.g. new credentials); the loop reconnects."""
        ws = self.rpc.ws
        if ws is not None:
            try:
                await ws.close(1000, "reconnect")
            except Exception:
                ws.abort()

    # ---------------------------------------------------------------- life cycle
    async def run(self):
        self.running = True
        log.own(compat.current_task(), self.identity)  # fleet mode only: names its log lines
        try:
            self.emit("start")
        except MemoryError:
            self.start_failed = True  # the simulator exits on this: a board's reset empties the heap
            self.out_of_memory("start", fatal=True)
            return
        try:
            while self.running:
                try:
                    await self._connection_loop()
                except MemoryError:  # anywhere on the way (log lines, backoff, profiles)
                    self.out_of_memory("network")
        finally:
            self.running = False

    async def stop(self):
        self.running = False
        ws = self.rpc.ws
        self.rpc.ws = None  # offline from here on: nothing more is sent
        if ws is not None:
            try:
                await ws.close(1001, "station shutting down")
            except Exception:
                pass
        for t in self._tasks:
            t.cancel()

    def reboot(self, reason):
        """Record why we restart (the next BootNotification reports it) and reboot."""
        self.store.save("boot.json", {"reason": reason})
        self.security_event("ResetOrReboot", reason)
        log.info("station", "rebooting: %s" % reason)
        self.board.reboot()

    def online(self):
        """Connected and accepted by the CSMS: messages other than BootNotification may flow."""
        return self.connected and self.boot_status == "Accepted"

    def idle(self):
        """True when no block has work that a Reset(OnIdle) must wait for (B12.FR.*): blocks
        with an `idle()` method (transactions, firmware update) vote; an idle block emits
        "idle" when it becomes idle again."""
        for b in self.blocks.values():
            f = getattr(b, "idle", None)
            if f is not None and not f():
                return False
        return True

    def status(self):
        return {
            "boot": self.boot_status,
            "connected": self.connected,
            "csms": self.csms_url,
            "slot": self.slot,
            "identity": self.identity,
            "last_error": self.last_error,
            "queue": self.queue.depth(),
            "storage_error": self.store.write_error(),   # the data directory refused a write
        }


def _load(name):
    return __import__("firmware." + name, None, None, ("Block",)).Block


class _OnDemand:
    """The rpc handler of one request for an on-demand block (made per request by
    Station._demand_handler): loads the block, runs its handler and releases the block when
    the request, and its follow-up, are over."""

    def __init__(self, station, name, action):
        self.st = station
        self.name = name
        self.action = action

    def handle(self, payload):
        # synchronous unless the block's handler is: no coroutine per request
        handlers = self.st._enter(self.name, self.st._demand_actions[self.name])
        try:
            r = handlers[self.action](payload)
        except BaseException:
            self.st._leave(self.name)
            raise
        if hasattr(r, "send"):
            return self._finish_async(r)
        return self._finish(r)

    async def _finish_async(self, coro):
        try:
            r = await coro
        except BaseException:
            self.st._leave(self.name)
            raise
        return self._finish(r)

    def _finish(self, r):
        if isinstance(r, tuple):
            return r[0], _FollowUp(self.st, self.name, r[1])
        self.st._leave(self.name)
        return r


class _FollowUp:
    """A handler's follow-up (`after`) that releases its on-demand block when it has run,
    or when rpc drops it because the response could not be sent."""

    def __init__(self, station, name, after):
        self.st = station
        self.name = name
        self.after = after

    def __call__(self):
        return self._run()

    async def _run(self):
        try:
            await self.after()
        finally:
            self.drop()

    def drop(self):
        if self.after is not None:
            self.after = None
            self.st._leave(self.name)
