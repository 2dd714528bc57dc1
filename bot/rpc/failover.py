"""``EndpointPool``: an ``RpcClient`` over several endpoints, with retries and failover.

Each call goes to the best-ranked endpoint (``health.rank``). When it fails with a retryable
error, the call moves at once to the next-best *other* endpoint that is available; only when
no other endpoint is available does it wait (full-jitter backoff, or the node's
``Retry-After``, whichever the policy gives, and at least until an endpoint comes back).
Retries are bounded by ``RetryPolicy.max_attempts`` and its time budget; ``timeout`` bounds
each attempt.

Sends are special, because a transaction must never be sent twice as two transactions:
- a retry re-sends the *same signed bytes*; their hash is fixed, so a node that already has
  them answers "already known", which the transport turns into success with that hash;
- definite rejections (nonce too low, insufficient funds, reverted, underpriced ...) are not
  retried, they are the answer;
- but if an earlier attempt may have reached a node (timeout, dropped connection, 5xx,
  garbage) and a later one is rejected as definite (typically "nonce too low" because the
  first attempt got mined), the pool asks for the transaction by hash before reporting
  failure: if a node knows it, the send succeeded.
"""

# The per-call ``timeout`` is part of the RpcClient contract (DESIGN.md): it is handed to the
# endpoint's transport for each attempt, which is what ASYNC109 asks for.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.rpc import codec
from bot.rpc.backoff import Random, decide
from bot.rpc.config import HealthPolicy, RetryPolicy
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError, TransportError
from bot.rpc.health import BreakerState, EndpointHealth, rank
from bot.rpc.protocol import RpcClient
from bot.rpc.transport import HttpTransport, TransportStatistics

T = TypeVar("T")

# Methods whose second execution is a second action (a node-signed send, mining, time travel):
# after a failure that may have reached the node they are not sent again. Only a rate-limit
# answer (the node refused to process it) is retried.
NOT_RESENDABLE = frozenset(
    {
        "eth_sendTransaction",
        "evm_mine",
        "anvil_mine",
        "evm_increaseTime",
        "evm_revert",
        "evm_snapshot",
        "hardhat_mine",
    }
)


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    name: str
    state: BreakerState
    score: float
    latency_ewma_ms: float
    success_rate: float
    consecutive_failures: int
    successes: int
    failures: int
    rate_limited: int
    blocked_for_s: float
    transport: TransportStatistics | None


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """``size``: endpoints; ``retries``: extra attempts; ``failovers``: retries that moved to another
    endpoint; ``waits``: backoff or Retry-After sleeps; ``failed``: calls that raised;
    ``sends_recovered_by_lookup``: sends found by hash after an ambiguous attempt."""

    size: int
    calls: int
    retries: int
    failovers: int
    waits: int
    failed: int
    sends_recovered_by_lookup: int
    endpoints: tuple[EndpointStatistics, ...]


class _Endpoint:
    __slots__ = ("client", "health")

    def __init__(self, client: RpcClient, health: EndpointHealth) -> None:
        self.client = client
        self.health = health


class EndpointPool:
    """Failover across ``clients`` (typically ``HttpTransport``s), best endpoint first."""

    def __init__(
        self,
        clients: Sequence[RpcClient],
        retry_policy: RetryPolicy | None = None,
        health_policy: HealthPolicy | None = None,
        *,
        rng: Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not clients:
            raise ValueError("EndpointPool clients: give at least one endpoint")
        self.retry_policy = retry_policy or RetryPolicy()
        policy = health_policy or HealthPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng: Random = rng or random.Random()
        self._endpoints: list[_Endpoint] = []
        for i, client in enumerate(clients):
            name = getattr(client, "name", None) or f"endpoint-{i}"
            self._endpoints.append(_Endpoint(client, EndpointHealth(str(name), policy, clock)))
        self._by_health = {id(ep.health): ep for ep in self._endpoints}
        self._calls = 0
        self._retries = 0
        self._failovers = 0
        self._waits = 0
        self._failed = 0
        self._recovered = 0

    def __repr__(self) -> str:
        states = ", ".join(f"{ep.health.name}={ep.health.state.value}" for ep in self._endpoints)
        return f"EndpointPool([{states}], calls={self._calls}, failovers={self._failovers})"

    async def __aenter__(self) -> EndpointPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> PoolStatistics:
        eps = []
        for ep in self._endpoints:
            snap = ep.health.snapshot()
            eps.append(
                EndpointStatistics(
                    name=snap.name,
                    state=snap.state,
                    score=snap.score,
                    latency_ewma_ms=snap.latency_ewma_ms,
                    success_rate=snap.success_rate,
                    consecutive_failures=snap.consecutive_failures,
                    successes=snap.successes,
                    failures=snap.failures,
                    rate_limited=snap.rate_limited,
                    blocked_for_s=snap.blocked_for_s,
                    transport=ep.client.statistics() if isinstance(ep.client, HttpTransport) else None,
                )
            )
        return PoolStatistics(
            size=len(self._endpoints),
            calls=self._calls,
            retries=self._retries,
            failovers=self._failovers,
            waits=self._waits,
            failed=self._failed,
            sends_recovered_by_lookup=self._recovered,
            endpoints=tuple(eps),
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(ep.client.aclose() for ep in self._endpoints))

    def _ranked(self) -> list[_Endpoint]:
        return [self._by_health[id(h)] for h in rank([ep.health for ep in self._endpoints])]

    async def _run(self, op: Callable[[RpcClient], Awaitable[T]], *, resendable: bool = True) -> T:
        """Run ``op`` on the best endpoint, retrying and failing over as the policy allows."""
        self._calls += 1
        started = self._clock()
        attempts = 0
        current = self._ranked()[0]
        while True:
            wait = current.health.blocked_for()
            if wait > 0.0:
                # Every endpoint is down or parked: waiting is the only option, within budget.
                if self._clock() - started + wait > self.retry_policy.budget:
                    self._failed += 1
                    raise TransportError(
                        f"no endpoint available for {wait:.3f}s, beyond the retry budget "
                        f"({self.retry_policy.budget:g}s): {self!r}"
                    )
                self._waits += 1
                await self._sleep(wait)
            health = current.health
            health.on_attempt()
            t0 = self._clock()
            try:
                result = await op(current.client)
            except RateLimited as exc:
                health.record_rate_limited(exc.retry_after)
                err: RpcError = exc
            except NodeError as exc:
                # The node answered: it is healthy unless the error says it is struggling.
                if codec.is_transient(exc):
                    health.record_failure()
                else:
                    health.record_success(self._clock() - t0)
                err = exc
            except RpcError as exc:
                health.record_failure()
                err = exc
            else:
                health.record_success(self._clock() - t0)
                return result
            attempts += 1
            if not codec.should_retry(err) or not (resendable or isinstance(err, RateLimited)):
                self._failed += 1
                raise err
            others = [ep for ep in self._ranked() if ep is not current and ep.health.available()]
            retry_after = err.retry_after if isinstance(err, RateLimited) and not others else None
            decision = decide(
                self.retry_policy,
                attempts=attempts,
                elapsed=self._clock() - started,
                retry_after=retry_after,
                rng=self._rng,
            )
            if not decision.retry:
                self._failed += 1
                raise err
            self._retries += 1
            if others:
                self._failovers += 1
                current = others[0]
                continue
            if decision.delay > 0.0:
                self._waits += 1
                await self._sleep(decision.delay)
            current = self._ranked()[0]

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        """Reads are retried freely; methods in ``NOT_RESENDABLE`` only after a rate-limit answer."""
        return await self._run(
            lambda c: c.call(method, params, timeout=timeout), resendable=method not in NOT_RESENDABLE
        )

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        """The whole batch is retried on transport failure (unless it holds a ``NOT_RESENDABLE``
        method); per-call errors are returned as-is."""
        if not calls:
            return []
        resendable = not any(method in NOT_RESENDABLE for method, _ in calls)
        return await self._run(lambda c: c.batch(calls, timeout=timeout), resendable=resendable)

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        expected = codec.tx_hash(raw)
        maybe_delivered = False

        async def attempt(client: RpcClient) -> str:
            nonlocal maybe_delivered
            try:
                return await client.send_raw_transaction(raw, timeout=timeout)
            except (TransportError, InvalidResponse):
                maybe_delivered = True
                raise

        try:
            return await self._run(attempt)
        except NodeError as exc:
            if not (maybe_delivered and codec.is_definite(exc)):
                raise
            try:
                found = await self._run(lambda c: c.call("eth_getTransactionByHash", [expected], timeout=timeout))
            except RpcError:
                raise exc from None
            if found is None:
                raise
            self._recovered += 1
            self._failed -= 1
            return expected
