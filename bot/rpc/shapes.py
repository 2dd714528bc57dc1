"""The shapes of the node's answers (pure): every field the bot reads, checked and typed.

The codec makes sure a body is a well-formed JSON-RPC answer; this module makes sure its
``result`` has the shape the method promises. A node (or a proxy in front of it) that answers
``{"number": 5}``, ``"-0x1"``, ``"0x1_0"`` or a 10,000-digit block number is misbehaving, and
Python's ``int(x, 16)`` would accept some of that silently (signs, underscores, whitespace) and
raise ``TypeError``/``KeyError``/``AttributeError`` on the rest, deep inside a loop that then
dies. Here anything off-shape is ``InvalidResponse`` naming the field, so a caller can count it
and skip that one item.

Limits: a quantity is at most 64 hex digits (uint256); block numbers, timestamps, log indexes
and chain ids at most 16 (uint64, what every client stores). Hex digits are case-insensitive;
leading zeros are tolerated (some nodes send them), a sign, ``_`` or whitespace is not. Hashes
are 32 bytes, addresses 20, returned lowercased.

Optional fields: a field a node may legitimately omit (``baseFeePerGas`` before London, a
receipt's ``status`` before Byzantium, ``effectiveGasPrice`` before London, a header's ``hash``
and ``timestamp`` in some test nodes' pushes) is ``None``/default when absent or null, but must
be well formed when present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.rpc.errors import InvalidResponse

_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]{1,64}")
_SMALL_QUANTITY = re.compile(r"0[xX][0-9a-fA-F]{1,16}")
_HASH = re.compile(r"0[xX][0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
_DATA = re.compile(r"0[xX](?:[0-9a-fA-F]{2})*")

MAX_TOPICS = 4  # LOG0..LOG4
MAX_FEE_HISTORY = 1024  # blocks in one eth_feeHistory answer (geth caps requests at 1024)


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _bad(field: str, expected: str, value: Any) -> InvalidResponse:
    return InvalidResponse(f"{field}: expected {expected}, got {_show(value)}")


def quantity(value: Any, field: str) -> int:
    """A JSON-RPC quantity up to uint256 (``"0x1a"``)."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise _bad(field, "a 0x-hex quantity of at most 64 digits", value)
    return int(value, 16)


def small_quantity(value: Any, field: str) -> int:
    """A uint64 quantity: block numbers, timestamps, indexes, chain ids."""
    if not isinstance(value, str) or not _SMALL_QUANTITY.fullmatch(value):
        raise _bad(field, "a 0x-hex quantity of at most 16 digits", value)
    return int(value, 16)


def hash32(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise _bad(field, "a 32-byte 0x-hex hash", value)
    return value.lower()


def address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise _bad(field, "a 20-byte 0x-hex address", value)
    return value.lower()


def data(value: Any, field: str) -> str:
    """Hex bytes (``eth_call`` results, log data): ``0x`` and an even number of hex digits."""
    if not isinstance(value, str) or not _DATA.fullmatch(value):
        raise _bad(field, "0x-hex bytes (an even number of digits)", value)
    return value


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(field, "an object", value)
    return value


@dataclass(frozen=True, slots=True)
class Head:
    """A newHeads header or an ``eth_getBlockByNumber`` block (the fields the bot reads)."""

    number: int
    hash: str | None
    timestamp: int | None
    base_fee: int | None


def head(value: Any, field: str = "header") -> Head:
    obj = _object(value, field)
    h, ts, fee = obj.get("hash"), obj.get("timestamp"), obj.get("baseFeePerGas")
    return Head(
        number=small_quantity(obj.get("number"), f"{field}.number"),
        hash=None if h is None else hash32(h, f"{field}.hash"),
        timestamp=None if ts is None else small_quantity(ts, f"{field}.timestamp"),
        base_fee=None if fee is None else quantity(fee, f"{field}.baseFeePerGas"),
    )


def block_base_fee(value: Any, field: str = "block") -> int:
    """The base fee of an ``eth_getBlockByNumber`` answer; 0 for a pre-London block without one."""
    fee = head(value, field).base_fee
    return 0 if fee is None else fee


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    removed: bool = False


def log(value: Any, field: str = "log") -> Log:
    """A mined log (from a receipt, ``eth_getLogs`` or a logs subscription)."""
    obj = _object(value, field)
    topics = obj.get("topics")
    if not isinstance(topics, list) or len(topics) > MAX_TOPICS:
        raise _bad(f"{field}.topics", f"an array of at most {MAX_TOPICS} hashes", topics)
    removed = obj.get("removed", False)
    if not isinstance(removed, bool):
        raise _bad(f"{field}.removed", "true or false", removed)
    return Log(
        address=address(obj.get("address"), f"{field}.address"),
        topics=tuple(hash32(t, f"{field}.topics[{i}]") for i, t in enumerate(topics)),
        data=data(obj.get("data"), f"{field}.data"),
        block_number=small_quantity(obj.get("blockNumber"), f"{field}.blockNumber"),
        block_hash=hash32(obj.get("blockHash"), f"{field}.blockHash"),
        tx_hash=hash32(obj.get("transactionHash"), f"{field}.transactionHash"),
        log_index=small_quantity(obj.get("logIndex"), f"{field}.logIndex"),
        removed=removed,
    )


def logs(value: Any, field: str = "logs") -> tuple[Log, ...]:
    if not isinstance(value, list):
        raise _bad(field, "an array of logs", value)
    return tuple(log(item, f"{field}[{i}]") for i, item in enumerate(value))


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    status: int  # 1 success, 0 reverted
    gas_used: int
    effective_gas_price: int
    logs: tuple[Log, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> Receipt:
        return receipt(obj)


def receipt_hash(value: Any, field: str = "receipt") -> str:
    """Just the transaction hash: enough to tell whether anyone waits for this receipt."""
    return hash32(_object(value, field).get("transactionHash"), f"{field}.transactionHash")


def receipt(value: Any, field: str = "receipt") -> Receipt:
    obj = _object(value, field)
    status = obj.get("status")
    price = obj.get("effectiveGasPrice")
    raw_logs = obj.get("logs")
    parsed_status = 1 if status is None else quantity(status, f"{field}.status")  # pre-Byzantium: no status
    if parsed_status not in (0, 1):
        raise _bad(f"{field}.status", "0x0 or 0x1", status)
    return Receipt(
        tx_hash=hash32(obj.get("transactionHash"), f"{field}.transactionHash"),
        block_number=small_quantity(obj.get("blockNumber"), f"{field}.blockNumber"),
        status=parsed_status,
        gas_used=quantity(obj.get("gasUsed"), f"{field}.gasUsed"),
        effective_gas_price=0 if price is None else quantity(price, f"{field}.effectiveGasPrice"),
        logs=() if raw_logs is None else logs(raw_logs, f"{field}.logs"),
    )


def block_receipts(value: Any, field: str = "eth_getBlockReceipts") -> list[Any] | None:
    """The array ``eth_getBlockReceipts`` returns (items still unparsed: each is checked on its own, so
    one bad receipt costs only itself); None when the node does not have the block."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(field, "an array of receipts or null", value)
    return value


@dataclass(frozen=True, slots=True)
class TxLookup:
    """``eth_getTransactionByHash`` of a known transaction."""

    hash: str
    block_number: int | None  # None: pending

    @property
    def pending(self) -> bool:
        return self.block_number is None


def tx_lookup(value: Any, field: str = "transaction") -> TxLookup | None:
    """None when the node does not know the transaction."""
    if value is None:
        return None
    obj = _object(value, field)
    number = obj.get("blockNumber")
    return TxLookup(
        hash=hash32(obj.get("hash"), f"{field}.hash"),
        block_number=None if number is None else small_quantity(number, f"{field}.blockNumber"),
    )


@dataclass(frozen=True, slots=True)
class FeeHistory:
    oldest_block: int
    base_fees: tuple[int, ...]  # one per block, plus the next block's
    gas_used_ratios: tuple[float, ...]
    rewards: tuple[tuple[int, ...], ...] | None  # per block, one per requested percentile


def _ratio(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise _bad(field, "a number from 0 to 1", value)
    return float(value)


def fee_history(value: Any, field: str = "eth_feeHistory") -> FeeHistory:
    obj = _object(value, field)
    fees, ratios, rewards = obj.get("baseFeePerGas"), obj.get("gasUsedRatio"), obj.get("reward")
    if not isinstance(ratios, list) or len(ratios) > MAX_FEE_HISTORY:
        raise _bad(f"{field}.gasUsedRatio", f"an array of at most {MAX_FEE_HISTORY} ratios", ratios)
    if not isinstance(fees, list) or len(fees) != len(ratios) + 1:
        raise _bad(f"{field}.baseFeePerGas", f"an array of {len(ratios) + 1} quantities (blocks + 1)", fees)
    parsed_rewards: tuple[tuple[int, ...], ...] | None = None
    if rewards is not None:
        if not isinstance(rewards, list) or len(rewards) != len(ratios):
            raise _bad(f"{field}.reward", f"an array of {len(ratios)} arrays (one per block)", rewards)
        rows: list[tuple[int, ...]] = []
        for i, row in enumerate(rewards):
            if not isinstance(row, list) or (rows and len(row) != len(rows[0])):
                raise _bad(f"{field}.reward[{i}]", "an array of quantities, one per percentile", row)
            rows.append(tuple(quantity(x, f"{field}.reward[{i}][{j}]") for j, x in enumerate(row)))
        parsed_rewards = tuple(rows)
    return FeeHistory(
        oldest_block=small_quantity(obj.get("oldestBlock"), f"{field}.oldestBlock"),
        base_fees=tuple(quantity(x, f"{field}.baseFeePerGas[{i}]") for i, x in enumerate(fees)),
        gas_used_ratios=tuple(_ratio(x, f"{field}.gasUsedRatio[{i}]") for i, x in enumerate(ratios)),
        rewards=parsed_rewards,
    )
