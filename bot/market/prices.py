"""A pair's price from its pool's reserves: pure math plus a thin ``eth_call`` reader.

Pure part (exact integer math, matching contracts/Pool.sol line for line):
``amount_out`` is the 0.3%-fee constant-product output, ``swap_outcome`` also says whether
``Pool.swap`` would revert and with which reason. ``mid_price`` gives quote per base as an exact
``Fraction`` from the reserves and the pool's token0/token1 orientation (the pool sorts its
tokens by address, so the base token is token0 only sometimes).

``PriceReader`` does one ``eth_call getReserves()`` per pair and times it as ``price_fetch``
through ``on_latency`` (microseconds), exactly as slo-tables.md defines: one read, decoded to
a price. Caching, only where provably correct:

- a pool's token0/token1 are ``immutable`` in Pool.sol, so they come from the deployment or
  are read once and kept for the reader's lifetime;
- reserves read *at a given block number* cannot change (anvil has no reorgs; on a chain that
  reorganises, key by block hash instead), so those reads are kept in a bounded LRU
  (``cache_size``); reads at ``"latest"`` are never cached, because the answer moves with
  every block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from bot.chain import abi
from bot.market._reader import CachedReader, ReaderStatistics
from bot.rpc.errors import RpcError

LatencyHook = Callable[[str, int], None]
FEE_NUMERATOR = 997
FEE_DENOMINATOR = 1000


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    pool: str
    token0: str
    token1: str
    base: str
    quote: str

    def __post_init__(self) -> None:
        for name in ("pool", "token0", "token1", "base", "quote"):
            abi.address_bytes(getattr(self, name), f"pair {self.id}: {name}")
        if {self.base.lower(), self.quote.lower()} != {self.token0.lower(), self.token1.lower()}:
            raise ValueError(f"pair {self.id}: base/quote must be the pool's token0/token1; check deployment.json")

    @property
    def base_is_token0(self) -> bool:
        return self.base.lower() == self.token0.lower()

    @classmethod
    def from_deployment(cls, entry: Mapping[str, Any]) -> Pair:
        missing = [k for k in ("id", "pool", "token0", "token1", "base", "quote") if k not in entry]
        if missing:
            raise ValueError(f"deployment.json pairs entry is missing {', '.join(missing)}: {dict(entry)!r:.200}")
        return cls(**{k: str(entry[k]) for k in ("id", "pool", "token0", "token1", "base", "quote")})


@dataclass(frozen=True, slots=True)
class Reserves:
    reserve0: int
    reserve1: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class PairPrice:
    pair_id: str
    price: Fraction  # quote per base
    reserve_base: int
    reserve_quote: int
    block: int | str

    def __float__(self) -> float:
        return float(self.price)


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """Pool.sol's output for ``amount_in`` (raises ValueError where the contract reverts before it)."""
    if amount_in <= 0:
        raise ValueError("amountIn")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("liquidity")
    with_fee = amount_in * FEE_NUMERATOR
    return (with_fee * reserve_out) // (reserve_in * FEE_DENOMINATOR + with_fee)


def swap_outcome(reserves: Reserves, amount_in: int, zero_for_one: bool, min_amount_out: int) -> tuple[int, str | None]:
    """(amountOut, revert reason or None) for ``Pool.swap`` at these reserves."""
    r_in, r_out = (reserves.reserve0, reserves.reserve1) if zero_for_one else (reserves.reserve1, reserves.reserve0)
    try:
        out = amount_out(amount_in, r_in, r_out)
    except ValueError as exc:
        return 0, str(exc)
    if out < min_amount_out:
        return out, "slippage"
    if out == 0:
        return out, "output"
    if r_in + amount_in > abi.MAX_UINT112:
        return out, "overflow"
    return out, None


def min_out_with_slippage(expected: int, slippage_bps: int) -> int:
    if not 0 <= slippage_bps <= 10_000:
        raise ValueError(f"slippage_bps must be in 0..10000, got {slippage_bps}")
    return expected * (10_000 - slippage_bps) // 10_000


def mid_price(reserves: Reserves, base_is_token0: bool) -> Fraction:
    """Quote per base (both tokens have 18 decimals in this project's deployment)."""
    base, quote = (reserves.reserve0, reserves.reserve1) if base_is_token0 else (reserves.reserve1, reserves.reserve0)
    if base == 0:
        raise ValueError("pool has no base-token liquidity; the price is undefined")
    return Fraction(quote, base)


def _block_tag(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


PriceReaderStatistics = ReaderStatistics


class PriceReader(CachedReader[tuple[str, int], Reserves]):
    setting = "prices"

    async def reserves(self, pool: str, block: int | str = "latest") -> Reserves:
        key = (pool.lower(), block) if isinstance(block, int) else None
        hit = self._cache_get(key) if key is not None else None
        if hit is not None:
            return hit
        self._reads += 1
        params = [{"to": pool, "data": "0x" + abi.GET_RESERVES.hex()}, _block_tag(block)]
        try:
            result = await self._rpc.call("eth_call", params, timeout=self.timeout)
        except RpcError:
            self._errors += 1
            raise
        r = Reserves(*abi.decode_reserves(result))
        if key is not None:
            self._cache_put(key, r)
        return r

    async def price(self, pair: Pair, block: int | str = "latest") -> PairPrice:
        t0 = self._clock()
        r = await self.reserves(pair.pool, block)
        price = _to_price(pair, r, block)
        if self._on_latency is not None:
            self._on_latency("price_fetch", max((self._clock() - t0) // 1000, 1))
        return price

    @staticmethod
    def reserves_call(pool: str, block: int | str = "latest") -> tuple[str, list[object]]:
        """The ``eth_call`` that reads ``pool``'s reserves, for a caller that sends it in its own batch."""
        return "eth_call", [{"to": pool, "data": "0x" + abi.GET_RESERVES.hex()}, _block_tag(block)]

    def accept(self, pair: Pair, result: object, micros: int, block: int | str = "latest") -> PairPrice:
        """Decode the answer to ``reserves_call`` that a caller's batch got, recording its ``price_fetch``
        sample (``micros``: the round trip it shared); an ``RpcError`` in its slot is raised."""
        self._reads += 1
        if isinstance(result, RpcError):
            self._errors += 1
            raise result
        try:
            if not isinstance(result, str | bytes):
                raise abi.AbiDecodeError(f"getReserves(): expected hex data, got {result!r:.50}")
            price = _to_price(pair, Reserves(*abi.decode_reserves(result)), block)
        except abi.AbiDecodeError:
            self._errors += 1
            raise
        if self._on_latency is not None:
            self._on_latency("price_fetch", micros)
        return price

    async def prices(
        self, pairs: Sequence[Pair], block: int | str = "latest"
    ) -> list[PairPrice | RpcError | abi.AbiDecodeError]:
        """One JSON-RPC batch for many pairs; each pair's ``price_fetch`` sample is the batch's time.

        A failure is returned in the failing pair's place (one bad pool never hides the others).
        """
        t0 = self._clock()
        data = "0x" + abi.GET_RESERVES.hex()
        calls = [("eth_call", [{"to": p.pool, "data": data}, _block_tag(block)]) for p in pairs]
        self._reads += len(calls)
        results = await self._rpc.batch(calls, timeout=self.timeout)
        micros = max((self._clock() - t0) // 1000, 1)
        out: list[PairPrice | RpcError | abi.AbiDecodeError] = []
        for pair, res in zip(pairs, results, strict=True):
            if isinstance(res, RpcError):
                self._errors += 1
                out.append(res)
                continue
            try:
                out.append(_to_price(pair, Reserves(*abi.decode_reserves(res)), block))
            except abi.AbiDecodeError as exc:
                self._errors += 1
                out.append(abi.AbiDecodeError(f"pair {pair.id} (pool {pair.pool}): {exc}"))
                continue
            if self._on_latency is not None:
                self._on_latency("price_fetch", micros)
        return out

    async def token0(self, pool: str) -> str:
        """Read ``token0()`` (immutable in Pool.sol) for a pool not described by a deployment."""
        result = await self._rpc.call(
            "eth_call", [{"to": pool, "data": "0x" + abi.TOKEN0.hex()}, "latest"], timeout=self.timeout
        )
        return abi.decode_address(result, "token0()")



def _to_price(pair: Pair, r: Reserves, block: int | str) -> PairPrice:
    base, quote = (r.reserve0, r.reserve1) if pair.base_is_token0 else (r.reserve1, r.reserve0)
    return PairPrice(
        pair_id=pair.id, price=mid_price(r, pair.base_is_token0), reserve_base=base, reserve_quote=quote, block=block
    )
