"""Helpers shared by the portable tests (CPython under pytest and the unix micropython)."""
import sys

MICROPYTHON = sys.implementation.name == "micropython"
# make the fake `machine` importable for the board drivers
_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
if _HERE not in sys.path:
    sys.path.append(_HERE)


class Skipped(Exception):
    pass


def skip(reason):
    """Skip the current test on either runner."""
    try:
        import pytest
    except ImportError:
        raise Skipped(reason)
    pytest.skip(reason)


def raises(exc, fn, *args, **kw):
    """Return the exception `fn` raised, failing if it raised none or another type."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def run_micropython(modules, timeout=60):
    """Run portable test modules under `micropython`; return (returncode, output)."""
    import os
    import subprocess
    from tests.harness import micropython_exe
    exe = micropython_exe()
    if exe is None:
        return None, "micropython binary not found"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runner = os.path.join(root, "tests", "fake_machine", "mprun.py")
    p = subprocess.run([exe, runner, root] + list(modules), cwd=root, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def run_on_loop_clock(coro, chip):
    """Await coro beside a ticker task that sleeps 1 ms at a time, with the fake `chip`'s clock
    counting the ticker's wake-ups instead of real milliseconds: the chip only gets on with its
    work while other tasks get turns, so a driver that holds the event loop while it waits
    never sees the answer, however loaded the machine is. Returns (result, ticker turns taken
    while coro ran)."""
    from firmware.compat import asyncio, sleep_ms
    turns = [0]
    chip.clock = lambda: turns[0]

    async def ticker():
        while True:
            await sleep_ms(1)
            turns[0] += 1

    async def main():
        t = asyncio.create_task(ticker())
        await sleep_ms(0)
        t0 = turns[0]
        r = await coro
        t.cancel()
        return r, turns[0] - t0
    return asyncio.run(main())
