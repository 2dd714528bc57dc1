"""The scenarios of slo-tables.md as data, in a quick and a full profile (pure).

The quick profile runs every scenario short enough for a PR (a few minutes in all); the full
profile runs them as specified (sustained for an hour). Stress stops at the first step that
breaks a target, so its length depends on the bot. A profile may also offer scenarios it does not
run by default (``on_request``): ``--only`` selects them (the quick profile's ``websocket_stress``).
The chaos scenarios (``harness.run.chaosplan``) come last: all five in the full profile, and the ones
``--chaos`` names in their short form (``with_chaos``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import ConfigError
from harness.run.chaosplan import CHAOS_NAMES, ChaosSpec, chaos_spec, parse_chaos

Kind = Literal["trades", "market_data", "api", "chaos"]

WS_RATE = 10_500.0
WS_DESCRIPTION = "market-data ticks at 10.5k/s (target 10k/s), decoded and handled, none dropped"
# Doubling from just above the 10k/s target, through the 50k/s goal; bisection narrows to 10%.
WS_STRESS_LADDER = (12_500.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0)


@dataclass(frozen=True)
class Step:
    rate: float  # per second
    seconds: float


@dataclass(frozen=True)
class Scenario:
    id: str
    kind: Kind
    steps: tuple[Step, ...]  # one step = constant rate; a burst is one step of N in T
    drain_s: float = 10.0  # after the schedule: let in-flight trades reach their receipts
    description: str = ""
    stop_on_break: bool = False
    chaos: ChaosSpec | None = None  # kind "chaos": what it does to the bot's two endpoints
    resolution: float = 0.10  # a stress search's bracket: the breaking point within this ratio of last good

    @property
    def duration_s(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def total(self) -> int:
        return round(sum(s.rate * s.seconds for s in self.steps))

    def schedule_dict(self) -> dict[str, Any]:
        if self.id == "burst":
            return {"kind": "burst", "count": self.total, "seconds": self.steps[0].seconds}
        if len(self.steps) == 1:
            return {"kind": "constant", "rate": self.steps[0].rate, "seconds": self.steps[0].seconds}
        return {"kind": "steps", "steps": [{"rate": s.rate, "seconds": s.seconds} for s in self.steps]}


@dataclass(frozen=True)
class Profile:
    name: str
    scenarios: tuple[Scenario, ...] = field(default_factory=tuple)
    on_request: tuple[Scenario, ...] = ()  # run only when ``--only`` names them

    def select(self, only: str | None) -> Profile:
        if not only:
            return self
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        offered = (*self.scenarios, *self.on_request)
        known = {s.id for s in offered}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ConfigError(f"--only: unknown scenario(s) {', '.join(unknown)}; "
                              f"choose from {', '.join(sorted(known))}")
        # A subset is not comparable with a whole profile: it is "custom" (and baselines follow suit).
        return Profile("custom", tuple(s for s in offered if s.id in wanted))


def chaos_scenario(spec: ChaosSpec) -> Scenario:
    return Scenario(spec.id, "chaos", (Step(spec.rate, spec.seconds),), drain_s=10.0, description=spec.describe(),
                    chaos=spec)


def with_chaos(base: Profile, only: str | None, names: str) -> Profile:
    """``--chaos NAMES``: those chaos scenarios (full form in the full profile, else short), after the
    scenarios ``--only`` names, if any; no other scenario runs."""
    form: Literal["short", "full"] = "full" if base.name == "full" else "short"
    picked = tuple(s for s in base.select(only).scenarios if s.kind != "chaos") if only else ()
    chaos = tuple(chaos_scenario(chaos_spec(n, form)) for n in parse_chaos(names))
    return Profile("custom", (*picked, *chaos))


def _stress(rates: list[float], seconds: float, resolution: float = 0.10) -> Scenario:
    return Scenario("stress", "trades", tuple(Step(r, seconds) for r in rates), drain_s=8.0, stop_on_break=True,
                    description="arrival rate raised step by step until a target breaks", resolution=resolution)


def _websocket_stress(seconds: float) -> Scenario:
    # drain_s bounds each step's wait for ticks still in socket buffers to be counted.
    return Scenario("websocket_stress", "market_data", tuple(Step(r, seconds) for r in WS_STRESS_LADDER),
                    drain_s=10.0, stop_on_break=True,
                    description="market-data rate raised, then bisected, to the highest rate handled with none "
                                "dropped")


def smoke(sustained_minutes: float | None = None) -> Profile:
    """Every scenario, as short as still decides something: CI's two-run A/A check."""
    minutes = sustained_minutes if sustained_minutes is not None else 0.25
    return Profile("smoke", (
        Scenario("burst", "trades", (Step(1000.0, 1.0),), drain_s=20.0,
                 description="1000 transactions arriving within 1 second"),
        Scenario("sustained", "trades", (Step(100.0, minutes * 60.0),), drain_s=8.0,
                 description=f"100 transactions per second for {minutes:g} min"),
        Scenario("websocket", "market_data", (Step(WS_RATE, 5.0),), drain_s=5.0, description=WS_DESCRIPTION),
        Scenario("api", "api", (Step(700.0, 8.0),), drain_s=1.0,
                 description="Locust against the bot's HTTP control API"),
        # Bisected to 50%, not 10%: three fewer steps per run (each ~12 s with its drain and settle),
        # and CI's A/A check asks only whether two runs' verdicts agree, which the stress rows'
        # run-to-run spread (x/÷ 1.8) decides anyway.
        _stress([200, 400, 800, 1600], 6.0, resolution=0.5),
    ))


def profile(name: str, sustained_minutes: float | None = None) -> Profile:
    if name == "smoke":
        return smoke(sustained_minutes)
    if name not in {"quick", "full"}:
        raise ConfigError(f"--profile: unknown profile {name!r}; use quick, full or smoke")
    quick = name == "quick"
    minutes = sustained_minutes if sustained_minutes is not None else (1.0 if quick else 60.0)
    if minutes <= 0 or minutes > 24 * 60:
        raise ConfigError(f"--minutes: {minutes} is out of range; give 0 < minutes <= 1440")
    # 10-s steps in the quick form leave 6 whole seconds judged (after the 2-s warm-up and the bot
    # interval straddling the schedule's end): enough for the handled rate's t-interval. It runs there
    # only on request (--only), being minutes long.
    ws_stress = _websocket_stress(10.0 if quick else 30.0)
    scenarios = (
        Scenario("burst", "trades", (Step(1000.0, 1.0),), drain_s=20.0,
                 description="1000 transactions arriving within 1 second"),
        Scenario("sustained", "trades", (Step(100.0, minutes * 60.0),), drain_s=8.0,
                 description=f"100 transactions per second for {minutes:g} min"),
        # Offered 5% above the 10k/s target: at exactly the target a handled rate can at best tie
        # with it (never a confident pass), and the batch-means CI of 10 s is about +-2%. Far above
        # it (12k/s) the row judged "none dropped" at a load the SLO never asked for.
        Scenario("websocket", "market_data", (Step(WS_RATE, 10.0 if quick else 60.0),), drain_s=5.0,
                 description=WS_DESCRIPTION),
        *(() if quick else (ws_stress,)),
        Scenario("api", "api", (Step(700.0, 20.0 if quick else 120.0),), drain_s=1.0,
                 description="Locust against the bot's HTTP control API"),
        # Ramp doubling, then bisect (StressSearch) to the breaking point within 10%: fewer steps
        # than a fine ladder, and each long enough that its judged window (after a 2 s warm-up)
        # holds the ~600 samples a p99 needs at the lowest rate.
        _stress([100, 200, 400, 800, 1600] if quick else
                [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1700, 2000],
                10.0 if quick else 60.0),
        # Last: each runs its own bot on a fresh chain, and restores the run's bot after the last one.
        *(() if quick else tuple(chaos_scenario(chaos_spec(n, "full")) for n in CHAOS_NAMES)),
    )
    return Profile(name, scenarios, on_request=(ws_stress,) if quick else ())
