"""The chaos scenarios as data: what each one offers, what it does to the two proxies, and when (pure).

A chaos scenario runs a fresh bot that has two endpoints, each behind its own fault proxy: ``A``
(listed first, so ranked first while both are equal) and ``B``, which also carries the bot's one
WebSocket (the config allows one), so faults on A leave the subscription alone. Trades are offered
at a fixed moderate rate (``rate``, recorded as such: the scenario judges recovery, not capacity),
and every action below is timed from the scenario's start:

- ``outage``: ``outages`` outages of ``outage_s`` each, one every ``outage_every_s``, each on the
  proxy carrying most of the bot's requests at that moment (``target="carrier"``), so each forces a
  real failover. The spacing exceeds an outage plus the bot's breaker cooldown (5 s): a failover must
  find the other endpoint usable, not still cooling down from the outage before.
- ``ratelimit``: A answers every request 429 with a Retry-After longer than the bot's cap
  (``max_retry_after_s``, set in the chaos bot's config), for ``limit_s``.
- ``wsdrop``: B's WebSockets dropped ``drops`` times (each drop waits, bounded, until the bot's own
  count of subscriptions that caught up shows it back from the drop before: dropping a socket that is
  still subscribing proves nothing); for ``hold_s`` after each drop every new socket is closed after
  its first message, so the bot misses blocks and must backfill them.
- ``slownode``: A answers ``latency_ms`` late for the rest of the load.
- ``ambiguous``: A forwards ``eth_sendRawTransaction`` and drops the reply at ``loss_rate``
  (the node has the transaction; the bot cannot tell).

In the last three B is ``far_ms`` farther than A for the whole scenario. Two equal endpoints rank by
latency noise, so the bot may be using either when the fault starts (measured: a 429 window on A
met no request at all); with B farther, A is the bot's choice, as a nearer endpoint would be, and the
fault on A is one the bot must react to (in ``ambiguous``: A keeps receiving the sends it loses).

Each scenario has a short form (``harness run --chaos NAME``, the integration test) and a full one
(``--profile full``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bot.rpc.config import HealthPolicy
from harness.errors import ConfigError

ChaosName = Literal["outage", "ratelimit", "wsdrop", "slownode", "ambiguous"]
CHAOS_NAMES: tuple[ChaosName, ...] = ("outage", "ratelimit", "wsdrop", "slownode", "ambiguous")
Target = Literal["A", "B", "carrier"]
Verb = Literal["plan", "outage", "ws_drop"]
PREFIX = "chaos_"


@dataclass(frozen=True)
class Action:
    """One thing done to a proxy ``t`` seconds after the scenario's start: set its ``plan`` (FaultPlan
    text, "" clean), start an ``outage`` of ``seconds``, or drop its WebSockets (``ws_drop``)."""

    t: float
    target: Target
    verb: Verb
    plan: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class ChaosSpec:
    name: ChaosName
    form: Literal["short", "full"]
    rate: float  # trades offered per second
    seconds: float  # the load; every fault is cleared by its end
    lead_s: float = 2.0  # trades before the first fault: the bot has ranked its endpoints by then
    outages: int = 0
    outage_s: float = 0.0
    outage_every_s: float = 0.0
    retry_after_s: float = 0.0  # what A's 429 asks for
    max_retry_after_s: float = 0.0  # the chaos bot's engine.max_retry_after: the park it must honour
    limit_s: float = 0.0
    drops: int = 0
    drop_every_s: float = 0.0
    hold_s: float = 0.0
    latency_ms: float = 0.0
    loss_rate: float = 0.0
    far_ms: float = 0.0
    bot: dict[str, Any] = field(default_factory=dict)  # the chaos bot's config on top of the run's

    @property
    def id(self) -> str:
        return PREFIX + self.name

    @property
    def rate_source(self) -> str:
        return "fixed"

    @property
    def cap_s(self) -> float:
        """How long one 429 parks A in the bot: its Retry-After, capped at the bot's max_retry_after."""
        return min(self.retry_after_s, self.max_retry_after_s)

    def describe(self) -> str:
        what = {
            "outage": f"{self.outages} outages of {self.outage_s:g} s, every {self.outage_every_s:g} s, each on the "
                      "endpoint carrying the traffic",
            "ratelimit": f"endpoint A answers 429 (Retry-After {self.retry_after_s:g} s, the bot caps it at "
                         f"{self.max_retry_after_s:g} s) for {self.limit_s:g} s (B {self.far_ms:g} ms farther)",
            "wsdrop": f"the WebSocket dropped {self.drops} times, every {self.drop_every_s:g} s, reconnects refused "
                      f"for {self.hold_s:g} s after each",
            "slownode": f"endpoint A {self.latency_ms:g} ms slower for the rest of the load (B {self.far_ms:g} ms "
                        "farther)",
            "ambiguous": f"endpoint A drops {self.loss_rate:.0%} of send replies after forwarding (B {self.far_ms:g} "
                         "ms farther)",
        }[self.name]
        return f"chaos {self.name}: {what}; {self.rate:g} trades/s for {self.seconds:g} s"

    def timeline(self) -> tuple[Action, ...]:
        """Every action, in time order; the last one leaves both proxies clean before the load ends."""
        lead, end = self.lead_s, self.seconds
        if self.name == "outage":
            acts = [Action(lead + k * self.outage_every_s, "carrier", "outage", seconds=self.outage_s)
                    for k in range(self.outages)]
        elif self.name == "ratelimit":
            acts = [*self._far(), Action(lead, "A", "plan", f"429=1,retry_after={self.retry_after_s:g}s"),
                    Action(lead + self.limit_s, "A", "plan"), Action(end, "B", "plan")]
        elif self.name == "wsdrop":
            acts = []
            for k in range(self.drops):
                t = lead + k * self.drop_every_s
                acts += [Action(t, "B", "ws_drop"), Action(t, "B", "plan", "ws_drop_after=1"),
                         Action(t + self.hold_s, "B", "plan")]
        elif self.name == "slownode":
            acts = [*self._far(), Action(lead, "A", "plan", f"latency={self.latency_ms:g}ms"),
                    Action(end, "A", "plan"), Action(end, "B", "plan")]
        else:
            acts = [*self._far(), Action(lead, "A", "plan", f"loss={self.loss_rate:g},only=eth_sendRawTransaction"),
                    Action(end, "A", "plan"), Action(end, "B", "plan")]
        return tuple(sorted(acts, key=lambda a: a.t))

    def _far(self) -> list[Action]:
        return [Action(0.0, "B", "plan", f"latency={self.far_ms:g}ms")] if self.far_ms else []


def chaos_spec(name: ChaosName, form: Literal["short", "full"] = "short") -> ChaosSpec:
    """The scenario ``name`` in its short form (seconds) or full form (minutes)."""
    short = form == "short"
    rate = 30.0 if short else 50.0
    if name == "outage":
        # The bot's breaker opens on an endpoint's third failure in a row, at the latest when its outage ends,
        # and lets a probe through after its cooldown (5 s): the next outage, on the other endpoint, must find
        # this one usable again. Measured: outages 2 s apart found it still open and the bot had nowhere to go
        # for 1-3 s; 5.2 s apart, one failover waited 0.5 s for a breaker that had opened late in its outage.
        k, down = (5, 0.5) if short else (20, 2.0)
        every = down + HealthPolicy().cooldown + 0.5
        # The load goes on 2 s past the last outage: time for its failover, and for the bot to come back.
        return ChaosSpec(name, form, rate, 1.5 + (k - 1) * every + down + 2.0, lead_s=1.5, outages=k,
                         outage_s=down, outage_every_s=every)
    if name == "ratelimit":
        # A Retry-After of 30 s against a cap of 2 s: the park must end at the cap, not at the header.
        cap = 2.0
        return ChaosSpec(name, form, rate, 5.5 if short else 30.0, lead_s=1.5, retry_after_s=30.0,
                         max_retry_after_s=cap, limit_s=3.5 if short else 25.0, far_ms=10.0,
                         bot={"engine": {"max_retry_after": cap}})
    if name == "wsdrop":
        n = 4 if short else 10
        every = 1.0 if short else 3.0
        return ChaosSpec(name, form, rate, 1.0 + n * every + 0.5, lead_s=1.0, drops=n, drop_every_s=every,
                         hold_s=0.4)
    if name == "slownode":
        return ChaosSpec(name, form, rate, 5.5 if short else 30.0, lead_s=1.5, latency_ms=300.0, far_ms=10.0)
    return ChaosSpec(name, form, rate, 5.5 if short else 30.0, lead_s=1.5, loss_rate=0.2, far_ms=20.0)


def parse_chaos(text: str) -> tuple[ChaosName, ...]:
    """``--chaos outage,ratelimit`` (or ``all``) -> names in the canonical order, each once."""
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    if not wanted:
        raise ConfigError(f"--chaos: name at least one scenario: {', '.join(CHAOS_NAMES)}, or all")
    if "all" in wanted:
        return CHAOS_NAMES
    unknown = [w for w in wanted if w not in CHAOS_NAMES]
    if unknown:
        raise ConfigError(f"--chaos: unknown scenario(s) {', '.join(unknown)}; choose from "
                          f"{', '.join(CHAOS_NAMES)}, or all")
    return tuple(n for n in CHAOS_NAMES if n in wanted)
