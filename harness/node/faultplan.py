"""What the fault proxy does to traffic, as a pure, seeded plan.

A ``FaultPlan`` says how much latency to add, how often each fault happens and when the endpoint
is down; a ``FaultDecider`` turns it into per-request decisions with its own seeded RNGs, so a run
with the same plan and the same request order injects the same faults. At most one fault per HTTP
request: a single uniform draw picks it by the cumulative rates, so the rates are exact
probabilities and must sum to at most 1. WebSocket frames draw from a second RNG (``wsgarbage``
is a per-frame rate, outside that sum), so socket traffic never shifts the HTTP decisions.

Faults answered by the proxy itself (the node never sees the request): ``error``, ``5xx``,
``429``, ``drop`` (connection closed), ``garbage`` (not JSON). Faults applied *after* the node
answered (the node did the work, the client does not learn the outcome cleanly): ``loss`` (the
reply is dropped: connection closed), ``slow`` (the body trickles out over a duration),
``truncate`` (cut mid-body), ``oversize`` (padded with JSON whitespace to a size), ``shape``
(valid JSON of the wrong shape). ``outage`` windows and ``outage_every`` make the endpoint
refuse everything (and drop its WebSockets) for a while; times count from the proxy's start.
``only`` narrows the faults (not the latency) to requests calling the named methods, e.g. a send's
reply lost after forwarding while the reads pass.

The text form (``FaultPlan.parse`` / ``str``) is what results record as the network profile, e.g.
``latency=5ms,jitter=2ms,error=0.01,5xx=0.01,429=0.01,drop=0.01,garbage=0.01,loss=0.01,
slow=0.01:200ms,truncate=0.01,oversize=0.001:20MB,shape=0.01,wsgarbage=0.01,outage=5s-8s;20s-22s,
outage_every=60s:2s,seed=7``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError
from harness.node import faulttext as T

FaultKind = Literal["pass", "rpc_error", "http_5xx", "rate_limited", "drop", "garbage", "loss", "slow", "truncate",
                    "oversize", "shape"]
# Order matters for reproducibility: a plan that leaves the later kinds at 0 draws as it did before they existed.
FAULT_KINDS: tuple[FaultKind, ...] = ("rpc_error", "http_5xx", "rate_limited", "drop", "garbage", "loss", "slow",
                                      "truncate", "oversize", "shape")
AFTER_FORWARD: frozenset[FaultKind] = frozenset({"loss", "slow", "truncate", "oversize", "shape"})
_RATE_FIELD: dict[FaultKind, str] = {
    "rpc_error": "rpc_error_rate", "http_5xx": "http_5xx_rate", "rate_limited": "rate_limit_rate",
    "drop": "drop_rate", "garbage": "garbage_rate", "loss": "loss_rate", "slow": "slow_rate",
    "truncate": "truncate_rate", "oversize": "oversize_rate", "shape": "shape_rate",
}  # fmt: skip
# text key -> field name, in the canonical order of the text form; slow/oversize/outage_every carry two fields
_KEYS = {
    "latency": "latency_ms", "jitter": "jitter_ms", "error": "rpc_error_rate", "5xx": "http_5xx_rate",
    "429": "rate_limit_rate", "retry_after": "retry_after_s", "drop": "drop_rate", "garbage": "garbage_rate",
    "loss": "loss_rate", "slow": "slow_rate", "truncate": "truncate_rate", "oversize": "oversize_rate",
    "shape": "shape_rate", "wsgarbage": "ws_garbage_rate", "outage": "outages", "outage_every": "outage_every",
    "ws_drop_after": "ws_drop_after", "only": "only", "seed": "seed",
}  # fmt: skip
_HINTS = {
    "latency": "latency=5ms", "jitter": "jitter=2ms", "retry_after": "retry_after=1s",
    "slow": "slow=0.01:200ms (rate:duration of the body)", "oversize": "oversize=0.001:20MB (rate:size)",
    "outage": "outage=5s-8s;20s-22s (windows from the proxy's start)",
    "outage_every": "outage_every=60s:2s (down 2 s in every 60 s)", "ws_drop_after": "ws_drop_after=100",
    "only": "only=eth_sendRawTransaction (method names, ';' between several)", "seed": "seed=7",
}  # fmt: skip
MAX_OVERSIZE = 1 << 30
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
MAX_WINDOWS = 1000


@dataclass(frozen=True)
class FaultPlan:
    """Latency is ``latency_ms`` plus a normal jitter of std ``jitter_ms``, clipped at zero, per request
    (a round trip); a WebSocket frame gets half a draw each way."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rpc_error_rate: float = 0.0
    http_5xx_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    drop_rate: float = 0.0
    garbage_rate: float = 0.0
    loss_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 200.0  # a slow body takes this long to arrive after its headers
    truncate_rate: float = 0.0
    oversize_rate: float = 0.0
    oversize_bytes: int = 20_000_000  # an oversized body is padded to this many bytes
    shape_rate: float = 0.0
    ws_garbage_rate: float = 0.0  # per frame to the client: a garbage frame is injected before it
    outages: tuple[tuple[float, float], ...] = ()  # (start_s, end_s) from the proxy's start
    outage_every: tuple[float, float] | None = None  # (period_s, length_s): down [k*period, k*period+length), k >= 1
    ws_drop_after: int | None = None  # close each WebSocket after this many messages (both ways)
    # Faults hit only requests that call one of these methods (latency still applies to every request):
    # a send's reply lost after forwarding, without every read failing with it.
    only: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "retry_after_s", "slow_ms"):
            _check(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0,
                   f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        for kind in FAULT_KINDS:
            rate = self.rate(kind)
            _check(math.isfinite(rate) and 0 <= rate <= 1, f"{kind} rate must be in [0, 1], got {rate!r}")
        _check(math.isfinite(self.ws_garbage_rate) and 0 <= self.ws_garbage_rate <= 1,
               f"wsgarbage rate must be in [0, 1], got {self.ws_garbage_rate!r}")
        total = sum(self.rate(k) for k in FAULT_KINDS)
        _check(total <= 1 + 1e-12, f"the fault rates add up to {total:g} > 1; lower some of them")
        _check(0 < self.oversize_bytes <= MAX_OVERSIZE,
               f"oversize size must be 1 byte..1GiB, got {self.oversize_bytes}; e.g. oversize=0.001:20MB")
        _check(len(self.outages) <= MAX_WINDOWS, f"outage: at most {MAX_WINDOWS} windows; use outage_every")
        previous_end = -math.inf
        for start, end in self.outages:
            _check(math.isfinite(start) and math.isfinite(end) and 0 <= start < end,
                   f"outage window {_w(start, end)} must start >= 0 and end after it starts; e.g. outage=5s-8s")
            _check(start >= previous_end, f"outage window {_w(start, end)} starts before the one before it ends; "
                   "list windows in time order, without overlaps")
            previous_end = end
        if self.outage_every is not None:
            period, length = self.outage_every
            _check(math.isfinite(period) and 0.001 <= length < period,
                   f"outage_every={_num_s(period)}:{_num_s(length)} needs 1 ms <= length < period; "
                   "e.g. outage_every=60s:2s")
        if self.ws_drop_after is not None:
            _check(self.ws_drop_after >= 1, f"ws_drop_after must be >= 1 (or unset), got {self.ws_drop_after}")
        for method in self.only:
            _check(bool(_METHOD.fullmatch(method)), f"only: {method!r} is not a JSON-RPC method name; "
                   "e.g. only=eth_sendRawTransaction")

    def applies_to(self, body: bytes) -> bool:
        """Whether a drawn fault hits a request with this body (``only``: it names one of the methods)."""
        return not self.only or any(b'"' + m.encode() + b'"' in body for m in self.only)

    def rate(self, kind: FaultKind) -> float:
        if kind == "pass":
            return max(0.0, 1 - sum(self.rate(k) for k in FAULT_KINDS))
        rate: float = getattr(self, _RATE_FIELD[kind])
        return rate

    @property
    def is_clean(self) -> bool:
        return self == FaultPlan(seed=self.seed)

    # -- time ------------------------------------------------------------------------------------
    def in_outage(self, t: float) -> bool:
        """Is the endpoint down ``t`` seconds after the proxy started?"""
        if any(start <= t < end for start, end in self.outages):
            return True
        if self.outage_every is not None:
            period, length = self.outage_every
            k = math.floor(t / period)  # products, not t % period: the same arithmetic as next_outage_edge
            return any(j >= 1 and j * period <= t < j * period + length for j in (k - 1, k, k + 1))
        return False

    def next_outage_edge(self, t: float) -> float | None:
        """The first time after ``t`` at which an outage starts or ends (None: never again)."""
        edges = [e for w in self.outages for e in w if e > t]
        if self.outage_every is not None:
            period, length = self.outage_every
            k = max(1, math.floor(t / period) - 1)  # one period early: t / period may round either way
            edges += [e for j in (k, k + 1, k + 2) for e in (j * period, j * period + length) if e > t]
        return min(edges, default=None)

    # -- combining -------------------------------------------------------------------------------
    def plus(self, other: FaultPlan) -> FaultPlan:
        """``other`` on top of this plan (a network profile under ``--faults``): latencies add, jitters
        add in quadrature (independent draws), rates add, outage windows join; every other setting comes
        from ``other`` where it differs from the default."""
        default = FaultPlan()
        merged: dict[str, object] = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "latency_ms" or f.name in _RATE_FIELD.values() or f.name == "ws_garbage_rate":
                merged[f.name] = mine + theirs
            elif f.name == "jitter_ms":
                merged[f.name] = math.hypot(mine, theirs)
            elif f.name == "outages":
                merged[f.name] = _union(mine + theirs)
            else:
                merged[f.name] = theirs if theirs != getattr(default, f.name) else mine
        try:
            return FaultPlan(**merged)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(f"{exc} (combining '{self}' with '{other}')") from None

    # -- text ------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``key=value`` pairs separated by commas; an empty string is the clean plan."""
        values: dict[str, object] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep or key not in _KEYS:
                raise ConfigError(f"fault plan: bad item {item!r}; known keys: {', '.join(_KEYS)} (as key=value)")
            try:
                # Method names are case-sensitive; every other value is not.
                values.update(_parse_value(key, raw.strip() if key == "only" else raw.strip().lower()))
            except ValueError:
                hint = _HINTS.get(key, f"{key}=0.01 (a probability) or {key}=1%")
                raise ConfigError(f"fault plan: {key}={raw.strip()!r} is not a valid value; e.g. {hint}") from None
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        default = FaultPlan()
        parts = []
        for key, name in _KEYS.items():
            value = getattr(self, name)
            if key == "slow":
                if (self.slow_rate, self.slow_ms) != (default.slow_rate, default.slow_ms):
                    parts.append(f"slow={T.fmt_num(self.slow_rate)}:{T.fmt_num(self.slow_ms)}ms")
            elif key == "oversize":
                if (self.oversize_rate, self.oversize_bytes) != (default.oversize_rate, default.oversize_bytes):
                    parts.append(f"oversize={T.fmt_num(self.oversize_rate)}:{T.fmt_size(self.oversize_bytes)}")
            elif value == getattr(default, name) and key != "seed":
                continue
            elif key == "outage":
                parts.append(f"outage={T.fmt_windows(value)}")
            elif key == "outage_every":
                parts.append(f"outage_every={_num_s(value[0])}:{_num_s(value[1])}")
            elif key == "only":
                parts.append(f"only={';'.join(value)}")
            elif key in ("latency", "jitter"):
                parts.append(f"{key}={T.fmt_num(value)}ms")
            elif key == "retry_after":
                parts.append(f"{key}={T.fmt_num(value)}s")
            else:
                parts.append(f"{key}={T.fmt_num(value)}" if isinstance(value, float) else f"{key}={value}")
        return ",".join(parts)


def _parse_value(key: str, raw: str) -> dict[str, object]:
    name = _KEYS[key]
    if key in ("ws_drop_after", "seed"):
        return {name: int(raw)}
    if key == "only":
        return {name: tuple(m.strip() for m in raw.split(";") if m.strip())}
    if key in ("latency", "jitter"):
        return {name: T.parse_duration(raw, T.MS)}
    if key == "retry_after":
        return {name: T.parse_duration(raw, T.SECONDS)}
    if key == "outage":
        return {name: T.parse_windows(raw)}
    if key == "outage_every":
        period, sep, length = raw.partition(":")
        if not sep:
            raise ValueError(raw)
        return {name: (T.parse_duration(period, T.SECONDS), T.parse_duration(length, T.SECONDS))}
    rate, _, extra = raw.partition(":")
    out: dict[str, object] = {name: T.parse_rate(rate)}
    if key == "slow" and extra:
        out["slow_ms"] = T.parse_duration(extra, T.MS)
    elif key == "oversize" and extra:
        out["oversize_bytes"] = T.parse_size(extra)
    elif extra:
        raise ValueError(raw)
    return out


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"fault plan: {message}")


def _num_s(x: float) -> str:
    return f"{T.fmt_num(x)}s"


def _w(start: float, end: float) -> str:
    return f"{_num_s(start)}-{_num_s(end)}"


def _union(windows: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


@dataclass(frozen=True)
class Decision:
    kind: FaultKind
    delay_s: float


@dataclass(frozen=True)
class FrameDecision:
    """For one WebSocket frame: its one-way delay, and a garbage frame to send before it (to the client)."""

    delay_s: float
    garbage: Literal["text", "binary"] | None = None


class FaultDecider:
    """Draws decisions for a plan from its own RNGs (seeded by ``plan.seed``): one for HTTP requests, one
    for WebSocket frames, one for the wrong shapes, so traffic of one kind never shifts another's draws."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._ws_rng = random.Random(f"ws:{plan.seed}")
        self.shape_rng = random.Random(f"shape:{plan.seed}")
        edges: list[tuple[float, FaultKind]] = []
        acc = 0.0
        for kind in FAULT_KINDS:
            acc += plan.rate(kind)
            edges.append((acc, kind))
        self._edges = edges

    def __repr__(self) -> str:
        return f"<FaultDecider plan='{self.plan}'>"

    def delay(self) -> float:
        """One added latency (a round trip), in seconds."""
        return self._latency(self._rng)

    def _latency(self, rng: random.Random) -> float:
        p = self.plan
        if p.jitter_ms == 0:
            return p.latency_ms / 1e3
        return max(0.0, rng.gauss(p.latency_ms, p.jitter_ms)) / 1e3

    def decide(self) -> Decision:
        u = self._rng.random()
        kind: FaultKind = "pass"
        for edge, k in self._edges:
            if u < edge:
                kind = k
                break
        return Decision(kind, self.delay())

    def frame(self, to_client: bool) -> FrameDecision:
        """A frame's one-way delay is half a round-trip draw: a call over the socket costs what it would over HTTP."""
        delay = self._latency(self._ws_rng) / 2
        if not (to_client and self.plan.ws_garbage_rate > 0):
            return FrameDecision(delay)
        if self._ws_rng.random() >= self.plan.ws_garbage_rate:
            return FrameDecision(delay)
        return FrameDecision(delay, "text" if self._ws_rng.random() < 0.5 else "binary")
