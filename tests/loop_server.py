"""A raw TCP server on 127.0.0.1 run by an asyncio loop in its own thread, for tests
that must control every byte a server writes (SMTP replies, pipelined groups)."""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class LoopServer:
    """``with Subclass(...) as server:`` serves ``handle`` on 127.0.0.1:``server.port``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> Self:
        self.thread.start()
        self.ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
