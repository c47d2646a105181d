"""A TCP proxy between station and CSMS that tests can cut, or make refuse connections, to
simulate network loss. Runs its own event loop in a thread; bounded to loopback."""
import asyncio
import threading
import time


class LinkProxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.refuse = False
        self.attempts = []  # monotonic times of every incoming connection
        self._links = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self._run(self._start())

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        self.server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _on_client(self, reader, writer):
        self.attempts.append(time.monotonic())
        if self.refuse:
            writer.close()
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        link = (writer, uw)
        self._links.add(link)

        async def pump(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                for w in link:
                    w.close()
                self._links.discard(link)

        asyncio.ensure_future(pump(reader, uw))
        asyncio.ensure_future(pump(ur, writer))

    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def cut(self):
        """Drop every live connection abruptly (no WebSocket close handshake)."""
        async def _cut():
            for link in list(self._links):
                for w in link:
                    try:
                        w.transport.abort()
                    except Exception:
                        pass
            self._links.clear()
        self._run(_cut())

    def stop(self):
        self.cut()

        async def _stop():
            self.server.close()
        self._run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
