"""A minimal JSON-RPC client for the harness's own talks with a node.

The harness needs a handful of calls to manage a node (readiness checks, deployment, test
RPCs such as ``evm_mine``). It deliberately does not reuse the bot's transport: the harness
measures the bot, so its plumbing must not share the code under test. Batches are split into
chunks of an explicit size so that a 10,000-transaction deployment never builds one giant body.
Redirects are not followed (``RedirectRefused``), and messages and ``repr`` show the URL redacted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bot.redact import host_of, redact_text, redact_url
from harness.errors import HarnessError, RedirectRefused


class NodeRpcError(HarnessError):
    """The node answered a JSON-RPC request with an error object (or garbage)."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: node error {code}: {message}" + (f" ({data!r})" if data else ""))
        self.method = method
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class NodeRpcStatistics:
    requests: int
    http_posts: int
    errors: int
    max_batch: int


class NodeRpc:
    """JSON-RPC over HTTP keep-alive; ``max_batch`` bounds the number of calls per POST."""

    def __init__(self, url: str, *, timeout: float = 60.0, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.url = url
        self.name = redact_url(url)  # for messages: a provider key in the URL stays out of logs
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_batch = max_batch
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._requests = 0
        self._posts = 0
        self._errors = 0

    def __repr__(self) -> str:
        state = "open" if self._session is not None and not self._session.closed else "closed"
        return f"<NodeRpc {self.name} {state} requests={self._requests}>"

    async def __aenter__(self) -> NodeRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> NodeRpcStatistics:
        return NodeRpcStatistics(self._requests, self._posts, self._errors, self._max_batch)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _post(self, body: bytes) -> Any:
        self._posts += 1
        session = self._get_session()
        try:
            async with session.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                    allow_redirects=False) as resp:
                raw = await resp.read()
                if 300 <= resp.status < 400:
                    raise RedirectRefused(self.name, resp.status, host_of(resp.headers.get("Location")))
                if resp.status != 200:
                    raise HarnessError(redact_text(f"{self.name}: HTTP {resp.status}: {raw[:200]!r}"))
        except aiohttp.ClientError as exc:
            raise HarnessError(f"{self.name}: cannot reach the node: {redact_text(str(exc))}") from exc
        except TimeoutError as exc:
            raise HarnessError(f"{self.name}: no answer within {self._timeout.total:g} s") from exc
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise HarnessError(f"{self.name}: the node answered with invalid JSON: {raw[:200]!r}") from exc

    def _result(self, method: str, reply: Any) -> Any:
        if not isinstance(reply, dict):
            self._errors += 1
            return NodeRpcError(method, None, f"malformed reply {reply!r:.200}")
        if "error" in reply and reply["error"] is not None:
            self._errors += 1
            err = reply["error"]
            if isinstance(err, dict):
                return NodeRpcError(method, err.get("code"), str(err.get("message")), err.get("data"))
            return NodeRpcError(method, None, str(err))
        return reply.get("result")

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; raises ``NodeRpcError`` when the node answers with an error."""
        self._requests += 1
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        result = self._result(method, await self._post(body))
        if isinstance(result, NodeRpcError):
            raise result
        return result

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any | NodeRpcError]:
        """Many calls, in POSTs of at most ``max_batch``; results in order, errors as values."""
        out: list[Any | NodeRpcError] = []
        for start in range(0, len(calls), self._max_batch):
            chunk = calls[start : start + self._max_batch]
            ids = [next(self._ids) for _ in chunk]
            body = orjson.dumps(
                [
                    {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                    for i, (m, p) in zip(ids, chunk, strict=True)
                ]
            )
            self._requests += len(chunk)
            replies = await self._post(body)
            if not isinstance(replies, list):
                # A node that refuses batches answers with a single error object.
                raise HarnessError(f"{self.name}: batch request refused: {replies!r:.300}")
            by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
            for i, (method, _) in zip(ids, chunk, strict=True):
                if i not in by_id:
                    self._errors += 1
                    out.append(NodeRpcError(method, None, "no reply for this call in the batch"))
                else:
                    out.append(self._result(method, by_id[i]))
        return out

    async def batch_ok(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Like ``batch`` but raises the first error (with how many failed)."""
        results = await self.batch(calls)
        failed = [r for r in results if isinstance(r, NodeRpcError)]
        if failed:
            raise HarnessError(f"{len(failed)} of {len(calls)} calls failed; first: {failed[0]}")
        return results
