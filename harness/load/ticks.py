"""Market-data ticks for the feed (pure): what each tick says, and in which order ticks are due.

A tick is ``{"seq": n, "pair": "T000/USD", "price": float, "scheduled": unix_s, "trade": bool}``,
plus ``"tag": str`` when the run tags ticks with the scenario (or stress step) that sent them.
``scheduled`` is the wall-clock time the feed *intended* to send it, so the bot can time
``trade_execution`` from it across processes (same machine, same clock).

Two schedules feed one stream: market-data ticks (``trade=false``) and trade signals
(``trade=true``). They are merged in time order; each has its own round-robin over the pairs,
so trades spread evenly over pairs whatever the market-data rate. Prices are a seeded
geometric random walk per pair: the same seed gives the same stream, byte for byte.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import orjson

from harness.errors import ConfigError
from harness.load.schedules import Schedule


class Due(NamedTuple):
    """One tick's place in the stream: offset from the start and whether it is a trade signal.

    A tuple rather than a frozen dataclass: one is made per tick, and at 50k ticks/s a dataclass's
    ``__init__`` (about 1 µs) is 5% of a core; tuples also order as the merge needs, without a key.
    """

    t: float
    trade: bool


def merge_schedules(market: Schedule | None, trades: Schedule | None) -> Iterator[Due]:
    """Both schedules' arrivals in time order (market first on a tie, so data precedes signals)."""
    streams: list[Iterator[Due]] = []
    if market is not None:
        streams.append(Due(t, False) for t in market.times())
    if trades is not None:
        streams.append(Due(t, True) for t in trades.times())
    return heapq.merge(*streams)  # by (t, trade): market data first on a tie


class TickSource:
    """Makes the ticks: sequence numbers, pair rotation, and each pair's price walk."""

    def __init__(self, pairs: Sequence[str], *, seed: int = 0, start_price: float = 100.0,
                 volatility: float = 0.0005) -> None:
        if not pairs:
            raise ConfigError("feed pairs must list at least one pair id, e.g. ['T000/USD']")
        if len(set(pairs)) != len(pairs):
            raise ConfigError(f"feed pairs must be unique, got duplicates in {list(pairs)}")
        if not (start_price > 0 and math.isfinite(start_price)):
            raise ConfigError(f"feed start_price must be a positive number, got {start_price}")
        if not 0 <= volatility < 0.5:
            raise ConfigError(f"feed volatility must be in [0, 0.5), got {volatility}")
        self.pairs = tuple(pairs)
        self._rng = random.Random(seed)
        self._vol = volatility
        self._prices = dict.fromkeys(self.pairs, start_price)
        self._next_market = 0
        self._next_trade = 0
        self.seq = 0

    def __repr__(self) -> str:
        return f"<TickSource pairs={len(self.pairs)} seq={self.seq}>"

    def tick(self, scheduled: float, trade: bool, tag: str | None = None) -> dict[str, object]:
        if trade:
            pair = self.pairs[self._next_trade % len(self.pairs)]
            self._next_trade += 1
        else:
            pair = self.pairs[self._next_market % len(self.pairs)]
            self._next_market += 1
        price = self._prices[pair] * math.exp(self._vol * self._rng.gauss(0.0, 1.0))
        self._prices[pair] = price
        t = {"seq": self.seq, "pair": pair, "price": price, "scheduled": scheduled, "trade": trade}
        if tag is not None:
            t["tag"] = tag  # which scenario sent it: the bot's telemetry splits by it
        self.seq += 1
        return t


def encode_frame(ticks: Sequence[dict[str, object]], *, batched: bool) -> str:
    """One WebSocket text frame: a tick object, or (batched) a JSON array of ticks."""
    if batched:
        return orjson.dumps(list(ticks)).decode()
    if len(ticks) != 1:
        raise ValueError(f"an unbatched frame carries exactly one tick, got {len(ticks)}")
    return orjson.dumps(ticks[0]).decode()


def decode_frame(text: str | bytes) -> list[dict[str, object]]:
    """The ticks in a frame, whichever form it has (what a consumer of the feed does)."""
    value = orjson.loads(text)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise ValueError(f"a feed frame is a tick object or an array of them, got {str(value)[:80]}")
