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
    # In the instruction-count (callgrind) tier: every case whose count repeats exactly and whose calls
    # fit under valgrind (set-up runs uninstrumented, ~8x slower than native; the counted calls ~40x).
    # All cases do but one; ``callgrind_note`` says why a case is left out.
    callgrind: bool = True
    callgrind_note: str = ""


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


# --- the project's own hot paths (skipped in revisions that predate them) ---------------------


def _setup_codec_encode_request() -> Op:
    codec = require("bot.rpc.codec", "encode_request")
    encode = codec.encode_request
    params = [{"to": _POOL, "data": _GET_RESERVES}, "latest"]

    def op() -> object:
        return encode("eth_call", params, 42)

    return op


def _setup_codec_decode_response() -> Op:
    codec = require("bot.rpc.codec", "decode_response")
    orjson = require("orjson", "dumps")
    body = orjson.dumps({"jsonrpc": "2.0", "id": 42, "result": _RESERVES_RESULT})
    decode = codec.decode_response

    def op() -> object:
        return decode(body, 42)

    return op


def _setup_codec_decode_batch() -> Op:
    codec = require("bot.rpc.codec", "decode_batch")
    orjson = require("orjson", "dumps")
    # Answered out of order, as nodes may: the codec must match by id.
    body = orjson.dumps([_block_response(i) for i in reversed(range(20))])
    ids = list(range(20))
    decode = codec.decode_batch

    def op() -> object:
        return decode(body, ids)

    return op


def _setup_tx_build_sign() -> Op:
    tx = require("bot.chain.tx", "build", "sign_direct", "TxRequest")
    fees_mod = require("bot.chain.fees", "Fees")
    coincurve = require("coincurve", "PrivateKey")
    key = coincurve.PrivateKey(bytes.fromhex(_DEV_KEY[2:]))
    request = tx.TxRequest(to=_POOL, data=bytes.fromhex("ab" * 132), gas=120_000)
    fees = fees_mod.Fees(max_fee_per_gas=3_000_000_000, max_priority_fee_per_gas=1_000_000_000)
    build, sign = tx.build, tx.sign_direct
    nonce = 0

    def op() -> object:
        nonlocal nonce
        nonce = (nonce + 1) & 1023
        return sign(key, build(31337, nonce, request, fees))

    return op


def _setup_prices_from_reserves() -> Op:
    prices = require("bot.market.prices", "Reserves", "mid_price", "swap_outcome", "min_out_with_slippage")
    abi = require("bot.chain.abi", "decode_reserves")
    decode, reserves_cls = abi.decode_reserves, prices.Reserves
    mid, outcome, min_out = prices.mid_price, prices.swap_outcome, prices.min_out_with_slippage

    def op() -> object:
        # One price read as the bot does it: decode getReserves, mid price, then size a swap.
        reserves = reserves_cls(*decode(_RESERVES_RESULT))
        price = mid(reserves, True)
        expected, _ = outcome(reserves, 10**18, True, 0)
        return price, outcome(reserves, 10**18, True, min_out(expected, 50))

    return op


def _setup_nonce_cycle() -> Op:
    nonces = require("bot.chain.nonces", "NonceAllocator")
    allocator = nonces.NonceAllocator(0)

    def op() -> object:
        n = allocator.allocate()
        allocator.mark_sent(n)
        return allocator.confirm(n)

    return op


def _setup_mailbox_put_get() -> Op:
    mailbox = require("bot.engine.mailbox", "Mailbox", "Message", "Priority")
    box = mailbox.Mailbox(1024, name="bench")
    message = mailbox.Message(mailbox.Priority.MARKET_DATA, "tick", None, 1764068400.0)
    put, get = box.put, box.get_nowait

    def op() -> object:
        put(message)
        return get()

    return op


def _setup_scheduler_request_next() -> Op:
    scheduler = require("bot.engine.scheduler", "FairScheduler")
    mailbox = require("bot.engine.mailbox", "Priority")
    sched = scheduler.FairScheduler()
    pairs = [f"T{i:03d}/USD" for i in range(100)]
    prio = mailbox.Priority.ENTRY
    index = 0

    def op() -> object:
        nonlocal index
        index = (index + 1) % 100
        sched.request(pairs[index], prio)
        return sched.next()

    return op


def _interval_texts(hist_mod: Any, intervals: int, per_interval: int) -> list[str]:
    texts = []
    for k in range(intervals):
        h = hist_mod.new_histogram()
        for i in range(per_interval):
            # A deterministic, skewed latency spread (µs): mostly ~1-5 ms with a long tail.
            h.record_value(800 + (i * 7919 + k * 104729) % 4_000 + (60_000 if i % 97 == 0 else 0))
        texts.append(hist_mod.encode(h))
    return texts


def _setup_stats_merge_encoded() -> Op:
    hist_mod = require("harness.stats.histograms", "merge_encoded", "new_histogram", "encode")
    texts = _interval_texts(hist_mod, 10, 2_000)
    merge = hist_mod.merge_encoded

    def op() -> object:
        return merge(texts).get_value_at_percentile(99.0)

    return op


def _setup_stats_verdict_1m() -> Op:
    hist_mod = require("harness.stats.histograms", "series_from_encoded", "new_histogram", "encode")
    intervals = require("harness.stats.intervals", "latency_cis")
    verdict = require("harness.stats.verdict", "decide")
    # 1M samples in 100 one-second intervals: the size of a sustained scenario's judging step.
    texts = _interval_texts(hist_mod, 100, 10_000)
    series = hist_mod.series_from_encoded(texts)

    def op() -> object:
        cis = intervals.latency_cis(series, (95.0, 99.0), n_boot=200)
        return verdict.decide(cis["p99"], "<", 200_000.0, duration_s=100.0)

    return op


def _setup_telemetry_rotate() -> Op:
    rec = require("bot.telemetry.recorder", "Telemetry", "SLO_OPERATIONS")
    t = rec.Telemetry(keep=4)
    ops = rec.SLO_OPERATIONS
    values = [800 + (i * 7919) % 4_000 for i in range(50)]

    def op() -> object:
        # One interval of a busy second: 50 samples in each SLO operation, then the rotation
        # (encode each histogram, clear it); the interval's cost is the hot-path stall.
        for name in ops:
            for v in values:
                t.record(name, v)
        return t.rotate()

    return op


CASES: tuple[Case, ...] = (
    Case("hdrh.record", _setup_hdrh_record, "HdrHistogram.record_value of one latency (µs)"),
    Case("hdrh.decode_merge", _setup_hdrh_merge, "decode a 5k-sample interval histogram, add, read p99"),
    Case("eth_account.sign_tx", _setup_eth_account_sign, "sign one EIP-1559 transaction (eth-account)"),
    Case("orjson.encode_request", _setup_orjson_encode_request, "orjson.dumps of one eth_call request"),
    Case("orjson.decode_batch", _setup_orjson_decode_batch, "orjson.loads of a 20-block batch reply"),
    Case("codec.encode_request", _setup_codec_encode_request, "bot.rpc.codec: encode one eth_call request"),
    Case("codec.decode_response", _setup_codec_decode_response, "bot.rpc.codec: decode one getReserves reply"),
    Case("codec.decode_batch", _setup_codec_decode_batch, "bot.rpc.codec: decode a 20-reply batch, out of order"),
    Case("tx.build_sign", _setup_tx_build_sign, "bot.chain.tx: build + sign (direct codec) one EIP-1559 tx"),
    Case("prices.from_reserves", _setup_prices_from_reserves,
         "bot.market.prices: decode getReserves, mid price, swap outcome with slippage"),
    Case("nonces.allocate_send_confirm", _setup_nonce_cycle, "bot.chain.nonces: one nonce's life cycle"),
    Case("mailbox.put_get", _setup_mailbox_put_get, "bot.engine.mailbox: enqueue + dequeue one tick"),
    Case("scheduler.request_next", _setup_scheduler_request_next, "bot.engine.scheduler: request + grant"),
    Case("telemetry.rotate", _setup_telemetry_rotate,
         "bot.telemetry: record 4 x 50 samples, then close the interval (encode + clear each histogram)"),
    Case("stats.merge_encoded", _setup_stats_merge_encoded, "harness.stats: merge 10 encoded interval histograms"),
    Case("stats.verdict_1m", _setup_stats_verdict_1m,
         "harness.stats: block-bootstrap p95/p99 CIs + verdict over 1M samples (100 intervals)",
         callgrind=False, callgrind_note="~0.1 s per call native: the 50 counted calls alone would take 3-4 min "
         "under valgrind, more than every other case together; the seeded bootstrap would count the same"),
)


def case_names() -> list[str]:
    return [case.name for case in CASES]


def get_case(name: str) -> Case:
    for case in CASES:
        if case.name == name:
            return case
    known = ", ".join(case_names())
    raise KeyError(f"unknown benchmark case {name!r}; known cases: {known}")
