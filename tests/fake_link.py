# An in-memory WebSocket for unit tests of the RPC layer and the station: recv() hands out
# the queued frames (an exception in the queue is raised instead), send() decodes each frame
# into `out`. Portable: pytest and micropython.
import json

from firmware import compat


class FakeWs:
    def __init__(self, incoming=()):
        self._q = compat.Queue()
        for item in incoming:
            self.feed(item)
        self.out = []

    def feed(self, item):
        self._q.put_nowait(item)

    async def recv(self):
        item = await self._q.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def send(self, text):
        # the station sends its CALLs as a list of JSON text pieces (ws.WebSocket.send)
        self.out.append(json.loads(text if isinstance(text, str) else "".join(text)))
