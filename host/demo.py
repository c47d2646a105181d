"""The no-argument simulator demo: a demo CSMS on a free loopback port, one simulated station
connected to it, and a short scripted tour with a readable log (CPython only)."""
import asyncio
import logging
import sys
import tempfile
import time

from firmware import log
from firmware.station import Station
from host.csms import Csms
from host.sim_board import SimBoard


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
        beats = len(csms.calls("Heartbeat"))
        await wait_until(lambda: len(csms.calls("Heartbeat")) > beats, 10, "a Heartbeat")
        say("heartbeat received at the CSMS-given 2 s interval")
        r = await csms.call(args["id"], "DataTransfer", {"vendorId": "com.example.demo", "data": "hello"})
        say("CSMS DataTransfer to an unknown vendor -> %s" % r["status"])
        frames = [m for m in csms.messages if m["cp"] == args["id"]]
        say("summary: %d frames exchanged, %d schema violations, data in %s"
            % (len(frames), len(csms.schema_violations), data_dir))
        return 0 if not csms.schema_violations else 1
    finally:
        await station.stop()
        task.cancel()
        await csms.stop()


def main(args):
    log.info("demo", "starting")
    return asyncio.run(run_demo(args))
