# The line console shared by the simulator (stdin/stdout) and the device's serial REPL: its
# resident part. The commands (firmware/console_cmds.py) are imported on the first line and
# dropped again once no line came for the station's linger (station.linger_ms, as for the
# on-demand blocks), so an idle charger does not hold them. Whatever must outlive a drop
# lives here: the `quit` flag, the `mem watch` sampler. Layers that add commands listen to
# the station's "console" event, which every load emits again.
import json
import sys

from firmware import compat

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
        self.fresh = False    # cmds was loaded for the line being handled
        self.brought = ()     # the modules that loading cmds imported
        self._busy = 0        # lines in progress: the commands stay loaded meanwhile
        self._last = 0        # ticks_ms when the last line ended
        self._timer = False

    async def handle(self, line):
        c = self.cmds
        self.fresh = c is None
        if c is None:
            c = self._load()
        self._busy += 1
        try:
            return await c.handle(line)
        finally:
            self._busy -= 1
            self._last = compat.ticks_ms()
            self._linger()

    def loaded(self):
        return self.cmds is not None

    def _load(self):
        before = set(sys.modules)
        from firmware import console_cmds
        self.brought = [m for m in sys.modules if m not in before]
        before = None
        self.cmds = console_cmds.Commands(self)
        return self.cmds

    def _linger(self):
        if self._busy or self.cmds is None:
            return
        if getattr(self.st, "linger_ms", LINGER_MS) <= 0:
            self.drop()
        elif not self._timer:
            self._timer = True
            spawn = getattr(self.st, "spawn", None) or compat.create_task
            spawn(self._drop_later())

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
        self.brought = ()
        compat.unload(CMDS)


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
