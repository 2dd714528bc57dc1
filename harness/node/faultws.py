"""One proxied WebSocket: frames relayed both ways with their delays, garbage frames and a drop budget.

Each direction has a reader and a writer: the reader stamps every frame with its due time (arrival
plus its one-way delay, never before the frame ahead of it) and the writer sends it then, so a
delayed frame holds up the ones behind it only until its own due time, as on a real link, and the
order is kept. The relay ends when either side closes; the frames already read still go out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import WSMsgType, web

from harness.node.faultbody import GARBAGE_BINARY_FRAME, GARBAGE_TEXT_FRAME
from harness.node.faultlog import InjectionLog, RequestInfo
from harness.node.faultplan import FrameDecision

WS_QUEUE = 10_000  # frames read but not yet due, per direction; beyond it the reader waits
_Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
_Frame = tuple[float, str | bytes, FrameDecision]  # due, data (str: a text frame), decision
WEBSOCKET = RequestInfo("websocket")


@dataclass
class WsRelay:
    client: web.WebSocketResponse
    node: aiohttp.ClientWebSocketResponse
    frame: Callable[[bool], FrameDecision]  # the current plan's draw for a frame (True: toward the client)
    log: InjectionLog
    clock: Callable[[], float]  # the proxy's time, for the log
    counts: dict[str, int]  # ws_messages_to_node / ws_messages_to_client are counted here
    drop_after: int | None  # close after this many messages, both ways together
    sent: int = field(default=0, init=False)

    def __repr__(self) -> str:
        return f"<WsRelay sent={self.sent} drop_after={self.drop_after} closed={self.client.closed}>"

    async def run(self) -> None:
        pumps = [asyncio.create_task(self._pump(self.client, self.node, "ws_messages_to_node", False)),
                 asyncio.create_task(self._pump(self.node, self.client, "ws_messages_to_client", True))]
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pump(self, source: _Socket, sink: _Socket, counter: str, to_client: bool) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Frame | None] = asyncio.Queue(WS_QUEUE)
        writer = asyncio.create_task(self._deliver(queue, sink, counter))
        last_due = 0.0
        try:
            async for msg in source:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY) or writer.done():
                    break
                frame = self.frame(to_client)
                last_due = max(loop.time() + frame.delay_s, last_due)
                await queue.put((last_due, msg.data, frame))
            if not writer.done():
                await queue.put(None)
                await writer  # the frames already read still arrive
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _deliver(self, queue: asyncio.Queue[_Frame | None], sink: _Socket, counter: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (item := await queue.get()) is not None:
                due, data, frame = item
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if frame.garbage is not None:
                    self.log.add(self.clock(), "ws_garbage", WEBSOCKET, detail=frame.garbage)
                    if frame.garbage == "text":
                        await sink.send_str(GARBAGE_TEXT_FRAME)
                    else:
                        await sink.send_bytes(GARBAGE_BINARY_FRAME)
                if isinstance(data, str):
                    await sink.send_str(data)
                else:
                    await sink.send_bytes(data)
                self.counts[counter] += 1
                self.sent += 1
                if self.drop_after is not None and self.sent >= self.drop_after:
                    self.log.add(self.clock(), "ws_drop", WEBSOCKET, detail="ws_drop_after")
                    await self.client.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"dropped by fault proxy")
                    return
        except ConnectionResetError:
            return  # the other side is gone; the socket pair is being torn down
