"""A minimal charging station written with the mobilityhouse `ocpp` library (CPython), used by
the benchmark as the reference peer: `python -m host.mh_station URL IDENTITY`. It answers
DataTransfer with UnknownVendorId, as our station does, and runs until killed."""
import asyncio
import logging
import sys

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result


class ReferenceStation(ChargePoint):
    @on("DataTransfer")
    def on_data_transfer(self, vendor_id, **kw):
        return call_result.DataTransfer(status="UnknownVendorId")


async def serve(url, identity):
    async with websockets.connect(url.rstrip("/") + "/" + identity, subprotocols=["ocpp2.0.1"]) as ws:
        await ReferenceStation(identity, ws).start()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(argv[0], argv[1]))
    except (KeyboardInterrupt, websockets.ConnectionClosed):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
