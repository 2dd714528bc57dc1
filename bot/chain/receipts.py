"""Receipt tracking driven by new heads, with ``eth_getBlockReceipts`` per block.

One ``eth_getBlockReceipts`` per new block resolves every waiting transaction in that block,
instead of one ``eth_getTransactionReceipt`` per transaction per poll: at 1000 tx/s that is the
difference between ~1 and ~1000+ requests per block.

Heads come from a subscription (an async iterator of block numbers, e.g. the rpc engineer's
``WsSubscriber`` newHeads) or, when there is none or it ends, from polling ``eth_blockNumber``
every ``poll_interval``. ``HeadCursor`` (pure) decides which blocks to fetch: every block after
the last one processed, at most ``max_catchup`` of them; when more were skipped (a long stall)
the waiters are looked up one by one instead (``eth_getTransactionReceipt``, in one batch).
A node without ``eth_getBlockReceipts`` (JSON-RPC "method not found") gets those batched
per-transaction lookups on every new block instead.

Heads pushed by the caller (``on_head``, after ``use_subscription(True)``) replace polling while
the subscription is live; ``use_subscription(False)`` (the WebSocket gave up reconnecting for
now) falls back to polling until it is live again. Both switches are counted (``fallbacks``,
``resumed``).

Everything read from the node is checked (``bot.rpc.shapes``): a malformed receipt is counted
(``invalid``) and skipped, never the end of the loop; only receipts someone waits for are parsed
in full. An ``eth_getBlockReceipts`` answer that is not an array is looked up per transaction
instead. ``run()`` runs the loops until cancelled, and raises if one of them crashes, so a
supervisor can restart it; the tracker's state (waiters, cursor) survives the restart.

Callers must ``watch()`` a hash *before* sending it, so a block cannot be processed between the
send and the registration. Waits are bounded by the caller (``asyncio.wait_for``); the tracker
itself never waits without a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bot.rpc import shapes
from bot.rpc.errors import InvalidResponse, NodeError, RpcError
from bot.rpc.protocol import RpcClient
from bot.rpc.shapes import Receipt

__all__ = ["METHOD_NOT_FOUND", "HeadCursor", "Receipt", "ReceiptStatistics", "ReceiptTracker"]

log = logging.getLogger(__name__)
METHOD_NOT_FOUND = -32601


class HeadCursor:
    """Which blocks to fetch when a new head arrives (pure)."""

    def __init__(self, start_after: int | None = None, *, max_catchup: int = 64) -> None:
        if max_catchup < 1:
            raise ValueError(f"receipts.max_catchup must be >= 1, got {max_catchup}")
        self.last = start_after
        self.max_catchup = max_catchup
        self.skipped = 0

    def advance(self, head: int) -> tuple[range, bool]:
        """Blocks to fetch, and whether some were skipped (waiters then need direct lookups)."""
        if self.last is None:
            self.last = head - 1
        if head <= self.last:
            return range(0), False
        first = self.last + 1
        skipped = head - first + 1 > self.max_catchup
        if skipped:
            self.skipped += head - first + 1 - self.max_catchup
            first = head - self.max_catchup + 1
        return range(first, head + 1), skipped

    def done(self, block: int) -> None:
        if self.last is None or block > self.last:
            self.last = block


@dataclass(frozen=True, slots=True)
class ReceiptStatistics:
    watching: int
    last_block: int | None
    blocks_fetched: int
    blocks_skipped: int
    receipts_matched: int
    direct_lookups: int
    fetch_errors: int
    polling: bool
    block_receipts: bool
    invalid: int = 0  # malformed answers counted and skipped
    fallbacks: int = 0  # switches from a live subscription to polling
    resumed: int = 0  # switches back to the subscription after a fallback


class ReceiptTracker:
    def __init__(
        self,
        rpc: RpcClient,
        *,
        poll_interval: float = 0.05,
        max_catchup: int = 64,
        fetch_timeout: float = 5.0,
        max_watching: int = 100_000,
        on_invalid: Callable[[str], None] | None = None,
    ) -> None:
        self._rpc = rpc
        self.poll_interval = poll_interval
        self.fetch_timeout = fetch_timeout
        self.max_watching = max_watching
        self._cursor = HeadCursor(max_catchup=max_catchup)
        self._waiters: dict[str, asyncio.Future[Receipt]] = {}
        self._target: int | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._polling = True  # until a subscription says it is live
        self._block_receipts = True  # False once the node said it has no eth_getBlockReceipts
        self._fetched = self._matched = self._lookups = self._errors = 0
        self._on_invalid = on_invalid
        self._invalid = self._fallbacks = self._resumed = 0
        self._mode = asyncio.Event()  # set when polling is switched on or off
        self._ever_live = False

    def watch(self, tx_hash: str) -> asyncio.Future[Receipt]:
        key = tx_hash.lower()
        fut = self._waiters.get(key)
        if fut is None:
            if len(self._waiters) >= self.max_watching:
                raise RuntimeError(
                    f"receipt tracker is watching {self.max_watching} transactions; raise max_watching "
                    "or lower the sender's max_in_flight"
                )
            fut = asyncio.get_running_loop().create_future()
            self._waiters[key] = fut
        return fut

    def unwatch(self, tx_hash: str) -> None:
        fut = self._waiters.pop(tx_hash.lower(), None)
        if fut is not None and not fut.done():
            fut.cancel()

    def start(self, heads: AsyncIterator[int] | None = None) -> None:
        """Start processing in a task: from ``heads`` if given, polling when it is absent or ends."""
        if self._tasks:
            raise RuntimeError("receipt tracker already started")
        self._tasks.append(asyncio.create_task(self.run(heads), name="receipts"))

    async def run(self, heads: AsyncIterator[int] | None = None) -> None:
        """The head feed (``heads``, pushes or polling) and block processing, until cancelled.

        Both loops are endless: if one crashes, the other is stopped and the crash raised.
        """
        self._wake.set()  # a restart picks up where the cursor stands
        feed = asyncio.create_task(self._feed(heads), name="receipts-heads")
        process = asyncio.create_task(self._process(), name="receipts-process")
        try:
            done, _ = await asyncio.wait({feed, process}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise RuntimeError("receipt tracker loop returned")
        finally:
            for task in (feed, process):
                task.cancel()
            await asyncio.gather(feed, process, return_exceptions=True)

    def use_subscription(self, live: bool) -> None:
        """Heads arrive through ``on_head`` while ``live``; otherwise the tracker polls ``eth_blockNumber``."""
        polling = not live
        if polling == self._polling:
            return
        self._polling = polling
        if polling and self._ever_live:
            self._fallbacks += 1
            log.warning("head subscription unavailable; receipts fall back to polling every %g s", self.poll_interval)
        elif not polling:
            if self._ever_live:
                self._resumed += 1
                log.info("head subscription live again; receipts stop polling")
            self._ever_live = True
        self._mode.set()

    def on_head(self, block_number: int) -> None:
        """New-head notification (for push-style subscribers)."""
        if self._target is None or block_number > self._target:
            self._target = block_number
            self._wake.set()

    async def lookup(self, tx_hash: str) -> Receipt | None:
        """One direct ``eth_getTransactionReceipt``; resolves the waiter if mined."""
        self._lookups += 1
        obj = await self._rpc.call("eth_getTransactionReceipt", [tx_hash], timeout=self.fetch_timeout)
        if obj is None:
            return None
        try:
            receipt = shapes.receipt(obj)
        except InvalidResponse as exc:
            self._count_invalid("receipt", exc)
            raise
        self._resolve(receipt)
        return receipt

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    def statistics(self) -> ReceiptStatistics:
        return ReceiptStatistics(
            watching=len(self._waiters),
            last_block=self._cursor.last,
            blocks_fetched=self._fetched,
            blocks_skipped=self._cursor.skipped,
            receipts_matched=self._matched,
            direct_lookups=self._lookups,
            fetch_errors=self._errors,
            polling=self._polling,
            block_receipts=self._block_receipts,
            invalid=self._invalid,
            fallbacks=self._fallbacks,
            resumed=self._resumed,
        )

    def __repr__(self) -> str:
        return (
            f"ReceiptTracker(watching={len(self._waiters)}, last_block={self._cursor.last}, "
            f"polling={self._polling}, running={bool(self._tasks)})"
        )

    def _resolve(self, receipt: Receipt) -> None:
        fut = self._waiters.pop(receipt.tx_hash, None)
        if fut is not None and not fut.done():
            fut.set_result(receipt)
            self._matched += 1

    def _accept(self, obj: Any) -> None:
        """One receipt from the node: resolves its waiter; garbage is counted and skipped."""
        try:
            if shapes.receipt_hash(obj) not in self._waiters:
                return  # nobody waits for it: not worth a full parse
            receipt = shapes.receipt(obj)
        except InvalidResponse as exc:
            self._count_invalid("receipt", exc)
            return
        self._resolve(receipt)

    def _count_invalid(self, what: str, exc: InvalidResponse) -> None:
        self._invalid += 1
        # The first one and then one in a hundred: a node that answers garbage must not flood the log.
        level = logging.WARNING if self._invalid % 100 == 1 else logging.DEBUG
        log.log(level, "invalid %s from the node (%d so far): %s", what, self._invalid, exc)
        if self._on_invalid is not None:
            self._on_invalid(what)

    async def _feed(self, heads: AsyncIterator[int] | None) -> None:
        if heads is not None:
            self.use_subscription(True)
            try:
                async for head in heads:
                    self.on_head(head)
            except RpcError as exc:
                log.warning("head subscription failed (%s); falling back to polling", exc)
            self.use_subscription(False)
        await self._poll()

    async def _poll(self) -> None:
        while True:
            if not self._polling:
                self._mode.clear()
                await self._mode.wait()
                continue
            try:
                raw = await self._rpc.call("eth_blockNumber", [], timeout=self.fetch_timeout)
                self.on_head(shapes.small_quantity(raw, "eth_blockNumber"))
            except InvalidResponse as exc:
                self._errors += 1
                self._count_invalid("block_number", exc)
            except RpcError as exc:
                self._errors += 1
                log.debug("eth_blockNumber failed: %s", exc)
            await asyncio.sleep(self.poll_interval)

    async def _process(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            target = self._target
            if target is None:
                continue
            blocks, skipped = self._cursor.advance(target)
            if blocks and not self._block_receipts:
                # Per-transaction mode: one batched lookup covers every new block at once.
                await self._lookup_all()
                self._cursor.done(blocks[-1])
                continue
            for block in blocks:
                if not await self._fetch_block(block):
                    # Retry this block on the next wake-up rather than skipping its receipts.
                    await asyncio.sleep(self.poll_interval)
                    self._wake.set()
                    break
                self._cursor.done(block)
            if skipped:
                await self._lookup_all()

    async def _fetch_block(self, block: int) -> bool:
        if not self._block_receipts:
            await self._lookup_all()
            return True
        try:
            raw = await self._rpc.call("eth_getBlockReceipts", [hex(block)], timeout=self.fetch_timeout)
            receipts = shapes.block_receipts(raw)
        except InvalidResponse as exc:
            # Retrying a block the node answers with garbage could stall the cursor for good; its
            # waiters are looked up one by one instead.
            self._count_invalid("block_receipts", exc)
            await self._lookup_all()
            return True
        except NodeError as exc:
            if exc.code == METHOD_NOT_FOUND or "not supported" in exc.message.lower():
                log.warning("node has no eth_getBlockReceipts (%s); looking receipts up per transaction", exc)
                self._block_receipts = False
                await self._lookup_all()
                return True
            self._errors += 1
            return False
        except RpcError as exc:
            self._errors += 1
            log.debug("eth_getBlockReceipts(%d) failed: %s", block, exc)
            return False
        self._fetched += 1
        for obj in receipts or ():
            self._accept(obj)
        return True

    async def _lookup_all(self) -> None:
        hashes = list(self._waiters)
        for i in range(0, len(hashes), 100):
            chunk = hashes[i : i + 100]
            try:
                results = await self._rpc.batch(
                    [("eth_getTransactionReceipt", [h]) for h in chunk], timeout=self.fetch_timeout
                )
            except RpcError:
                self._errors += 1
                continue
            self._lookups += len(chunk)
            for res in results:
                if res is not None and not isinstance(res, RpcError):  # None: not mined yet
                    self._accept(res)
