# GetLog (OCPP 2.0.1 part 2, N01): upload the diagnostics log or the security log to the URL
# the CSMS gives, and tell the CSMS how it went with LogStatusNotification.
#
# The logs are already on flash: the diagnostics log is firmware.log's bounded flash log
# (diag.log.1, diag.log), the security log is the security block's two journals. An upload
# copies the lines inside [oldestTimestamp, latestTimestamp] into one temporary file in the
# data directory, line by line (bounded RAM, and a snapshot that later log lines do not
# change between retries), then sends it with firmware.http_client.
#
# The file goes as an HTTP POST, multipart/form-data, part "uploadfile" with the file name of
# the GetLogResponse (N01.FR.19's example): the name reaches the server, which a PUT to the
# given URL could not tell it, and a form upload is what log servers commonly accept.
#
# The block is loaded on demand (station.ON_DEMAND) and stays loaded while an upload runs
# (the GetLog follow-up); its one piece of state, the running upload, lives only that long.
# A second GetLog during an upload cancels it (N01.FR.12): the answer is AcceptedCanceled,
# the cancelled upload's LogStatusNotification says AcceptedCanceled with its own requestId
# (N01.FR.20, N01.FR.07), and then the new upload starts.
from firmware import compat, log
from firmware.compat import const
from firmware.rpc import CallError, Offline

# given back when the block is unloaded (compat.unload): a firmware download may share it
BORROWED = ("firmware.http_client",)
compat.borrow_all(BORROWED, __name__)
from firmware import http_client

TMP = "getlog.tmp"
RETRIES = 2          # when the request gives none (the station's choice)
RETRY_S = 30         # when the request gives no retryInterval
MAX_RETRIES = 10
MAX_RETRY_S = 3600
FIELD = "uploadfile"
_YIELD_LINES = const(32)
_TS = const(24)      # "2026-12-03T06:14:52.514Z"


class _Upload:
    def __init__(self, request_id):
        self.id = request_id
        self.task = None
        self.done = False


class Block:
    def __init__(self, station):
        self.st = station
        self.current = None  # the _Upload in progress, if any
        station.rpc.register("GetLog", self.get_log)

    def uploading(self):
        """requestId of the upload in progress, or None (TriggerMessage LogStatusNotification)."""
        u = self.current
        return None if u is None or u.done else u.id

    # ---------------------------------------------------------------- GetLog
    def get_log(self, payload):
        kind = payload["logType"]
        rid = payload["requestId"]
        params = payload["log"]
        url = params["remoteLocation"]
        try:
            http_client.parse(url)
        except http_client.HttpError as e:
            return _rejected("InvalidURL", str(e)[:500])
        try:
            oldest = _bound(params.get("oldestTimestamp"))
            latest = _bound(params.get("latestTimestamp"))
        except ValueError:
            return _rejected("InvalidValue", "bad oldestTimestamp or latestTimestamp")
        paths = self._sources(kind)
        if paths is None:
            return _rejected("UnsupportedParam", "no %s on this station" % kind)
        if not paths or not _overlaps(paths, kind, oldest, latest):
            return _rejected("NotFound", "no %s lines in that time range" % kind)  # N01.FR.05
        prev = self.current if self.uploading() is not None else None
        # the new upload is the current one from here on, before its follow-up even runs: a
        # third GetLog in between cancels it, not the first again
        up = self.current = _Upload(rid)
        name = "%s-%s-%d.log" % (_safe(self.st.identity), "security" if kind == "SecurityLog"
                                 else "diagnostics", rid)
        retries = payload.get("retries")
        retries = RETRIES if retries is None else max(0, min(retries, MAX_RETRIES))
        interval = payload.get("retryInterval")
        interval = RETRY_S if interval is None else max(0, min(interval, MAX_RETRY_S))
        job = (kind, paths, url, name, oldest, latest, retries, interval)

        async def after():
            if prev is not None:
                await _cancel(prev)
                log.info("getlog", "upload %d cancelled by GetLog %d" % (prev.id, rid))
                await self._notify("AcceptedCanceled", prev.id)  # N01.FR.20
            if up.done:  # cancelled by a newer GetLog before it started
                return
            up.task = compat.create_task(self._run(up, job))
            try:
                await up.task
            except compat.CancelledError:
                pass
            finally:
                up.done = True
                if self.current is up:
                    self.current = None

        resp = {"status": "AcceptedCanceled" if prev is not None else "Accepted", "filename": name}
        return resp, after  # N01.FR.01, N01.FR.12

    def _sources(self, kind):
        """The files holding the log, oldest first; None when the station has no such log."""
        if kind == "DiagnosticsLog":
            return log.file_paths()  # N01.FR.04
        if kind == "SecurityLog":
            sec = self.st.blocks.get("security")
            return None if sec is None else sec.log_paths()  # N01.FR.03
        return None

    # ---------------------------------------------------------------- the upload
    async def _run(self, up, job):
        kind, paths, url, name, oldest, latest, retries, interval = job
        st = self.st
        # one copy per request: a cancelled upload's clean-up must not remove the next one's
        tmp = st.store.path("%s.%d" % (TMP, up.id))
        status = "UploadFailure"
        try:
            await self._notify("Uploading", up.id)  # N01.FR.08
            try:
                n = await _extract(paths, kind, tmp, oldest, latest,
                                   "# %s %s of %s, requestId %d\n"
                                   % (kind, compat.iso8601(), st.identity, up.id))
            except OSError as e:  # flash full: nothing to send
                log.error("getlog", "cannot assemble the %s: %s" % (kind, e))
                retries = -1
            else:
                log.info("getlog", "%s: %d lines for %s" % (kind, n, url.split("@")[-1]))
            # each read or write of the upload may take as long as an OCPP answer
            timeout = max(1000, st.message_timeout_ms())
            for attempt in range(retries + 1):
                if attempt:
                    await compat.sleep_ms(interval * 1000)
                try:
                    await http_client.upload(url, tmp, cafile=st.ca_file(), method="POST",
                                             field=FIELD, filename=name, timeout_ms=timeout)
                    status = "Uploaded"  # N01.FR.09
                    break
                except MemoryError:
                    raise
                except Exception as e:  # HttpError, or the copy unreadable
                    status = _failure(e)
                    log.warn("getlog", "upload %d attempt %d of %d failed: %s"
                             % (up.id, attempt + 1, retries + 1, e))
                    if status != "UploadFailure":
                        break  # a refusal: asking again gives the same answer
        finally:
            _remove(tmp)
        # the upload is over before its last status is sent: a GetLog the CSMS sends on
        # seeing Uploaded is a new upload, not a cancel (N01.FR.12)
        up.done = True
        if self.current is up:
            self.current = None
        await self._notify(status, up.id)  # N01.FR.10: only after the last attempt

    async def _notify(self, status, rid):
        p = {"status": status}
        if rid is not None:
            p["requestId"] = rid  # N01.FR.07
        try:
            await self.st.call("LogStatusNotification", p)
        except (CallError, Offline, compat.TimeoutError) as e:
            log.warn("getlog", "LogStatusNotification %s failed: %r" % (status, e))


async def _cancel(up):
    t = up.task
    if t is None:
        up.done = True  # its follow-up has not started the upload yet: now it will not
        return
    if up.done:
        return
    t.cancel()
    for _ in range(100):  # its clean-up (the temporary file) before the next one starts
        if up.done:
            return
        await compat.sleep_ms(10)


def _failure(e):
    st = getattr(e, "status", None)
    if st in (401, 403):
        return "PermissionDenied"
    if st in (405, 501):
        return "NotSupportedOperation"
    if isinstance(e, http_client.HttpBadResponse):
        return "BadMessage"
    return "UploadFailure"


def _rejected(reason, info):
    return {"status": "Rejected", "statusInfo": {"reasonCode": reason, "additionalInfo": info}}


def _safe(s):
    return "".join(c if c.isalpha() or c.isdigit() or c in "-_." else "_" for c in s)[:64]


def _bound(value):
    """A timestamp bound in the logs' own format (compat.iso8601, fixed width, UTC), so a
    line's time compares as text; None when absent."""
    if value is None:
        return None
    return compat.iso8601(compat.parse_iso8601(value))


def _stamp(kind, line):
    """The line's timestamp text (diag: the line's start; security: the record's first
    field) or None for a line that has none."""
    t = line[2:2 + _TS] if kind == "SecurityLog" else line[:_TS]
    if len(t) == _TS and t[23:24] == b"Z" and t[10:11] == b"T" and t[:1].isdigit():
        return t.decode()
    return None


def _inside(ts, oldest, latest):
    return ts is not None and (oldest is None or ts >= oldest) and (latest is None or ts <= latest)


def _overlaps(paths, kind, oldest, latest):
    """Whether the log may hold lines in the range: by the first line of the oldest file and
    the last one of the newest (the logs are written in time order)."""
    if oldest is None and latest is None:
        return True
    first = last = None
    try:
        with open(paths[0], "rb") as f:
            for ln in f:
                first = _stamp(kind, ln)
                if first is not None:
                    break
        with open(paths[-1], "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 700))
            for ln in f:
                t = _stamp(kind, ln)
                if t is not None:
                    last = t
    except OSError:
        return False
    if first is None or last is None:
        return False
    return (latest is None or first <= latest) and (oldest is None or last >= oldest)


async def _extract(paths, kind, tmp, oldest, latest, header):
    """Copy the lines inside the range to `tmp`; returns how many."""
    n = 0
    with open(tmp, "wb") as out:
        out.write(header.encode())
        for p in paths:
            try:
                f = open(p, "rb")
            except OSError:
                continue  # rotated away meanwhile
            with f:
                k = 0
                for ln in f:
                    k += 1
                    if k % _YIELD_LINES == 0:
                        await compat.sleep_ms(0)  # per line read: a narrow range scans all
                    if not ln.endswith(b"\n"):
                        break  # torn last line
                    if not _inside(_stamp(kind, ln), oldest, latest):
                        continue
                    if kind == "SecurityLog":
                        ln = _security_line(ln)
                        if ln is None:
                            continue
                    out.write(ln)
                    n += 1
    return n


def _security_line(raw):
    """A security journal record as "timestamp type techInfo" text."""
    import json
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not rec or rec[0] == "#":
        return None
    info = rec[2] if len(rec) > 2 and rec[2] is not None else ""
    return ("%s %s %s\n" % (rec[0], rec[1], info)).encode()


def _remove(path):
    import os
    try:
        os.remove(path)
    except OSError:
        pass
