"""What the whole machine did while a scenario ran: CPU time stolen by the hypervisor, and busy time.

On a shared virtual machine the host can take CPU away (``steal`` in /proc/stat): the bot then
looks slower although nothing in it changed. pyperf warns about an untuned system for the same
reason. Each scenario records its share of stolen and busy CPU, so a slow run on a stolen-from
machine is visible beside its figures instead of being read as the code's fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # user + nice + system + irq + softirq (clock ticks, all cores)
    steal: int
    total: int  # everything, idle and iowait included

    def since(self, earlier: CpuTimes) -> dict[str, float]:
        """Shares of all cores' time between two readings, in percent (pure)."""
        total = self.total - earlier.total
        if total <= 0:
            return {"steal_percent": 0.0, "busy_percent": 0.0}
        return {"steal_percent": round(100.0 * (self.steal - earlier.steal) / total, 2),
                "busy_percent": round(100.0 * (self.busy - earlier.busy) / total, 2)}


def parse_stat(text: str) -> CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat (pure)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            f += [0] * (8 - len(f))
            user, nice, system, idle, iowait, irq, softirq, steal = f[:8]
            # guest time is already inside user/nice; do not count it twice
            return CpuTimes(user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq
                            + softirq + steal)
    raise ValueError("/proc/stat has no aggregate 'cpu' line")


def read_cpu_times() -> CpuTimes | None:
    try:
        return parse_stat(PROC_STAT.read_text())
    except (OSError, ValueError):
        return None  # not Linux: the figures are simply not recorded


# Above this share of CPU taken by the host during a scenario, a slow figure may be the host's doing:
# on the project's machine a quick run with 6% steal and one with 23% differed 1.7x in latency.
STEAL_LIMIT_PERCENT = 10.0
STEAL_SHIFT_POINTS = 5.0  # two runs whose steal differs by more compare different machines


def scenario_steal(doc: Mapping[str, Any] | None, scenario: str) -> float | None:
    """The host's steal during one scenario of a results document, in percent (None: not recorded)."""
    if not isinstance(doc, Mapping):
        return None
    for scn in doc.get("scenarios") or []:
        if isinstance(scn, Mapping) and scn.get("id") == scenario:
            machine = (scn.get("summary") or {}).get("machine")
            if isinstance(machine, Mapping) and isinstance(machine.get("steal_percent"), int | float):
                return float(machine["steal_percent"])
    return None


def steal_shift(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None,
                scenario: str = "sustained") -> str | None:
    """A sentence when the host took a different share of CPU in the two runs' ``scenario`` (pure)."""
    b, h = scenario_steal(base, scenario), scenario_steal(head, scenario)
    if b is None or h is None:
        return None
    if abs(h - b) > STEAL_SHIFT_POINTS or max(b, h) > STEAL_LIMIT_PERCENT:
        return (f"the host took {b:.0f}% of the CPU during the base run's {scenario} and {h:.0f}% during the "
                f"head's (steal)")
    return None
