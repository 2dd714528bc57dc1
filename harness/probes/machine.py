"""What the whole machine did while a scenario ran: CPU time stolen by the hypervisor, busy time,
and the share other processes took.

On a shared virtual machine the host can take CPU away (``steal`` in /proc/stat): the bot then
looks slower although nothing in it changed. pyperf warns about an untuned system for the same
reason. A process of someone else's on the same cores does the same from inside (a test suite, a
build): ``other_percent`` is the machine's busy time minus the CPU of the harness's own process tree
(the bot, anvil, Locust, profilers). Each scenario records these shares, so a slow run on a busy
machine is visible beside its figures instead of being read as the code's fault. On the project's
machine a stress search alone broke at 154/s while another engineer's tests took the cores, and held
200/s minutes later on a quiet machine: the same build.
"""

from __future__ import annotations

import os
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

    def since(self, earlier: CpuTimes, own_ticks: float | None = None) -> dict[str, float]:
        """Shares of all cores' time between two readings, in percent (pure). ``own_ticks``: the
        clock ticks our own process tree used meanwhile; the rest of the busy time is other processes'."""
        total = self.total - earlier.total
        if total <= 0:
            out = {"steal_percent": 0.0, "busy_percent": 0.0}
            return out if own_ticks is None else {**out, "other_percent": 0.0}
        busy = self.busy - earlier.busy
        out = {"steal_percent": round(100.0 * (self.steal - earlier.steal) / total, 2),
               "busy_percent": round(100.0 * busy / total, 2)}
        if own_ticks is not None:
            # Clamped: tick rounding of two counters can put ours a tick above the machine's.
            out["other_percent"] = round(100.0 * max(0.0, busy - own_ticks) / total, 2)
        return out


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


def own_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process and every descendant, live or already reaped.

    A reaped child's time moves into its parent's ``children_*`` times, so summing each live
    process's own and children's times counts every process of the tree once, Locust's exited
    workers included."""
    try:
        import psutil

        root = psutil.Process()
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                ct = p.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            total += ct.user + ct.system + ct.children_user + ct.children_system
        return total
    except (ImportError, OSError):
        return None


def clock_ticks_per_s() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


def read_cpu_times() -> CpuTimes | None:
    try:
        return parse_stat(PROC_STAT.read_text())
    except (OSError, ValueError):
        return None  # not Linux: the figures are simply not recorded


# Above this share of CPU taken by the host during a scenario, a slow figure may be the host's doing:
# on the project's machine a quick run with 6% steal and one with 23% differed 1.7x in latency.
STEAL_LIMIT_PERCENT = 10.0
STEAL_SHIFT_POINTS = 5.0  # two runs whose steal differs by more compare different machines
# Other processes' share of all cores above which a fail may be theirs: on two cores, 10% is a fifth
# of a core. An idle machine shows 1-3% (kernel threads, the shell, pytest waiting on its child).
OTHER_LIMIT_PERCENT = 10.0


def scenario_machine(doc: Mapping[str, Any] | None, scenario: str, key: str) -> float | None:
    """One machine share (``steal_percent``, ``other_percent``, ...) during one scenario of a results
    document, in percent (None: not recorded)."""
    if not isinstance(doc, Mapping):
        return None
    for scn in doc.get("scenarios") or []:
        if isinstance(scn, Mapping) and scn.get("id") == scenario:
            machine = (scn.get("summary") or {}).get("machine")
            if isinstance(machine, Mapping) and isinstance(machine.get(key), int | float):
                return float(machine[key])
    return None


def scenario_steal(doc: Mapping[str, Any] | None, scenario: str) -> float | None:
    """The host's steal during one scenario of a results document, in percent (None: not recorded)."""
    return scenario_machine(doc, scenario, "steal_percent")


def machine_share_taken(doc: Mapping[str, Any] | None, scenarios: list[str]) -> float:
    """The largest share of the machine's CPU, in percent, that the host (steal) or other processes
    took during these scenarios (pure; 0 when not recorded)."""
    shares = [x for sid in scenarios for key in ("steal_percent", "other_percent")
              if (x := scenario_machine(doc, sid, key)) is not None]
    return max(shares, default=0.0)


def busy_machine(doc: Mapping[str, Any] | None, scenarios: list[str]) -> str | None:
    """Why these scenarios' figures may be the machine's doing, not the bot's: the host's steal or
    other processes above their limits (pure). None when the machine was quiet or not recorded."""
    steals = [x for sid in scenarios if (x := scenario_machine(doc, sid, "steal_percent")) is not None]
    others = [x for sid in scenarios if (x := scenario_machine(doc, sid, "other_percent")) is not None]
    if steals and max(steals) > STEAL_LIMIT_PERCENT:
        return f"the host took {max(steals):.0f}% of the CPU (steal > {STEAL_LIMIT_PERCENT:g}%)"
    if others and max(others) > OTHER_LIMIT_PERCENT:
        return (f"other processes on this machine took {max(others):.0f}% of its CPU "
                f"(> {OTHER_LIMIT_PERCENT:g}%)")
    return None


def steal_shift(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None,
                scenario: str = "sustained") -> str | None:
    """A sentence when the host took a different share of CPU in the two runs' ``scenario`` (pure)."""
    b, h = scenario_steal(base, scenario), scenario_steal(head, scenario)
    if b is not None and h is not None and (abs(h - b) > STEAL_SHIFT_POINTS or max(b, h) > STEAL_LIMIT_PERCENT):
        return (f"the host took {b:.0f}% of the CPU during the base run's {scenario} and {h:.0f}% during the "
                f"head's (steal)")
    ob, oh = scenario_machine(base, scenario, "other_percent"), scenario_machine(head, scenario, "other_percent")
    if ob is not None and oh is not None and max(ob, oh) > OTHER_LIMIT_PERCENT:
        return (f"other processes took {ob:.0f}% of the machine's CPU during the base run's {scenario} and "
                f"{oh:.0f}% during the head's")
    return None
