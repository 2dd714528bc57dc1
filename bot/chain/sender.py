"""``TxSender``: allocate a nonce, build, sign, send, and track every transaction to one end.

The pipeline for one intent (a ``TxRequest`` from one account):

1. ``tx_submission`` starts: the decision to send. Waiting for an in-flight slot, the fee
   oracle, the nonce, building and signing all count, as slo-tables.md defines.
2. The hash is computed locally and ``watch``ed *before* the first send, so its receipt cannot
   be missed.
3. ``eth_sendRawTransaction`` with the same raw bytes on every attempt (transport errors,
   timeouts and rate limits are retried with backoff, up to ``send_attempts``). A node's
   refusal is classified by ``ledger.classify_send_error``: the nonce is either freed for
   reuse or marked taken (and the allocator resynced). The intent is never re-signed.
   A refusal on a *retry* is checked against our own hash first: an earlier attempt whose
   answer was lost may have been accepted (anvil then says "nonce too low" once it is mined).
4. ``tx_submission`` ends when the node acknowledges the hash (``on_latency`` is called).
5. A tracking task waits for the receipt (``ReceiptTracker``); on its deadline it asks the
   node for the transaction: unknown -> ``dropped`` (or ``failed`` when no send was ever
   acknowledged), mined -> receipt fetched directly, still pending -> wait ``pending_grace``
   more, up to ``max_pending_wait``. A node that cannot be asked is no evidence either way:
   the nonce is never freed on that basis, and the record ends ``failed`` ("outcome unknown")
   only at ``max_pending_wait``, still watched so a late inclusion marks the nonce taken.

Each pipeline runs in a task the sender owns, shielded from the caller: cancelling a caller
cannot leave a transaction half-recorded. Freed nonces below in-flight ones are holes that
stall every later transaction in the node's queue; a new intent reuses them first, and if none
comes within ``hole_fill_after`` seconds the sender fills them with a zero-value self-transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.chain.errors import TxDropped, TxFailed, TxReverted
from bot.chain.fee_oracle import FeeOracle
from bot.chain.ledger import Ledger, NonceEffect, Reject, TxRecord, TxState, classify_send_error
from bot.chain.nonces import NonceAllocator, NonceManager
from bot.chain.receipts import Receipt, ReceiptTracker
from bot.chain.signer import Signer
from bot.chain.tx import TxRequest, build
from bot.rpc.errors import RpcError
from bot.rpc.protocol import RpcClient

log = logging.getLogger(__name__)

LatencyHook = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class SenderConfig:
    chain_id: int
    send_timeout: float = 5.0
    send_attempts: int = 4
    confirm_timeout: float = 30.0
    pending_grace: float = 10.0
    max_pending_wait: float = 120.0
    lookup_attempts: int = 3
    max_in_flight: int = 1024
    hole_fill_after: float = 0.5
    keep_recent: int = 1000

    def __post_init__(self) -> None:
        for name in ("send_timeout", "confirm_timeout", "pending_grace", "max_pending_wait", "hole_fill_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sender.{name} must be > 0, got {getattr(self, name)}")
        for name in ("send_attempts", "lookup_attempts", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"sender.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    max_in_flight: int
    in_flight: int
    opened: int
    by_state: dict[str, int]
    fillers: int
    resyncs: int


class TxSender:
    def __init__(
        self,
        rpc: RpcClient,
        signer: Signer,
        nonces: NonceManager,
        receipts: ReceiptTracker,
        fees: FeeOracle,
        *,
        config: SenderConfig,
        on_latency: LatencyHook | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._rpc = rpc
        self._signer = signer
        self._nonces = nonces
        self._receipts = receipts
        self._fees = fees
        self.config = config
        self._on_latency = on_latency
        self._clock = clock_ns
        self.ledger = Ledger(keep_recent=config.keep_recent)
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._done: dict[int, asyncio.Future[TxRecord]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fillers_pending: set[str] = set()
        self._resyncs_pending: set[str] = set()
        self._fillers = 0
        self._resyncs = 0
        self._closed = False

    # -- public API -------------------------------------------------------------------------

    async def submit(self, sender: str, request: TxRequest) -> TxRecord:
        """Returns once the node acknowledged the hash, or the intent ended (rejected/failed)."""
        if self._closed:
            raise RuntimeError("TxSender is closed")
        t0 = self._clock()
        acked: asyncio.Future[TxRecord] = asyncio.get_running_loop().create_future()
        self._spawn(self._pipeline(sender, request, t0, acked, filler=False))
        return await asyncio.shield(acked)

    async def wait(self, rec: TxRecord) -> TxRecord:
        """Wait for the record's terminal state (bounded: tracking ends by ``max_pending_wait``)."""
        fut = self._done.get(rec.id)
        if fut is None:
            return rec
        return await asyncio.shield(fut)

    async def execute(self, sender: str, request: TxRequest) -> TxRecord:
        return await self.wait(await self.submit(sender, request))

    def statistics(self) -> SenderStatistics:
        ls = self.ledger.statistics()
        return SenderStatistics(
            max_in_flight=self.config.max_in_flight,
            in_flight=ls.in_flight,
            opened=ls.opened,
            by_state=ls.by_state,
            fillers=self._fillers,
            resyncs=self._resyncs,
        )

    async def drain(self, within: float) -> bool:
        """Wait until every live record is terminal; False if ``within`` seconds ran out first."""
        try:
            async with asyncio.timeout(within):
                while self._done or self._tasks:
                    await asyncio.gather(*list(self._done.values()), *list(self._tasks), return_exceptions=True)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop tracking; live records end as ``failed`` ("sender closed"), never vanish."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for rec in self.ledger.live():
            self._finish(rec, TxState.FAILED, error_kind=TxFailed.kind, reason="sender closed before an outcome")

    def __repr__(self) -> str:
        s = self.ledger.statistics()
        return (
            f"TxSender(in_flight={s.in_flight}/{self.config.max_in_flight}, opened={s.opened}, closed={self._closed})"
        )

    # -- pipeline ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pipeline(
        self, sender: str, request: TxRequest, t0: int, acked: asyncio.Future[TxRecord] | None, *, filler: bool
    ) -> None:
        await self._slots.acquire()
        slot_held = True
        rec: TxRecord | None = None
        try:
            if not filler:
                rec = self._open(sender, request.label, t0)
            try:
                alloc = await self._nonces.allocator(sender)
                fees = await self._fees.fees()
            except RpcError as exc:
                if rec is not None:
                    self._finish(rec, TxState.FAILED, error_kind=exc.kind, reason=f"before nonce assignment: {exc}")
                return
            if rec is None:  # a filler: opened only if the hole is still there
                if not alloc.holes():
                    return  # a real intent reused the hole meanwhile
                rec = self._open(sender, request.label, t0)
            nonce = alloc.allocate()
            rec.nonce = nonce
            try:
                signed = await self._signer.sign(sender, build(self.config.chain_id, nonce, request, fees))
            except Exception as exc:
                alloc.release(nonce)
                self._finish(rec, TxState.FAILED, error_kind="sign", reason=f"signing failed: {exc!r}")
                return
            rec.hash = signed.hash
            self.ledger.transition(rec, TxState.SIGNED, self._clock())
            receipt_fut = self._receipts.watch(signed.hash)
            alloc.mark_sent(nonce)
            slot_held = False  # from here the tracking path owns the slot
            await self._send(rec, alloc, signed.raw, receipt_fut, t0)
        except BaseException as exc:
            if rec is not None and not rec.terminal and rec.state in (TxState.CREATED, TxState.SIGNED):
                self._abandon(rec, exc)
            if not isinstance(exc, Exception):
                raise
            # A bug, now recorded on the transaction; logged here because no caller awaits this task.
            log.exception("tx pipeline for %s raised; recorded as %s", sender, rec.state if rec else "nothing")
        finally:
            if slot_held:
                self._slots.release()
            if acked is not None and not acked.done():
                if rec is not None:
                    acked.set_result(rec)
                else:
                    acked.set_exception(RuntimeError("submission ended before a record was opened"))

    def _open(self, sender: str, label: str, t0: int) -> TxRecord:
        rec = self.ledger.open(sender, label, t0)
        self._done[rec.id] = asyncio.get_running_loop().create_future()
        return rec

    def _abandon(self, rec: TxRecord, exc: BaseException) -> None:
        # Cancelled (sender closing) or a bug before the first send attempt: the node never got it.
        if rec.nonce is not None and rec.state is TxState.CREATED:
            alloc = self._nonces.get(rec.sender)
            if alloc is not None:
                alloc.release(rec.nonce)
        if rec.state is TxState.SIGNED:
            # mark_sent already happened and a send may have reached the node: keep it tracked
            # (unless the sender is closing, which settles every live record itself).
            alloc = self._nonces.get(rec.sender)
            if isinstance(exc, Exception) and alloc is not None and rec.hash is not None and not self._closed:
                self.ledger.transition(
                    rec, TxState.UNACKED, self._clock(), error_kind="internal", reason=f"send raised {exc!r}"
                )
                self._spawn(self._track(rec, alloc, self._receipts.watch(rec.hash)))
            return
        self._finish(rec, TxState.FAILED, error_kind="internal", reason=f"abandoned: {exc!r}")

    async def _send(
        self,
        rec: TxRecord,
        alloc: NonceAllocator,
        raw: bytes,
        receipt_fut: asyncio.Future[Receipt],
        t0: int,
    ) -> None:
        assert rec.hash is not None and rec.nonce is not None
        last: RpcError | None = None
        for attempt in range(1, self.config.send_attempts + 1):
            rec.attempts = attempt
            try:
                node_hash = await self._rpc.send_raw_transaction(raw, timeout=self.config.send_timeout)
            except RpcError as exc:
                decision = classify_send_error(exc, attempt)
                if isinstance(decision, Reject) and attempt > 1:
                    # An earlier attempt may have reached the node with only its answer lost; a
                    # refusal now ("nonce too low" from anvil once it is mined; or anything from
                    # another endpoint of a pool) may be about that copy. Ask before concluding.
                    known = await self._lookup_tx(rec.hash)
                    if known in ("pending", "mined"):
                        self._acknowledge(rec, alloc, receipt_fut, t0)
                        return
                    if known == "unreachable":
                        self.ledger.transition(
                            rec,
                            TxState.UNACKED,
                            self._clock(),
                            error_kind=exc.kind,
                            reason=f"refused on retry ({exc}) but the node could not be asked about the first try",
                        )
                        self._spawn(self._track(rec, alloc, receipt_fut))
                        return
                if isinstance(decision, Reject):
                    self._receipts.unwatch(rec.hash)
                    if decision.nonce is NonceEffect.TAKEN:
                        alloc.confirm(rec.nonce)
                        self._schedule_resync(rec.sender)
                    else:
                        alloc.release(rec.nonce)
                        self._schedule_hole_fill(rec.sender, alloc)
                    self._finish(rec, TxState.REJECTED, error_kind=decision.error.kind, reason=str(exc), slot=True)
                    return
                last = exc
                if attempt < self.config.send_attempts:
                    await asyncio.sleep(decision.delay)
                continue
            if node_hash.lower() != rec.hash:
                log.warning("node returned hash %s for our %s; tracking ours", node_hash, rec.hash)
            self._acknowledge(rec, alloc, receipt_fut, t0)
            return
        self.ledger.transition(
            rec,
            TxState.UNACKED,
            self._clock(),
            error_kind=last.kind if last else None,
            reason=f"no acknowledgement after {self.config.send_attempts} attempts: {last}",
        )
        self._spawn(self._track(rec, alloc, receipt_fut))

    def _acknowledge(self, rec: TxRecord, alloc: NonceAllocator, receipt_fut: asyncio.Future[Receipt], t0: int) -> None:
        now = self._clock()
        self.ledger.transition(rec, TxState.SUBMITTED, now)
        self._spawn(self._track(rec, alloc, receipt_fut))
        if self._on_latency is not None:
            try:
                self._on_latency("tx_submission", max((now - t0) // 1000, 1))
            except Exception:
                # A telemetry bug must not strand a transaction the node already holds.
                log.exception("on_latency hook failed")

    async def _track(self, rec: TxRecord, alloc: NonceAllocator, fut: asyncio.Future[Receipt]) -> None:
        assert rec.hash is not None and rec.nonce is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        wait = self.config.confirm_timeout
        try:
            while True:
                try:
                    receipt = await asyncio.wait_for(asyncio.shield(fut), timeout=wait)
                    break
                except TimeoutError:
                    pass
                known = await self._lookup_tx(rec.hash)
                if known == "mined":
                    found = await self._lookup_receipt(rec.hash)
                    if found is not None:
                        receipt = found
                        break
                if known == "unknown":
                    self._receipts.unwatch(rec.hash)
                    alloc.release(rec.nonce)
                    self._schedule_hole_fill(rec.sender, alloc)
                    if rec.state is TxState.UNACKED:
                        self._finish(
                            rec,
                            TxState.FAILED,
                            error_kind=TxFailed.kind,
                            reason="node never acknowledged it and does not hold it",
                            slot=True,
                        )
                    else:
                        self._finish(
                            rec,
                            TxState.DROPPED,
                            error_kind=TxDropped.kind,
                            reason=f"not mined within {loop.time() - started:.1f}s and not in the pool",
                            slot=True,
                        )
                    return
                # Pending, or the node could not be asked: an unreachable node is no evidence that
                # the transaction is gone, so the nonce is never freed on that basis.
                if loop.time() - started >= self.config.max_pending_wait:
                    # Keep the receipt waiter (bounded by the tracker's max_watching) so that a
                    # late inclusion still marks the nonce taken.
                    fut.add_done_callback(_confirm_when_mined(alloc, rec.nonce))
                    why = "still pending" if known == "pending" else "outcome unknown (node unreachable)"
                    self._finish(
                        rec,
                        TxState.FAILED,
                        error_kind=TxFailed.kind,
                        reason=f"{why} after {self.config.max_pending_wait:.0f}s",
                        slot=True,
                    )
                    return
                wait = self.config.pending_grace
            alloc.confirm(rec.nonce)
            rec.block, rec.gas_used = receipt.block_number, receipt.gas_used
            if receipt.status == 1:
                self._finish(rec, TxState.MINED_OK, slot=True)
            else:
                self._finish(rec, TxState.REVERTED, error_kind=TxReverted.kind, reason="status 0", slot=True)
        except asyncio.CancelledError:
            if not rec.terminal:
                self._finish(rec, TxState.FAILED, error_kind=TxFailed.kind, reason="tracking cancelled", slot=True)
            raise

    async def _lookup_tx(self, tx_hash: str) -> str:
        """'unknown' | 'pending' | 'mined' | 'unreachable' after ``lookup_attempts`` tries."""
        for attempt in range(1, self.config.lookup_attempts + 1):
            try:
                tx = await self._rpc.call("eth_getTransactionByHash", [tx_hash], timeout=self.config.send_timeout)
            except RpcError as exc:
                decision = classify_send_error(exc, attempt)
                if isinstance(decision, Reject):
                    return "unreachable"
                await asyncio.sleep(decision.delay)
                continue
            if tx is None:
                return "unknown"
            return "pending" if tx.get("blockNumber") is None else "mined"
        return "unreachable"

    async def _lookup_receipt(self, tx_hash: str) -> Receipt | None:
        for _ in range(self.config.lookup_attempts):
            try:
                return await self._receipts.lookup(tx_hash)
            except RpcError:
                await asyncio.sleep(0.05)
        return None

    def _finish(
        self,
        rec: TxRecord,
        state: TxState,
        *,
        error_kind: str | None = None,
        reason: str | None = None,
        slot: bool = False,
    ) -> None:
        self.ledger.transition(rec, state, self._clock(), error_kind=error_kind, reason=reason)
        if slot:
            self._slots.release()
        fut = self._done.pop(rec.id, None)
        if fut is not None and not fut.done():
            fut.set_result(rec)

    # -- background repairs -----------------------------------------------------------------

    def _schedule_hole_fill(self, sender: str, alloc: NonceAllocator) -> None:
        if self._closed or sender in self._fillers_pending or not alloc.holes():
            return
        self._fillers_pending.add(sender)
        self._spawn(self._fill_holes(sender, alloc))

    async def _fill_holes(self, sender: str, alloc: NonceAllocator) -> None:
        try:
            await asyncio.sleep(self.config.hole_fill_after)
            for _ in range(len(alloc.holes())):
                if not alloc.holes():
                    break
                self._fillers += 1
                filler = TxRequest(to=sender, value=0, label="nonce_filler")
                await self._pipeline(sender, filler, self._clock(), None, filler=True)
        finally:
            self._fillers_pending.discard(sender)

    def _schedule_resync(self, sender: str) -> None:
        if self._closed or sender in self._resyncs_pending:
            return
        self._resyncs_pending.add(sender)
        self._spawn(self._resync(sender))

    async def _resync(self, sender: str) -> None:
        try:
            self._resyncs += 1
            await self._nonces.resync(sender)
        except RpcError as exc:
            log.warning("nonce resync for %s failed: %s", sender, exc)
        finally:
            self._resyncs_pending.discard(sender)


def _confirm_when_mined(alloc: NonceAllocator, nonce: int) -> Callable[[asyncio.Future[Receipt]], None]:
    def done(fut: asyncio.Future[Receipt]) -> None:
        if not fut.cancelled():
            alloc.confirm(nonce)

    return done
