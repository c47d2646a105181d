# Client side of the WebSocket test scenarios. Portable: test_ws.py calls run() directly
# on CPython and runs this module under the `micropython` executable (see main()), so both
# targets execute the very same client code. Results are dicts passed to emit().
import json
import sys

from firmware import compat
from firmware import ws as wsmod
from firmware.compat import asyncio


def _describe(msg):
    if isinstance(msg, str):
        return {"type": "text", "len": len(msg), "data": msg if len(msg) <= 200 else None}
    return {"type": "binary", "len": len(msg),
            "hex": msg.hex() if len(msg) <= 100 else None}


def _connect_kwargs(a):
    kw = {}
    for k in ("subprotocol", "username", "password", "cafile", "max_size", "deflate",
              "timeout_ms"):
        if k in a:
            kw[k] = a[k]
    return kw


async def _connect(a, emit):
    try:
        w = await wsmod.connect(a["url"], **_connect_kwargs(a))
    except wsmod.WsError as e:
        emit({"error": type(e).__name__, "msg": str(e)})
        return None
    emit({"connected": True, "subprotocol": w.subprotocol, "deflate": w.deflate,
          "can_deflate": compat.CAN_DEFLATE})
    return w


async def sc_connect(a, emit):
    w = await _connect(a, emit)
    if w is not None:
        await w.close()
        emit({"closed": w.closed, "code": w.close_code})


async def sc_echo(a, emit):
    """Send each message of a["send"], expect the echo, then close with a["close"]."""
    w = await _connect(a, emit)
    if w is None:
        return
    for item in a["send"]:
        if isinstance(item, dict):
            msg = bytes.fromhex(item["hex"]) * item.get("repeat", 1)
        else:
            msg = item
        await w.send(msg)
        got = await w.recv()
        d = _describe(got)
        d["same"] = got == msg
        emit(d)
    code, reason = a.get("close", [1000, ""])
    await w.close(code, reason)
    emit({"closed": w.closed, "code": w.close_code})


async def sc_recv_all(a, emit):
    """Optionally send a["hello"], then report every message until the connection closes."""
    w = await _connect(a, emit)
    if w is None:
        return
    if "hello" in a:
        await w.send(a["hello"])
    while True:
        try:
            emit(_describe(await w.recv()))
        except wsmod.WsClosed as e:
            emit({"closed": e.code, "reason": e.reason, "flag": w.closed})
            return
        if a.get("close_after_first"):
            await w.close(1000, "done")
            emit({"closed": w.close_code, "reason": w.close_reason, "flag": w.closed})
            return


async def sc_keepalive(a, emit):
    w = await _connect(a, emit)
    if w is None:
        return
    t0 = compat.ticks_ms()
    ka = asyncio.create_task(w.keepalive(a["interval_s"]))
    try:
        while True:
            emit(_describe(await w.recv()))
    except wsmod.WsClosed as e:
        emit({"closed": e.code, "reason": e.reason,
              "ms": compat.ticks_diff(compat.ticks_ms(), t0)})
    await compat.sleep_ms(10)
    emit({"keepalive_done": ka.done()})


async def sc_close_while_receiving(a, emit):
    """The station's pattern: a reader task blocked in recv() while another task closes."""
    w = await _connect(a, emit)
    if w is None:
        return

    async def reader():
        try:
            while True:
                emit(_describe(await w.recv()))
        except wsmod.WsClosed as e:
            emit({"reader_closed": e.code})

    t = asyncio.create_task(reader())
    await compat.sleep_ms(a.get("wait_ms", 100))
    t0 = compat.ticks_ms()
    await w.close(a.get("code", 1000), "station stops")
    emit({"closed": w.close_code, "close_ms": compat.ticks_diff(compat.ticks_ms(), t0)})
    await compat.sleep_ms(20)
    try:
        await w.send("late")
        emit({"late_send": "accepted"})
    except wsmod.WsClosed as e:
        emit({"late_send": "WsClosed", "code": e.code})
    try:
        await w.recv()
    except wsmod.WsClosed as e:
        emit({"late_recv": "WsClosed", "code": e.code})
    emit({"reader_done": t.done()})


SCENARIOS = {"connect": sc_connect, "echo": sc_echo, "recv_all": sc_recv_all,
             "keepalive": sc_keepalive, "close_while_receiving": sc_close_while_receiving}


async def run(a, emit):
    await SCENARIOS[a["scenario"]](a, emit)


def main():
    # Arguments come on stdin: the unix port crashes on long command-line arguments.
    a = json.loads(sys.stdin.readline())

    def emit(d):
        print(json.dumps(d))

    try:
        asyncio.run(run(a, emit))
    except Exception as e:  # reported to the test instead of a bare traceback
        emit({"crash": "%s: %s" % (type(e).__name__, e)})
