# An in-memory WebSocket for unit tests of the RPC layer and the station: recv() hands out
# the queued frames (an exception in the queue is raised instead), send() decodes each frame
# into `out`. Portable: pytest and micropython.
import json

from firmware import compat


class FakeWs:
    def __init__(self, incoming=()):
        self.incoming = list(incoming)
        self.out = []
        self._ev = compat.asyncio.Event()

    def feed(self, item):
        self.incoming.append(item)
        self._ev.set()

    async def recv(self):
        while not self.incoming:
            self._ev.clear()
            await self._ev.wait()
        item = self.incoming.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def send(self, text):
        self.out.append(json.loads(text))
