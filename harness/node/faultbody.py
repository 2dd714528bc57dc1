"""The replies the fault proxy writes itself: closed, trickled, cut, padded, or a JSON-RPC error per call.

Each function finishes the aiohttp handler for one request. Closing a connection with no reply
raises ``CancelledError`` from the handler, which aiohttp ends quietly: the client sees a
disconnect, as it would from a node that died mid-request.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, NoReturn

import orjson
from aiohttp import web

INJECTED_ERROR = {"code": -32603, "message": "injected fault (fault proxy)"}
GARBAGE_BODY = b"\x00<html>proxy garbage{"
GARBAGE_TEXT_FRAME = "<html>proxy garbage{"  # a text frame must be UTF-8: not JSON, but text
GARBAGE_BINARY_FRAME = b"\x00\xffproxy garbage\x80"
SLOW_CHUNKS = 16  # a slow body arrives in this many pieces, evenly spread over its duration
PAD_CHUNK = 1 << 20


def close_without_reply(request: web.BaseRequest) -> NoReturn:
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


async def _start(request: web.BaseRequest, status: int, content_type: str, length: int) -> web.StreamResponse:
    resp = web.StreamResponse(status=status)
    resp.content_type = content_type
    resp.content_length = length
    await resp.prepare(request)
    return resp


async def send_slowly(request: web.BaseRequest, status: int, body: bytes, content_type: str, over_s: float
                      ) -> web.StreamResponse:
    """Headers at once, then the body in ``SLOW_CHUNKS`` pieces spread over ``over_s`` seconds."""
    resp = await _start(request, status, content_type, len(body))
    pieces = max(1, min(SLOW_CHUNKS, len(body)))
    step = math.ceil(len(body) / pieces)
    try:
        for i in range(pieces):
            await resp.write(body[i * step:(i + 1) * step])
            if i < pieces - 1:
                await asyncio.sleep(over_s / (pieces - 1))
        await resp.write_eof()
    except ConnectionResetError:
        close_without_reply(request)  # the client gave up waiting: nothing left to send
    return resp


async def send_truncated(request: web.BaseRequest, status: int, body: bytes, content_type: str) -> NoReturn:
    """The full ``Content-Length``, half the body, then the connection closes."""
    resp = await _start(request, status, content_type, len(body))
    cut = max(1, len(body) // 2) if len(body) > 1 else 0
    try:
        await resp.write(body[:cut])
    except ConnectionResetError:
        pass
    close_without_reply(request)  # close() sends what is buffered first: the client gets exactly the cut body


async def send_padded(request: web.BaseRequest, status: int, body: bytes, content_type: str, size: int
                      ) -> web.StreamResponse:
    """The reply followed by JSON whitespace up to ``size`` bytes: still valid JSON, just too big."""
    total = max(size, len(body))
    resp = await _start(request, status, content_type, total)
    try:
        await resp.write(body)
        left = total - len(body)
        pad = b" " * min(PAD_CHUNK, left)
        for _ in range(math.ceil(left / PAD_CHUNK)):  # bounded by the size (at most 1 GiB)
            await resp.write(pad[: min(PAD_CHUNK, left)])
            left -= min(PAD_CHUNK, left)
        await resp.write_eof()
    except ConnectionResetError:
        close_without_reply(request)  # a client with a body cap hung up: that is the point
    return resp


def error_reply(body: bytes) -> bytes:
    """A JSON-RPC error for each call in the request, ids kept (null when unreadable)."""
    try:
        req: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        req = None
    if isinstance(req, list):
        return orjson.dumps(
            [
                {"jsonrpc": "2.0", "id": r.get("id") if isinstance(r, dict) else None, "error": INJECTED_ERROR}
                for r in req
            ]
        )
    rid = req.get("id") if isinstance(req, dict) else None
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": INJECTED_ERROR})
