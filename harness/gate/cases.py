"""The hot-path micro benchmarks: one registry shared by the gate, pytest-benchmark and asv.

A ``Case`` names one hot path and knows how to build a zero-argument callable that performs one
operation of it (``setup()`` does the expensive preparation once, outside the timed region). The
same definitions feed three runners, so a number in a gate report, a pytest-benchmark baseline and
an asv graph always measure the same thing:

- ``harness gate`` copies this file beside its worker and runs it against *each revision's* code
  (``PYTHONPATH`` points at that revision's worktree); a case whose module that revision lacks
  raises ``CaseUnavailable`` and is skipped with a note, never a crash.
- ``tests/bench`` (pytest-benchmark) and ``benchmarks/`` (asv) import it directly.

This module is standard-library only at import time; every project or third-party import happens
inside a ``setup`` function, which is what lets an old revision without the module be detected.
Inputs are fixed (no randomness, no clock) so that instruction counts repeat exactly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Op = Callable[[], object]


class CaseUnavailable(Exception):
    """This revision of the project lacks what the case measures (its module or function)."""


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[], Op]
    description: str
    # Small and cheap to import: suitable for the instruction-count (callgrind) tier, which runs ~75x
    # slower than native and must stay well under a second of native time per benchmark.
    callgrind: bool = False


def require(module: str, *attrs: str) -> Any:
    """Import ``module`` (and check ``attrs`` exist) or raise ``CaseUnavailable`` naming what is missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise CaseUnavailable(f"{module} is not importable in this revision ({exc})") from None
    for attr in attrs:
        if not hasattr(mod, attr):
            raise CaseUnavailable(f"{module}.{attr} does not exist in this revision")
    return mod


# --- fixed inputs --------------------------------------------------------------------------------

# Anvil's first dev key (the public test mnemonic): a benchmark input, not a secret.
_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
_POOL = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
_GET_RESERVES = "0x0902f1ac"
_RESERVES_RESULT = "0x" + f"{10**24:064x}" + f"{3 * 10**27:064x}" + f"{1764068400:064x}"


def _tx_dict(nonce: int) -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": 31337,
        "nonce": nonce,
        "to": _POOL,
        "value": 0,
        "gas": 120_000,
        "maxFeePerGas": 3_000_000_000,
        "maxPriorityFeePerGas": 1_000_000_000,
        "data": "0x" + "ab" * 132,
    }


def _block_response(req_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": req_id,
        "result": {
            "number": hex(1_000 + req_id),
            "hash": "0x" + "11" * 32,
            "parentHash": "0x" + "22" * 32,
            "timestamp": hex(1764068400),
            "baseFeePerGas": hex(875_000_000),
            "gasUsed": hex(21_000 * 40),
            "transactions": ["0x" + f"{i:064x}" for i in range(40)],
        },
    }


# --- third-party hot paths (present in every revision) ------------------------------------------


def _setup_hdrh_record() -> Op:
    hdrh = require("hdrh.histogram", "HdrHistogram")
    hist = hdrh.HdrHistogram(1, 60_000_000, 3)
    values = [137, 1_250, 48_000, 9, 310_000, 2_200, 777, 15_000]
    record = hist.record_value
    index = 0

    def op() -> object:
        nonlocal index
        index = (index + 1) & 7
        return record(values[index])

    return op


def _setup_hdrh_merge() -> Op:
    hdrh = require("hdrh.histogram", "HdrHistogram")
    src = hdrh.HdrHistogram(1, 60_000_000, 3)
    for i in range(5_000):
        src.record_value(50 + (i * 7919) % 200_000)
    encoded = src.encode()
    cls = hdrh.HdrHistogram

    def op() -> object:
        total = cls(1, 60_000_000, 3)
        total.add(cls.decode(encoded))
        return total.get_value_at_percentile(99.0)

    return op


def _setup_eth_account_sign() -> Op:
    accounts = require("eth_account", "Account")
    acct = accounts.Account.from_key(_DEV_KEY)
    tx = _tx_dict(7)
    sign = acct.sign_transaction

    def op() -> object:
        return sign(tx).raw_transaction

    return op


def _setup_orjson_encode_request() -> Op:
    orjson = require("orjson", "dumps")
    dumps = orjson.dumps
    request = {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "eth_call",
        "params": [{"to": _POOL, "data": _GET_RESERVES}, "latest"],
    }

    def op() -> object:
        return dumps(request)

    return op


def _setup_orjson_decode_batch() -> Op:
    orjson = require("orjson", "loads")
    payload = orjson.dumps([_block_response(i) for i in range(20)])
    loads = orjson.loads

    def op() -> object:
        return loads(payload)

    return op


CASES: tuple[Case, ...] = (
    Case("hdrh.record", _setup_hdrh_record, "HdrHistogram.record_value of one latency (µs)", callgrind=True),
    Case("hdrh.decode_merge", _setup_hdrh_merge, "decode a 5k-sample interval histogram, add, read p99"),
    Case("eth_account.sign_tx", _setup_eth_account_sign, "sign one EIP-1559 transaction (eth-account)"),
    Case("orjson.encode_request", _setup_orjson_encode_request, "orjson.dumps of one eth_call request",
         callgrind=True),
    Case("orjson.decode_batch", _setup_orjson_decode_batch, "orjson.loads of a 20-block batch reply"),
)


def case_names() -> list[str]:
    return [case.name for case in CASES]


def get_case(name: str) -> Case:
    for case in CASES:
        if case.name == name:
            return case
    known = ", ".join(case_names())
    raise KeyError(f"unknown benchmark case {name!r}; known cases: {known}")
