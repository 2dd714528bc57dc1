"""An in-memory node for chain/market unit tests: enough of eth_* to exercise the sender.

It decodes real signed EIP-1559 bytes (sender recovered from the signature), keeps a pool per
sender, mines strictly in nonce order, and answers the way anvil does (messages copied from
anvil 1.7.1). Faults are injected per method: raise before the node processes the request, or
*after* it did (a lost response: the transaction is in the pool but the client saw an error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rlp  # type: ignore[import-untyped]

from bot.chain.tx import recover_sender, tx_hash
from bot.rpc.errors import NodeError, RpcError


@dataclass
class PoolTx:
    hash: str
    sender: str
    nonce: int
    to: bytes
    value: int
    data: bytes
    raw: bytes


class FakeNode:
    def __init__(self, *, base_fee: int = 10**9, chain_id: int = 31337) -> None:
        self.base_fee = base_fee
        self.chain_id = chain_id
        self.nonces: dict[str, int] = {}  # mined count per sender (lower-case)
        self.pool: dict[str, PoolTx] = {}
        self.mined: dict[str, tuple[PoolTx, int, int]] = {}  # hash -> (tx, block, status)
        self.blocks: list[list[str]] = [[]]  # block n -> hashes
        self.poor: set[str] = set()  # senders that get "insufficient funds"
        self.revert_if: Callable[[PoolTx], bool] = lambda tx: tx.data.startswith(b"\xde\xad")
        self.faults_before: dict[str, list[RpcError]] = {}
        self.faults_after: dict[str, list[RpcError]] = {}
        self.raw_seen: dict[tuple[str, int], set[bytes]] = {}  # (sender, nonce) -> distinct raw bytes
        self.calls: list[str] = []
        self.eth_calls: dict[tuple[str, bytes], bytes] = {}  # (to, calldata) -> result
        self.balances: dict[str, int] = {}
        self.on_accept: Callable[[PoolTx], None] | None = None  # runs once a tx enters the pool

    # -- fault injection --------------------------------------------------------------------
    def fail(self, method: str, exc: RpcError, *, times: int = 1, after: bool = False) -> None:
        target = self.faults_after if after else self.faults_before
        target.setdefault(method, []).extend([exc] * times)

    def _maybe_fail(self, method: str, table: dict[str, list[RpcError]]) -> None:
        queue = table.get(method)
        if queue:
            raise queue.pop(0)

    # -- chain ------------------------------------------------------------------------------
    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    def mine(self) -> list[str]:
        included: list[str] = []
        for sender in {t.sender for t in self.pool.values()}:
            while True:
                n = self.nonces.get(sender, 0)
                tx = next((t for t in self.pool.values() if t.sender == sender and t.nonce == n), None)
                if tx is None:
                    break
                del self.pool[tx.hash]
                self.nonces[sender] = n + 1
                included.append(tx.hash)
                self.mined[tx.hash] = (tx, len(self.blocks), 0 if self.revert_if(tx) else 1)
        self.blocks.append(included)
        return included

    def external_tx(self, sender: str) -> None:
        """Another process with the same key uses the next nonce."""
        self.nonces[sender.lower()] = self.nonces.get(sender.lower(), 0) + 1

    def drop(self, tx_hash: str) -> None:
        self.pool.pop(tx_hash, None)

    async def auto_mine(self, interval: float, stop: asyncio.Event) -> None:
        for _ in range(100_000):
            if stop.is_set():
                return
            await asyncio.sleep(interval)
            self.mine()

    # -- RpcClient --------------------------------------------------------------------------
    async def send_raw_transaction(self, raw: bytes, *, timeout: float | None = None) -> str:  # noqa: ASYNC109
        self.calls.append("eth_sendRawTransaction")
        await asyncio.sleep(0)
        self._maybe_fail("eth_sendRawTransaction", self.faults_before)
        items = rlp.decode(raw[1:])
        sender = recover_sender(raw).lower()
        nonce = int.from_bytes(items[1], "big")
        h = tx_hash(raw)
        self.raw_seen.setdefault((sender, nonce), set()).add(raw)
        if h in self.pool:
            self._maybe_fail("eth_sendRawTransaction", self.faults_after)
            return h  # the rpc layer turns "already imported" into success
        if h in self.mined:
            raise NodeError(-32003, "nonce too low")  # what anvil says to a resend of a mined tx
        if nonce < self.nonces.get(sender, 0):
            raise NodeError(-32003, "nonce too low")
        if any(t.sender == sender and t.nonce == nonce for t in self.pool.values()):
            raise NodeError(-32003, "replacement transaction underpriced")
        if sender in self.poor:
            raise NodeError(-32003, "Insufficient funds for gas * price + value")
        if int.from_bytes(items[3], "big") < self.base_fee:
            raise NodeError(-32003, "max fee per gas less than block base fee")
        self.pool[h] = PoolTx(h, sender, nonce, items[5], int.from_bytes(items[6], "big"), items[7], raw)
        if self.on_accept is not None:
            self.on_accept(self.pool[h])
        self._maybe_fail("eth_sendRawTransaction", self.faults_after)
        return h

    async def call(self, method: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        self.calls.append(method)
        await asyncio.sleep(0)
        self._maybe_fail(method, self.faults_before)
        result = self._answer(method, list(params))
        self._maybe_fail(method, self.faults_after)
        return result

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None  # noqa: ASYNC109
    ) -> list[Any | RpcError]:
        self.calls.append("batch")
        await asyncio.sleep(0)
        self._maybe_fail("batch", self.faults_before)
        out: list[Any | RpcError] = []
        for method, params in calls:
            try:
                self._maybe_fail(method, self.faults_before)
                out.append(self._answer(method, list(params)))
            except RpcError as exc:
                out.append(exc)
        return out

    async def aclose(self) -> None:
        return None

    def _receipt(self, h: str) -> dict[str, Any] | None:
        if h not in self.mined:
            return None
        tx, block, status = self.mined[h]
        return {
            "transactionHash": h,
            "blockNumber": hex(block),
            "status": hex(status),
            "gasUsed": hex(21_000),
            "effectiveGasPrice": hex(self.base_fee),
            "from": tx.sender,
        }

    def _answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_getTransactionCount":
            addr, tag = params[0].lower(), params[1]
            mined = self.nonces.get(addr, 0)
            if tag != "pending":
                return hex(mined)
            n = mined
            while any(t.sender == addr and t.nonce == n for t in self.pool.values()):
                n += 1
            return hex(n)
        if method == "eth_getBlockByNumber":
            return {"number": hex(self.head), "baseFeePerGas": hex(self.base_fee)}
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getBlockReceipts":
            block = int(params[0], 16)
            if block > self.head:
                return None
            return [self._receipt(h) for h in self.blocks[block]]
        if method == "eth_getTransactionReceipt":
            return self._receipt(params[0])
        if method == "eth_getTransactionByHash":
            h = params[0]
            if h in self.pool:
                return {"hash": h, "blockNumber": None}
            if h in self.mined:
                return {"hash": h, "blockNumber": hex(self.mined[h][1])}
            return None
        if method == "eth_call":
            key = (params[0]["to"].lower(), bytes.fromhex(params[0]["data"][2:]))
            if key not in self.eth_calls:
                return "0x"
            return "0x" + self.eth_calls[key].hex()
        if method == "eth_getBalance":
            return hex(self.balances.get(params[0].lower(), 0))
        if method == "eth_chainId":
            return hex(self.chain_id)
        raise NodeError(-32601, f"method {method} not supported by FakeNode")
