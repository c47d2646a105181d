"""The no-argument simulator demo: a demo CSMS on a free loopback port, one simulated station
connected to it, and a short scripted tour with a readable log (CPython only)."""
import asyncio
import logging
import sys
import shutil
import tempfile
import time

from firmware import log
from firmware.station import Station
from host.csms import Csms
from host.sim_board import SimBoard


def _last_status(csms):
    # None until the first StatusNotification: the demo may look before it has arrived
    calls = csms.calls("StatusNotification")
    return calls[-1]["connectorStatus"] if calls else None


def say(msg):
    print("demo: " + msg, flush=True)


async def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("demo timed out waiting for " + what)
        await asyncio.sleep(0.05)


async def run_demo(args):
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s csms  %(message)s", datefmt="%H:%M:%S")
    csms = Csms()
    csms.responders["BootNotification"] = lambda cp, p: {
        "currentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "interval": 2,
        "status": "Accepted"}
    await csms.start()
    say("demo CSMS listening on %s (mobilityhouse ocpp + websockets)" % csms.url())
    data_dir = tempfile.mkdtemp(prefix="ocpp-sim-")
    board = SimBoard(args["evses"], data_dir, serial=args["id"])
    station = Station(board, csms.url(), args["id"])
    task = asyncio.create_task(station.run())
    t0 = time.monotonic()
    try:
        await wait_until(lambda: station.boot_status == "Accepted", 15, "BootNotification")
        say("station %s booted: BootNotification Accepted after %.0f ms"
            % (args["id"], (time.monotonic() - t0) * 1000))
        station.dm.set("SampledDataCtrlr", "TxUpdatedInterval", 1)
        ev = board.evses[0]
        ev.meter.ev_power_w = 11000.0
        ev.pilot.ev_state = "C"  # plug in: the EV asks for energy, waits for the offer
        await wait_until(lambda: _last_status(csms) == "Occupied",
                         5, "Occupied")
        say("EV plugged in on EVSE 1: StatusNotification Occupied")
        board.reader.tap("04A1B2C3")
        await wait_until(lambda: any(p["eventType"] == "Started" for p in csms.calls("TransactionEvent")),
                         10, "TransactionEvent Started")
        t_start = time.monotonic()
        say("card 04A1B2C3 tapped: Authorize Accepted, TransactionEvent Started")
        await wait_until(lambda: len([p for p in csms.calls("TransactionEvent")
                                      if p["triggerReason"] == "MeterValuePeriodic"]) >= 3, 10,
                         "periodic meter values")
        say("charging at 11 kW with meter values every second")
        board.reader.tap("04A1B2C3")
        await wait_until(lambda: any(p["eventType"] == "Ended" for p in csms.calls("TransactionEvent")),
                         10, "TransactionEvent Ended")
        duration = time.monotonic() - t_start
        ev.pilot.ev_state = "A"
        await wait_until(lambda: _last_status(csms) == "Available",
                         5, "Available")
        say("card tapped again: TransactionEvent Ended; EV unplugged: StatusNotification Available")
        events = csms.calls("TransactionEvent")
        regs = [sv["value"] for p in events for mv in p.get("meterValue") or ()
                for sv in mv["sampledValue"] if sv.get("measurand") == "Energy.Active.Import.Register"]
        energy = regs[-1] - regs[0] if regs else 0.0
        frames = [m for m in csms.messages if m["cp"] == args["id"]]
        say("summary: %.1f Wh in %.1f s, %d TransactionEvents (seqNo 0..%d), %d frames, "
            "%d schema violations"
            % (energy, duration, len(events), events[-1]["seqNo"], len(frames),
               len(csms.schema_violations)))
        return 0 if not csms.schema_violations else 1
    finally:
        await station.stop()
        task.cancel()
        await csms.stop()
        if args.get("keep"):
            say("the station's data directory is kept: %s" % data_dir)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(args):
    log.info("demo", "starting")
    return asyncio.run(run_demo(args))
