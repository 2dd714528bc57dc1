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

``send_raw_transaction_on`` / ``call_on`` make one attempt on one named endpoint (names from
``endpoint_names``, best first), with none of the above: ``TxSender`` uses them because its
lifecycle tracks which endpoint may hold which signed bytes and retries by itself.

**Rate limits.** Every attempt holds a slot of its endpoint's adaptive limit (``bot.rpc.limiter``):
a 429 halves the calls that endpoint may have in flight instead of stopping all traffic, and while
the limit is the bottleneck, sends go first, then ``CONFIRM`` calls (receipts, lookups, nonces, fees:
the default lane), then reads. A rate-limit park (capped at ``HealthPolicy.max_retry_after``) only
ranks the endpoint behind available peers; the pool waits for an endpoint only while its breaker is
open. A call made with ``fail_fast`` (``view(lane, fail_fast=True)``, and ``reads()`` for a trade's
reads) never sleeps: it does not wait out a breaker or a Retry-After, and is retried only at once
(on another available endpoint, or on the same one after a failure that was neither a rate limit
nor a timeout). Its caller has a better next step than waiting: a pair's actor takes its next tick,
the receipt tracker fetches the block again on its next pass, the fee oracle keeps its last fee.
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
from bot.rpc.config import HealthPolicy, LimitPolicy, RetryPolicy
from bot.rpc.errors import InvalidResponse, NodeError, RateLimited, RpcError, RpcTimeout, Throttled, TransportError
from bot.rpc.health import BreakerState, EndpointHealth, rank
from bot.rpc.limiter import EndpointLimiter
from bot.rpc.protocol import RpcClient
from bot.rpc.ratelimit import Lane, LimitStatistics, Outcome
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
    limit: LimitStatistics | None = None


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
    __slots__ = ("client", "health", "limiter")

    def __init__(self, client: RpcClient, health: EndpointHealth, limiter: EndpointLimiter) -> None:
        self.client = client
        self.health = health
        self.limiter = limiter


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
        limit_policy: LimitPolicy | None = None,
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
            name = str(getattr(client, "name", None) or f"endpoint-{i}")
            limiter = EndpointLimiter(name, limit_policy, clock=clock)
            self._endpoints.append(_Endpoint(client, EndpointHealth(name, policy, clock), limiter))
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
                    limit=ep.limiter.statistics(),
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

    def view(self, lane: Lane, *, fail_fast: bool = False) -> RpcClient:
        """This pool as an ``RpcClient`` whose calls and batches go in ``lane`` (see the module docstring)."""
        return _LaneView(self, lane, fail_fast)

    def reads(self) -> RpcClient:
        """This pool for a trade's reads: lane ``READ``, failing fast."""
        return _LaneView(self, Lane.READ, True)

    async def _attempt(self, ep: _Endpoint, op: Callable[[RpcClient], Awaitable[T]], lane: Lane,
                       wait: float | None) -> T:
        """One attempt on ``ep`` inside a slot of its limit, its outcome recorded in both health and limit.
        ``Throttled`` (no slot within ``wait``) leaves before the attempt: nothing is recorded."""
        ticket = await ep.limiter.acquire(lane, wait)
        health = ep.health
        outcome, hold = Outcome.NEUTRAL, 0.0
        health.on_attempt()
        t0 = self._clock()
        try:
            result = await op(ep.client)
        except RateLimited as exc:
            hold = health.record_rate_limited(exc.retry_after)
            outcome = Outcome.RATE_LIMITED
            raise
        except NodeError as exc:
            # The node answered: it is healthy unless the error says it is struggling.
            if codec.is_transient(exc):
                health.record_failure()
            else:
                health.record_success(self._clock() - t0)
                outcome = Outcome.OK
            raise
        except RpcError:
            health.record_failure()
            raise
        else:
            health.record_success(self._clock() - t0)
            outcome = Outcome.OK
        finally:
            ep.limiter.release(ticket, outcome, hold=hold)
        return result

    async def _run(self, op: Callable[[RpcClient], Awaitable[T]], *, resendable: bool = True,
                   lane: Lane = Lane.CONFIRM, timeout: float | None = None, fail_fast: bool = False) -> T:
        """Run ``op`` on the best endpoint, retrying and failing over as the policy (and ``fail_fast``) allows."""
        self._calls += 1
        started = self._clock()
        attempts = 0
        # A slot is waited for at most the call's own time limit (the budget when it has none).
        wait_bound = timeout if timeout is not None else self.retry_policy.budget
        current = self._ranked()[0]
        while True:
            wait = current.health.blocked_for(parks=False)
            if wait > 0.0:
                # Every endpoint's breaker is open: waiting is the only option, within budget.
                if fail_fast or self._clock() - started + wait > self.retry_policy.budget:
                    self._failed += 1
                    raise TransportError(
                        f"no endpoint available for {wait:.3f}s, "
                        + ("and a fail-fast call does not wait" if fail_fast else
                           f"beyond the retry budget ({self.retry_policy.budget:g}s)") + f": {self!r}"
                    )
                self._waits += 1
                await self._sleep(wait)
            try:
                return await self._attempt(current, op, lane, wait_bound)
            except RpcError as exc:
                err: RpcError = exc
            attempts += 1
            if (isinstance(err, Throttled) or not codec.should_retry(err)
                    or not (resendable or isinstance(err, RateLimited))):
                self._failed += 1
                raise err
            others = [ep for ep in self._ranked() if ep is not current and ep.health.available()]
            if fail_fast:
                nxt = self._next_at_once(current, err, others, attempts)
                if nxt is None:
                    self._failed += 1
                    raise err
                self._retries += 1
                self._failovers += nxt is not current
                current = nxt
                continue
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

    def _next_at_once(self, current: _Endpoint, err: RpcError, others: list[_Endpoint],
                      attempts: int) -> _Endpoint | None:
        """Where a failed fail-fast call goes at once, if anywhere: another available endpoint, else the
        same one after a failure that a prompt second try may fix (a dropped connection, garbage).
        Never after a rate limit (the endpoint asked for less) or a timeout (the answer is late already)."""
        if attempts >= self.retry_policy.max_attempts:
            return None
        if others:
            return others[0]
        if isinstance(err, RateLimited | RpcTimeout) or not current.health.available():
            return None
        return current

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None,
                   lane: Lane = Lane.CONFIRM, fail_fast: bool = False) -> Any:
        """Reads are retried freely; methods in ``NOT_RESENDABLE`` only after a rate-limit answer."""
        return await self._run(
            lambda c: c.call(method, params, timeout=timeout), resendable=method not in NOT_RESENDABLE,
            lane=lane, timeout=timeout, fail_fast=fail_fast,
        )

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None,
        lane: Lane = Lane.CONFIRM, fail_fast: bool = False,
    ) -> list[Any | RpcError]:
        """The whole batch is retried on transport failure (unless it holds a ``NOT_RESENDABLE``
        method); per-call errors are returned as-is."""
        if not calls:
            return []
        resendable = not any(method in NOT_RESENDABLE for method, _ in calls)
        return await self._run(lambda c: c.batch(calls, timeout=timeout), resendable=resendable, lane=lane,
                               timeout=timeout, fail_fast=fail_fast)

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
            return await self._run(attempt, lane=Lane.SEND, timeout=timeout)
        except NodeError as exc:
            if not (maybe_delivered and codec.is_definite(exc)):
                raise
            try:
                found = await self._run(lambda c: c.call("eth_getTransactionByHash", [expected], timeout=timeout),
                                        timeout=timeout)
            except RpcError:
                raise exc from None
            if found is None:
                raise
            self._recovered += 1
            self._failed -= 1
            return expected

    # -- pinned calls ---------------------------------------------------------------------------
    # The sender's lifecycle must know which endpoint received which signed bytes (to ask exactly
    # those endpoints after an ambiguous outcome), so it makes single attempts on named endpoints
    # and does its own retries. Health is recorded as in ``_run``, so the ranking stays informed.

    def endpoint_names(self) -> tuple[str, ...]:
        """Every endpoint's name, best-ranked first. Names are unique: a repeated one gets ``#index``."""
        names = self._unique_names()
        return tuple(names[id(ep)] for ep in self._ranked())

    async def send_raw_transaction_on(self, endpoint: str, raw: bytes, *, timeout: float | None = None) -> str:
        """One send to the named endpoint: no retry, no failover, no lookup (the caller does those)."""
        return await self._once(endpoint, lambda c: c.send_raw_transaction(raw, timeout=timeout), Lane.SEND, timeout)

    async def call_on(
        self, endpoint: str, method: str, params: Sequence[Any] = (), *, timeout: float | None = None
    ) -> Any:
        """One call on the named endpoint: no retry, no failover."""
        return await self._once(endpoint, lambda c: c.call(method, params, timeout=timeout), Lane.CONFIRM, timeout)

    def _unique_names(self) -> dict[int, str]:
        names: dict[int, str] = {}
        seen: set[str] = set()
        for i, ep in enumerate(self._endpoints):
            name = ep.health.name if ep.health.name not in seen else f"{ep.health.name}#{i}"
            seen.add(name)
            names[id(ep)] = name
        return names

    async def _once(self, endpoint: str, op: Callable[[RpcClient], Awaitable[T]], lane: Lane,
                    timeout: float | None) -> T:
        names = self._unique_names()
        current = next((ep for ep in self._endpoints if names[id(ep)] == endpoint), None)
        if current is None:
            raise ValueError(f"EndpointPool: no endpoint named {endpoint!r}; known: {sorted(names.values())}")
        self._calls += 1
        try:
            return await self._attempt(current, op, lane, timeout if timeout is not None else self.retry_policy.budget)
        except RpcError:
            self._failed += 1
            raise


class _LaneView:
    """An ``RpcClient`` whose calls and batches go through ``pool`` in one lane (``EndpointPool.view``).
    It owns nothing: closing it leaves the pool open."""

    def __init__(self, pool: EndpointPool, lane: Lane, fail_fast: bool) -> None:
        self._pool = pool
        self.lane = lane
        self.fail_fast = fail_fast

    def __repr__(self) -> str:
        return f"<{self.lane.label} lane{' (fail fast)' if self.fail_fast else ''} of {self._pool!r}>"

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:
        return await self._pool.call(method, params, timeout=timeout, lane=self.lane, fail_fast=self.fail_fast)

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any | RpcError]:
        return await self._pool.batch(calls, timeout=timeout, lane=self.lane, fail_fast=self.fail_fast)

    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:
        return await self._pool.send_raw_transaction(raw, timeout=timeout)

    async def aclose(self) -> None:
        pass
