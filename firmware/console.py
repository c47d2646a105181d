# The line console shared by the simulator (stdin/stdout) and the device's serial REPL: its
# resident part. The commands (firmware/console_cmds.py) are imported on the first line and
# dropped again once no line came for the station's linger (station.linger_ms, as for the
# on-demand blocks), so an idle charger does not hold them. Whatever must outlive a drop
# lives here: the `quit` flag, the `mem watch` sampler. Layers that add commands listen to
# the station's "console" event, which every load emits again.
import json

from firmware import compat, log

CMDS = "firmware.console_cmds"
LINGER_MS = 5000   # for a station without linger_ms (tests' stand-ins)


class ConsoleError(Exception):
    """A refused command: the message, and optional fields for the JSON reply."""

    def __init__(self, msg, extra=None):
        super().__init__(msg)
        self.extra = extra


def reply_json(reply):
    """One reply as a JSON line with "ok" first (MicroPython dicts keep no order)."""
    rest = dict(reply)
    ok = rest.pop("ok", False)
    tail = json.dumps(rest)[1:-1] if rest else ""
    return '{"ok": %s%s}' % ("true" if ok else "false", ", " + tail if tail else "")


class Console:
    def __init__(self, station):
        self.st = station
        self.quit = False
        self.cmds = None      # the loaded command table (console_cmds.Commands) or None
        self._busy = 0        # lines in progress: the commands stay loaded meanwhile
        self._last = 0        # ticks_ms when the last line ended
        self._timer = False

    async def handle(self, line):
        c = self.cmds
        if c is None:
            from firmware import console_cmds
            c = self.cmds = console_cmds.Commands(self)
            log.debug("console", "commands loaded")
        self._busy += 1
        try:
            return await c.handle(line)
        finally:
            self._busy -= 1
            self._last = compat.ticks_ms()
            if self._busy == 0 and self.cmds is not None and not self._timer:
                if getattr(self.st, "linger_ms", LINGER_MS) <= 0:
                    self.drop()
                else:
                    self._timer = True
                    (getattr(self.st, "spawn", None) or compat.create_task)(self._drop_later())

    async def _drop_later(self):
        try:
            while self.cmds is not None:
                wait = getattr(self.st, "linger_ms", LINGER_MS) - compat.ticks_diff(
                    compat.ticks_ms(), self._last)
                if wait <= 0 and not self._busy:
                    self.drop()
                    return
                await compat.sleep_ms(max(wait, 100))
        except compat.asyncio.CancelledError:
            # the station stops (the simulator restarts it): its console goes with it
            if not self._busy:
                self.drop()
            raise
        finally:
            self._timer = False

    def drop(self):
        """Forget the commands (the next line loads them again)."""
        self.cmds = None
        compat.unload(CMDS)
        log.debug("console", "commands dropped")


# `mem watch MS`: a sampler that collects every MS ms and keeps the largest live heap it saw
# (a benchmark aid; it costs a collection per sample). 0 stops it. Module-level, so it
# outlives the commands' unloading and a station restart inside the simulator.
watch = [None, None]


def watch_start(ms):
    if watch[1] is not None:
        watch[1].cancel()
        watch[1] = None
    watch[0] = None
    if ms > 0:
        watch[1] = compat.create_task(_watch_loop(ms))


async def _watch_loop(ms):
    while True:
        compat.collect()
        a = compat.mem_figures()[1]
        if a is not None and (watch[0] is None or a > watch[0]):
            watch[0] = a
        await compat.sleep_ms(ms)
