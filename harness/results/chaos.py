"""The chaos scenarios in ``results.json``: the top-level ``chaos`` section, one entry per scenario (typed).

Written by ``harness.run.chaos`` as each chaos scenario ends (``ResultsWriter.set_chaos``); judged by
``harness.slo.chaos_rows``; shown on the run page ("Chaos"). Each entry says what was done to the
bot's two endpoints (``actions``, timed from the scenario's start), what each proxy saw, the
scenario's own bot session reconciled against the chain (``ledger``), and the one measurement its
kind is about: ``failover`` (outage), ``retry_after`` (ratelimit), ``resubscribe`` (wsdrop), ``slow``
(slownode) or ``ambiguous``. ``from_json(to_json(x)) == x`` (tests/unit/test_chaos_results.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from harness.results.ledger import LedgerCounts


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class ChaosAction:
    t: float  # seconds from the scenario's start
    proxy: str  # A or B
    action: str  # plan | outage | ws_drop
    detail: str = ""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChaosAction:
        return cls(float(d["t"]), str(d["proxy"]), str(d["action"]), str(d.get("detail", "")))

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "proxy": self.proxy, "action": self.action, "detail": self.detail}


@dataclass(frozen=True)
class ProxyTraffic:
    """What one proxy saw: HTTP requests, 2xx answers, requests closed unanswered, its injections by kind."""

    name: str
    requests: int = 0
    ok: int = 0
    unanswered: int = 0
    injected: Mapping[str, int] = field(default_factory=dict)
    log: str | None = None  # its injection log, relative to the run folder

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProxyTraffic:
        return cls(str(d["name"]), int(d.get("requests", 0)), int(d.get("ok", 0)), int(d.get("unanswered", 0)),
                   {str(k): int(v) for k, v in d.get("injected", {}).items()}, d.get("log"))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "requests": self.requests, "ok": self.ok, "unanswered": self.unanswered,
                "injected": dict(self.injected), "log": self.log}


@dataclass(frozen=True)
class ChaosLedger:
    """The scenario's own bot session reconciled against the chain (``harness.run.reconcile``)."""

    session: int
    reconciled: bool
    counts: LedgerCounts
    note: str = ""

    @property
    def clean(self) -> bool:
        return self.reconciled and self.counts.problems == 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChaosLedger:
        return cls(int(d["session"]), bool(d["reconciled"]), LedgerCounts.from_json(d["counts"]),
                   str(d.get("note", "")))

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "reconciled": self.reconciled, "counts": self.counts.to_json(),
                "note": self.note}


@dataclass(frozen=True)
class Failover:
    """Per outage: the proxy taken down and the ms from its start to the first 2xx through the other
    (None: none before the next outage); n, p50, p99 (nearest rank) and max over the observed ones."""

    down: tuple[str, ...]
    times_ms: tuple[float | None, ...]
    n: int
    unobserved: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Failover:
        return cls(tuple(str(x) for x in d["down"]), tuple(_opt_float(x) for x in d["times_ms"]), int(d["n"]),
                   int(d["unobserved"]), _opt_float(d.get("p50_ms")), _opt_float(d.get("p99_ms")),
                   _opt_float(d.get("max_ms")))

    def to_json(self) -> dict[str, Any]:
        return {"down": list(self.down), "times_ms": list(self.times_ms), "n": self.n, "unobserved": self.unobserved,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms}


@dataclass(frozen=True)
class RetryAfterCheck:
    """The 429 window on the endpoint carrying the traffic: what the bot was asked (``retry_after_s``) and
    must honour (``cap_s``); ``early``: requests that reached it inside a park (after a 429 plus ``grace_s``,
    before it plus ``cap_s``)."""

    retry_after_s: float
    cap_s: float
    grace_s: float
    limited: int  # requests the endpoint answered 429
    early: int
    early_t: tuple[float, ...]  # their arrival, seconds from the scenario's start
    ok_via_other: int  # 2xx answers through the other endpoint inside the window
    trades_ok: int  # trades completed inside the window
    log_limited: int = 0  # 429s in its injection log (the same requests, counted by the log)
    # Seconds between one 429 and the bot's next request to the endpoint (beyond the grace): the park it kept
    returns_s: tuple[float, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RetryAfterCheck:
        return cls(float(d["retry_after_s"]), float(d["cap_s"]), float(d["grace_s"]), int(d["limited"]),
                   int(d["early"]), tuple(float(x) for x in d.get("early_t", [])), int(d["ok_via_other"]),
                   int(d["trades_ok"]), int(d.get("log_limited", 0)), tuple(float(x) for x in d.get("returns_s", [])))

    def to_json(self) -> dict[str, Any]:
        return {"retry_after_s": self.retry_after_s, "cap_s": self.cap_s, "grace_s": self.grace_s,
                "limited": self.limited, "early": self.early, "early_t": list(self.early_t),
                "ok_via_other": self.ok_via_other, "trades_ok": self.trades_ok, "log_limited": self.log_limited,
                "returns_s": list(self.returns_s)}


@dataclass(frozen=True)
class Resubscribe:
    """The bot's own WebSocket counters (``ws_connects`` ...) over the drops: connections that
    subscribed and caught up, items delivered by backfill, reconnect attempts, receipts' falls back
    to polling."""

    drops: int  # drops ordered
    dropped: int  # sockets the proxy closed
    connects: int
    backfilled: int
    reconnects: int
    fallbacks: int

    @property
    def unrecovered(self) -> int:
        """Sockets dropped that no later subscription replaced."""
        return max(0, self.dropped - self.connects)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Resubscribe:
        return cls(int(d["drops"]), int(d["dropped"]), int(d["connects"]), int(d["backfilled"]),
                   int(d["reconnects"]), int(d["fallbacks"]))

    def to_json(self) -> dict[str, Any]:
        return {"drops": self.drops, "dropped": self.dropped, "connects": self.connects,
                "backfilled": self.backfilled, "reconnects": self.reconnects, "fallbacks": self.fallbacks}


@dataclass(frozen=True)
class SlowNode:
    latency_ms: float  # added to every request through the endpoint that carried the traffic
    share_other: float | None  # the other endpoint's share of the requests meanwhile (after the first second)
    trade_mean_ms: float | None  # trade_execution mean over the scenario

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SlowNode:
        return cls(float(d["latency_ms"]), _opt_float(d.get("share_other")), _opt_float(d.get("trade_mean_ms")))

    def to_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "share_other": self.share_other, "trade_mean_ms": self.trade_mean_ms}


@dataclass(frozen=True)
class Ambiguous:
    loss_rate: float
    sends_lost: int  # sends A forwarded to the node and whose reply it dropped
    hashes: tuple[str, ...] = ()  # the first few of them

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Ambiguous:
        return cls(float(d["loss_rate"]), int(d["sends_lost"]), tuple(str(h) for h in d.get("hashes", [])))

    def to_json(self) -> dict[str, Any]:
        return {"loss_rate": self.loss_rate, "sends_lost": self.sends_lost, "hashes": list(self.hashes)}


@dataclass(frozen=True)
class ChaosScenario:
    id: str
    name: str  # outage | ratelimit | wsdrop | slownode | ambiguous
    form: str  # short | full
    description: str
    rate: float  # trades offered per second
    rate_source: str  # fixed
    seconds: float
    actions: tuple[ChaosAction, ...] = ()
    proxies: tuple[ProxyTraffic, ...] = ()
    trades_sent: int = 0
    trades_ok: int = 0
    ledger: ChaosLedger | None = None
    failover: Failover | None = None
    retry_after: RetryAfterCheck | None = None
    resubscribe: Resubscribe | None = None
    slow: SlowNode | None = None
    ambiguous: Ambiguous | None = None
    error: str | None = None  # the scenario could not run to the end: why

    def __repr__(self) -> str:
        return f"ChaosScenario({self.id!r}, actions={len(self.actions)}, ledger={self.ledger}, error={self.error!r})"

    _PARTS: ClassVar[dict[str, Any]] = {"ledger": ChaosLedger, "failover": Failover, "retry_after": RetryAfterCheck,
              "resubscribe": Resubscribe, "slow": SlowNode, "ambiguous": Ambiguous}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChaosScenario:
        parts = {k: (t.from_json(d[k]) if d.get(k) is not None else None) for k, t in cls._PARTS.items()}
        return cls(id=str(d["id"]), name=str(d["name"]), form=str(d["form"]), description=str(d.get("description", "")),
                   rate=float(d["rate"]), rate_source=str(d["rate_source"]), seconds=float(d["seconds"]),
                   actions=tuple(ChaosAction.from_json(a) for a in d.get("actions", [])),
                   proxies=tuple(ProxyTraffic.from_json(p) for p in d.get("proxies", [])),
                   trades_sent=int(d.get("trades_sent", 0)), trades_ok=int(d.get("trades_ok", 0)),
                   error=d.get("error"), **parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "form": self.form, "description": self.description, "rate": self.rate,
            "rate_source": self.rate_source, "seconds": self.seconds,
            "actions": [a.to_json() for a in self.actions], "proxies": [p.to_json() for p in self.proxies],
            "trades_sent": self.trades_sent, "trades_ok": self.trades_ok, "error": self.error}
        for k in self._PARTS:
            part = getattr(self, k)
            out[k] = None if part is None else part.to_json()
        return out


@dataclass(frozen=True)
class ChaosResults:
    scenarios: tuple[ChaosScenario, ...] = ()

    def get(self, name: str) -> ChaosScenario | None:
        """The scenario of that name (``outage``) or id (``chaos_outage``)."""
        return next((s for s in self.scenarios if name in (s.name, s.id)), None)

    def with_scenario(self, scn: ChaosScenario) -> ChaosResults:
        kept = tuple(s for s in self.scenarios if s.id != scn.id)
        return replace(self, scenarios=(*kept, scn))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChaosResults:
        return cls(tuple(ChaosScenario.from_json(s) for s in d.get("scenarios", [])))

    def to_json(self) -> dict[str, Any]:
        return {"scenarios": [s.to_json() for s in self.scenarios]}
