# Device entry point (the /main.py that `tools build` writes imports it and calls main()).
# Start order matters: the board drivers and the safety loop run before anything touches
# the network, and they never wait on it.
#   1. load /config.json (on error: print it, stay in the REPL with the relays open)
#   2. one Safety per EVSE and the safety stepper (firmware/stepper.py, its own thread):
#      every 10 ms pilot burst + fault inputs, Safety.step, watchdog feed. Its events are
#      buffered from power-up until the station consumes them (an EV plugged in at boot)
#   3. board drivers (meters, reader) and the event-loop heartbeat the watchdog policy reads
#   4. WiFi (reconnect forever), NTP
#   5. RCD self-test, awaited: it hides RCD trips, so nothing may permit charging meanwhile
#   6. the OCPP station, the serial line console
# Ctrl-C ends the loop: relays open, the stepper only feeds the watchdog, `from board import diag`.
import sys

from firmware import compat, log
from firmware.compat import asyncio
from firmware import safety as safety_mod
from firmware.stepper import Stepper
from firmware.console import ConsoleError, reply_json

# the running objects: board, safeties, cfg, wifi, station, console. The REPL helpers
# (board/diag.py, imported only from the REPL) read them from here.
ctx = {}


def _stdin_reader():
    try:
        return asyncio.StreamReader(sys.stdin)
    except (AttributeError, TypeError, OSError):
        return None


async def console_task(console, reader=None, write=None):
    """Serve line commands from the serial REPL input: one JSON reply line per command."""
    reader = reader or _stdin_reader()
    if reader is None:
        log.warn("main", "no async stdin on this port: serial console disabled")
        return
    if write is None:
        def write(s):
            print(s)
    while True:
        line = await reader.readline()
        if not line:
            await compat.sleep_ms(200)   # EOF (unix port without a terminal)
            continue
        if isinstance(line, bytes):
            line = line.decode("utf-8", "ignore")
        # drop control bytes: tools like mpremote leave Ctrl-B/Ctrl-C behind on the line
        line = "".join(c for c in line if c >= " ").strip()
        if not line:
            # unlike the simulator's stdin, no reply: a stray reply here could be taken by
            # `tools diag` as the answer to the command it sends next
            continue
        try:
            reply = await console.handle(line[:512])
            text = reply_json(reply)
        except MemoryError:
            reply = text = None
            compat.collect()
            text = '{"ok": false, "error": "out of memory"}'
        except Exception as e:
            text = reply_json({"ok": False, "error": "console: %s" % e})
        write(text)


def _no_quit(args):
    # the simulator's `quit` ends a process; a charger has nothing to quit to
    raise ConsoleError("quit only ends the simulator; on a charger use `reboot` (or Ctrl-C "
                       "for the REPL)")


def board_status(args=None):
    """Console command `board`: pilot levels, relay, faults and safety state per EVSE."""
    b = ctx.get("board")
    out = {"ok": True, "safety": [s.status() for s in ctx.get("safeties", ())]}
    st = ctx.get("stepper")
    if st is not None:   # the safety thread's own lateness: what the relay deadline sees
        out["stepper"] = {"late_ms": st.late[0], "periods": st.late[1], "errors": st.errors,
                          "dropped": st.dropped, "thread": st.threaded}
    if b is not None and hasattr(b, "status"):
        out["evses"] = b.status()
    return out


def add_board_command(console):
    console.commands["board"] = board_status
    console.commands["quit"] = _no_quit


async def start_network(cfg):
    if not cfg.get("wifi"):
        return None
    try:
        from board import net
        import network  # noqa: F401
    except ImportError:
        log.warn("main", "no `network` module on this port: WiFi left to the OS")
        return None
    w = cfg["wifi"]
    wifi = net.Wifi(w["ssid"], w["password"], w["hostname"])
    ctx["wifi"] = wifi
    compat.create_task(wifi.keep_connected())

    async def ntp_loop():
        while True:
            if wifi.connected() and await net.ntp_sync(cfg["ntp"]["host"]) is not None:
                await compat.sleep_ms(cfg["ntp"]["every_s"] * 1000)
            else:
                await compat.sleep_ms(10000)
    compat.create_task(ntp_loop())
    return wifi


def make_station(board, cfg):
    from firmware.station import Station
    st = cfg["station"]
    return Station(board, st["csms_url"], st["identity"], st["password"], st["cafile"])


async def run(board, cfg, station_factory=make_station, console_reader=None):
    safeties = []
    for e in board.evses:
        s = safety_mod.Safety(e, getattr(e, "allow_ventilation", False))
        e.safety = s
        safeties.append(s)
    board.safeties = safeties
    stepper = Stepper(safeties, beat=board.beat)
    board.stepper = stepper
    ctx.update(board=board, safeties=safeties, cfg=cfg, stepper=stepper)
    stepper.start()
    try:
        await _run(board, cfg, stepper, station_factory, console_reader)
    finally:
        stepper.stop(idle=board.idle)   # relays open; the thread goes on feeding the WDT


async def _run(board, cfg, stepper, station_factory, console_reader):
    compat.create_task(board.poll())
    compat.create_task(stepper.watch_loop())
    await start_network(cfg)
    try:
        await board.rcd_self_test()
    except Exception as e:
        log.exc("main", "RCD self-test", e)
    station = None
    try:
        station = station_factory(board, cfg)
    except Exception as e:  # a broken station must not take the safety stepper down
        log.exc("main", "station could not start", e)
    ctx["station"] = station
    if station is not None:
        if hasattr(station, "on"):
            station.on("console", add_board_command)
        try:
            from firmware.console import Console
            console = Console(station)
            ctx["console"] = console
            compat.create_task(console_task(console, console_reader))
        except ImportError as e:
            log.warn("main", "no console: %s" % e)
        await station.run()
    while True:  # no station: keep the drivers and the safety stepper running
        await compat.sleep_ms(60000)


def main(config_path=None):
    from board import config
    try:
        cfg = config.load(config_path or config.PATH)
    except config.ConfigError as e:
        print("CONFIG ERROR:", e)
        return
    del config
    compat.unload("board.config")   # the validator is used once: return its RAM
    import gc
    gc.collect()
    from board.device import EspBoard
    board = EspBoard(cfg)
    ctx["board"] = board
    try:
        asyncio.run(run(board, cfg))
    finally:
        board.safe_stop()
        board.keep_watchdog_alive()
        print("stopped: relays open. `from board import diag` -> diag.status(), diag.log(20),"
              " diag.get('Comp.Var'), diag.set('Comp.Var', v)")


if __name__ == "__main__":
    # run the module board.main: its ctx is the one the REPL helpers (diag) import
    from board import main as _board_main
    _board_main.main()
