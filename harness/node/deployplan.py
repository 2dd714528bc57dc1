"""What a deployment creates, as pure data: pair specs, transaction lists, the deployment record.

``harness.node.deploy`` sends what these functions build; keeping the choices here (prices,
liquidity, funding, chunking, nonces) makes them testable without a chain and keeps the shell
thin. Amounts are integers in token base units (18 decimals).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from harness.errors import ConfigError, HarnessError
from harness.node.abi import contract

UNIT = 10**18
MAX_UINT256 = 2**256 - 1
MAX_PAIRS = 1000
APPROVE_GAS = 60_000
MINT_GAS = 80_000


@dataclass(frozen=True)
class PairSpec:
    index: int
    symbol: str
    price: float  # quote (USD) per base token, what the pool starts at
    base_liquidity: int
    quote_liquidity: int
    fund_base: int  # base tokens minted to each funded account

    @property
    def pair_id(self) -> str:
        return f"{self.symbol}/USD"


def pair_specs(n_pairs: int, *, seed: int = 1, quote_depth: float = 1e6, fund_fraction: float = 0.01) -> list[PairSpec]:
    """N pairs with seeded log-uniform prices in [0.01, 10000] USD and ``quote_depth`` USD per pool.

    Each funded account gets ``fund_fraction`` of each pool's base reserve: enough for many
    trades, small enough that the pools stay the market.
    """
    if not 1 <= n_pairs <= MAX_PAIRS:
        raise ConfigError(f"n_pairs must be 1..{MAX_PAIRS}, got {n_pairs}")
    if not (quote_depth > 0 and math.isfinite(quote_depth)):
        raise ConfigError(f"quote_depth must be a positive number of USD, got {quote_depth}")
    if not 0 < fund_fraction <= 1:
        raise ConfigError(f"fund_fraction must be in (0, 1], got {fund_fraction}")
    rng = random.Random(seed)
    specs = []
    for i in range(n_pairs):
        price = round(10 ** rng.uniform(-2, 4), 6)
        quote_liq = int(quote_depth * UNIT)
        base_liq = int(quote_depth / price * UNIT)
        specs.append(PairSpec(i, f"T{i:03d}", price, base_liq, quote_liq, int(base_liq * fund_fraction)))
    return specs


def chunks(items: Sequence[PairSpec], size: int) -> Iterator[Sequence[PairSpec]]:
    if size < 1:
        raise ConfigError(f"pairs_per_tx must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalize_accounts(accounts: Sequence[str]) -> list[str]:
    """Checksummed, de-duplicated (order kept); a bad address is an error naming it."""
    out: list[str] = []
    for i, a in enumerate(accounts):
        if not isinstance(a, str) or not is_address(a):
            raise ConfigError(f"bot_accounts[{i}] = {a!r} is not an address; give 0x-prefixed 20-byte hex")
        c = to_checksum_address(a)
        if c not in out:
            out.append(c)
    return out


def tx(sender: str, to: str | None, data: str, *, nonce: int, gas: int, max_fee: int) -> dict[str, Any]:
    # Explicit nonces: anvil may serve a batch's calls concurrently, and a node-chosen nonce could repeat.
    t: dict[str, Any] = {
        "from": sender,
        "data": data,
        "nonce": hex(nonce),
        "gas": hex(gas),
        "maxFeePerGas": hex(max_fee),
        "maxPriorityFeePerGas": "0x0",
    }
    if to is not None:
        t["to"] = to
    return t


def create_pairs_call(chunk: Sequence[PairSpec], fundees: Sequence[str]) -> str:
    return contract("Deployer").encode_call(
        "createPairs",
        chunk[0].index,
        [s.symbol for s in chunk],
        [s.base_liquidity for s in chunk],
        [s.quote_liquidity for s in chunk],
        list(fundees),
        [s.fund_base for s in chunk],
    )


@dataclass(frozen=True)
class Pair:
    id: str
    pool: str
    token0: str
    token1: str
    base: str
    quote: str


def approval_txs(account: str, first_nonce: int, pairs: Sequence[Pair], max_fee: int) -> list[dict[str, Any]]:
    """Max approvals of every pool for both of its tokens, from ``account``, nonces consecutive."""
    token = contract("Token")
    out = []
    nonce = first_nonce
    for pair in pairs:
        for tok in (pair.base, pair.quote):
            out.append(
                tx(
                    account,
                    tok,
                    token.encode_call("approve", pair.pool, MAX_UINT256),
                    nonce=nonce,
                    gas=APPROVE_GAS,
                    max_fee=max_fee,
                )
            )
            nonce += 1
    return out


@dataclass(frozen=True)
class DeployReport:
    """How a deployment went (not part of deployment.json)."""

    n_pairs: int
    accounts: int
    transactions: int
    blocks: int
    elapsed_s: float
    rpc_requests: int


@dataclass(frozen=True)
class Deployment:
    """What ``deployment.json`` holds (docs/DESIGN.md), plus how it went when just deployed."""

    chain_id: int
    quote_token: str
    pairs: tuple[Pair, ...]
    accounts: tuple[str, ...]
    block: int
    report: DeployReport | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "quote_token": self.quote_token,
            "pairs": [asdict(p) for p in self.pairs],
            "accounts": list(self.accounts),
            "block": self.block,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                quote_token=str(data["quote_token"]),
                pairs=tuple(Pair(**p) for p in data["pairs"]),
                accounts=tuple(str(a) for a in data["accounts"]),
                block=int(data["block"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"deployment.json is malformed ({exc!r}); re-run the deployment") from exc

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise HarnessError(f"cannot read deployment {path}: {exc}") from exc
