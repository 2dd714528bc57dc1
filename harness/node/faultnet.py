"""Network profiles: what ``harness run --network NAME`` puts between the bot and its node. Pure.

=============  ==================================  ===================================================
profile        latency per request (jitter, std)   faults
=============  ==================================  ===================================================
loopback       none: no proxy, the bot talks to the node directly (the default)
same-region    1 ms (0.5 ms)                        none
cross-region   70 ms (10 ms)                        none
flaky          70 ms (10 ms)                        loss after forwarding 1%, HTTP 503 0.5%, down 2 s in
                                                    every 60 s (``outage_every=60s:2s``)
=============  ==================================  ===================================================

Latency is added once per HTTP request (a round trip: ``harness.node.faultplan``), drawn from a
normal distribution clipped at zero; a WebSocket frame gets half a draw each way. The profile runs
in the fault proxy, so its plan is recorded as text in ``conditions.network_profile``, e.g.
``cross-region proxy:latency=70ms,jitter=10ms,seed=0``.

``--faults`` combines with ``--network``: the faults are added on top of the profile
(``FaultPlan.plus``: latencies add, jitters add in quadrature, rates add, outage windows join), and a
``--fault-schedule``'s plans are each added on top of the profile in the same way, so the network
stays the condition while the faults vary. With ``--network loopback`` the faults alone decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError
from harness.node.faultplan import FaultPlan
from harness.node.faultschedule import FaultSchedule

NETWORKS: dict[str, FaultPlan | None] = {
    "loopback": None,
    "same-region": FaultPlan(latency_ms=1.0, jitter_ms=0.5),
    "cross-region": FaultPlan(latency_ms=70.0, jitter_ms=10.0),
    "flaky": FaultPlan(latency_ms=70.0, jitter_ms=10.0, loss_rate=0.01, http_5xx_rate=0.005,
                       outage_every=(60.0, 2.0)),
}
NETWORK_HELP = ("the network between bot and node, added by the fault proxy: loopback (no proxy, default); "
                "same-region 1 ms ± 0.5 ms per request; cross-region 70 ms ± 10 ms; flaky: cross-region plus "
                "1%% of replies lost after the node got the request, 0.5%% HTTP 503, and down 2 s in every 60 s. "
                "± is the std of a normal jitter. --faults and --fault-schedule add their faults on top")


@dataclass(frozen=True)
class ProxySetup:
    """What a run puts between bot and node: the profile, the faults as given, and the plans they make."""

    network: str
    faults: str | None  # --faults as given
    schedule_text: str  # --fault-schedule as given ("" none)
    plan: FaultPlan  # the plan the proxy starts with: the profile plus the faults
    schedule: FaultSchedule  # every scheduled plan on top of the profile

    def __repr__(self) -> str:
        return f"ProxySetup(network={self.network!r}, plan='{self.plan}', schedule={len(self.schedule)} changes)"

    @property
    def network_profile(self) -> str:
        """``conditions.network_profile``: ``proxy:<plan>`` or ``<network> proxy:<plan>``."""
        prefix = "" if self.network == "loopback" else f"{self.network} "
        return f"{prefix}proxy:{self.plan}"


def network_plan(name: str) -> FaultPlan | None:
    if name not in NETWORKS:
        raise ConfigError(f"--network: {name!r} is not a profile; give one of {', '.join(NETWORKS)}")
    return NETWORKS[name]


def proxy_setup(network: str = "loopback", faults: str | None = None, schedule: str | None = None
                ) -> ProxySetup | None:
    """None: no proxy (loopback, no faults, no schedule). Errors name the option and the fix."""
    profile = network_plan(network)
    if profile is None and faults is None and not schedule:
        return None
    base = profile or FaultPlan()
    try:
        own = FaultPlan.parse(faults or "")
    except ConfigError as exc:
        raise ConfigError(f"--faults: {exc}") from None
    try:
        plan = base.plus(own)
    except ConfigError as exc:
        raise ConfigError(f"--faults on top of --network {network}: {exc}") from None
    try:
        changes = FaultSchedule.load(schedule).on_top_of(base) if schedule else FaultSchedule()
    except ConfigError as exc:
        raise ConfigError(f"--fault-schedule: {exc}") from None
    return ProxySetup(network, faults, schedule or "", plan, changes)
