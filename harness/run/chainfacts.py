"""Chain facts for a reconciliation: each account's transaction count, and the fate of the ledger's hashes.

Bounded three ways: at most ``cap`` hashes are looked up (beyond it, every record that did not end
mined is kept, being where the surprises are, and the mined ones are sampled with a fixed seed;
``ChainFacts.sampled`` says so); batches of ``batch`` calls (``eth_getTransactionByHash``, then
``eth_getTransactionReceipt`` for the mined ones) with at most ``concurrency`` in flight; and a
``deadline``, after which the hashes not answered stay unchecked (``note`` says so). The node is
asked directly (``st.node_url``), never through the fault proxy the bot may be using.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.node.jsonrpc import NodeRpc, NodeRpcError
from harness.run.ledgerdump import ChainFacts, LedgerDump, TxFact


@dataclass(frozen=True)
class FactLimits:
    cap: int = 5000  # hashes looked up per session
    batch: int = 200
    concurrency: int = 4
    deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if min(self.cap, self.batch, self.concurrency) < 1 or self.deadline_s <= 0:
            raise ValueError(f"FactLimits: cap, batch and concurrency must be >= 1 and deadline_s > 0, got {self}")


def choose(dump: LedgerDump, cap: int, *, seed: int = 0) -> tuple[list[str], bool]:
    """Hashes to look up (pure): all of them within ``cap``; beyond it, the non-mined records' first, then a
    seeded sample of the mined. Returns (hashes, sampled)."""
    first: list[str] = []
    mined: list[tuple[str, ...]] = []
    for r in dump.records:
        if r.mined:
            mined.append(r.hashes)
        else:
            first += r.hashes
    every = len(first) + sum(len(h) for h in mined)
    if every <= cap:
        return first + [h for hs in mined for h in hs], False
    out = first[:cap]
    room = cap - len(out)
    picked = random.Random(seed).sample(mined, min(len(mined), room)) if room > 0 else []
    for hs in picked:
        if len(out) + len(hs) <= cap:
            out += hs
    return out, True


def _tx(h: str, raw: Any) -> TxFact | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"eth_getTransactionByHash({h}): not an object: {raw!r:.80}")
    block = raw.get("blockNumber")
    return TxFact(h, str(raw["from"]), int(str(raw["nonce"]), 16), None if block is None else int(str(block), 16))


async def _lookup(rpc: NodeRpc, hashes: Sequence[str], gate: asyncio.Semaphore, out: dict[str, TxFact | None]) -> None:
    async with gate:
        txs = await rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        facts: dict[str, TxFact | None] = {}
        for h, raw in zip(hashes, txs, strict=True):
            if not isinstance(raw, NodeRpcError):
                facts[h] = _tx(h, raw)
        mined = [h for h, f in facts.items() if f is not None and f.block is not None]
        receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in mined]) if mined else []
        for h, rc in zip(mined, receipts, strict=True):
            f = facts[h]
            assert f is not None
            status = rc.get("status") if isinstance(rc, Mapping) else None
            facts[h] = TxFact(f.hash, f.sender, f.nonce, f.block, None if status is None else int(str(status), 16))
    out.update(facts)


DEFAULT_LIMITS = FactLimits()


async def gather(url: str, dump: LedgerDump, limits: FactLimits = DEFAULT_LIMITS, *, seed: int = 0) -> ChainFacts:
    """Counts for every account of the dump, and the looked-up hashes; raises ``HarnessError`` when the
    node cannot give the counts (without them nothing can be reconciled)."""
    hashes, sampled = choose(dump, limits.cap, seed=seed)
    out: dict[str, TxFact | None] = {}
    notes: list[str] = []
    if sampled:
        notes.append(f"{len(hashes)} of the records' hashes looked up (cap {limits.cap}), the rest sampled out")
    async with NodeRpc(url, timeout=limits.deadline_s, max_batch=limits.batch) as rpc:
        addrs = sorted(dump.accounts)
        replies = await rpc.batch([("eth_getTransactionCount", [a, "latest"]) for a in addrs]) if addrs else []
        counts: dict[str, int] = {}
        for a, c in zip(addrs, replies, strict=True):
            if isinstance(c, NodeRpcError):
                raise HarnessError(f"eth_getTransactionCount({a}): {c}")
            counts[a] = int(str(c), 16)
        gate = asyncio.Semaphore(limits.concurrency)
        chunks = [hashes[i : i + limits.batch] for i in range(0, len(hashes), limits.batch)]
        tasks = [asyncio.create_task(_lookup(rpc, c, gate, out)) for c in chunks]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=limits.deadline_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            failed = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            if pending:
                notes.append(f"deadline {limits.deadline_s:g} s: {len(hashes) - len(out)} hashes not looked up")
            elif failed:
                notes.append(f"{len(failed)} lookup batch(es) failed, first: {failed[0]}")
    return ChainFacts(out, counts, sampled, "; ".join(notes))
