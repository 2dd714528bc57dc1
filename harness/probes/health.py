"""Health probing of the bot's ``/health`` endpoint, for the ``uptime`` SLO row.

Each probe is one GET with a short timeout; anything but HTTP 200 in time is a failed probe.
Probes run on their own schedule, independent of the load, so an unresponsive bot is seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from harness.probes.periodic import Periodic


@dataclass(frozen=True)
class HealthStatistics:
    probes: int
    ok: int
    last_error: str | None

    def as_dict(self) -> dict[str, int]:
        return {"probes": self.probes, "ok": self.ok}


class HealthProber:
    def __init__(self, url: str, interval: float = 0.5, timeout: float = 1.0, max_probes: int = 1_000_000) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_probes = max_probes
        self._probes = 0
        self._ok = 0
        self._last_error: str | None = None
        self._loop = Periodic(self.probe_once, interval, name="health-prober", max_runs=max_probes)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<HealthProber {self.url} {self._ok}/{self._probes} ok>"

    def statistics(self) -> HealthStatistics:
        return HealthStatistics(self._probes, self._ok, self._last_error)

    def carry(self, earlier: HealthStatistics) -> None:
        """Count an earlier prober's probes as this one's (a fresh bot within one scenario)."""
        self._probes += earlier.probes
        self._ok += earlier.ok
        self._last_error = self._last_error or earlier.last_error

    def reset(self) -> HealthStatistics:
        """Return the counts so far and start counting afresh (one window per scenario)."""
        stats = self.statistics()
        self._probes = self._ok = 0
        return stats

    async def probe_once(self) -> bool:
        """One probe, counted only once it has an outcome: a probe cut off by ``stop()`` is the
        harness stopping, not the bot failing, and counts neither way."""
        assert self._session is not None
        ok = False
        try:
            async with self._session.get(self.url, timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                await r.read()
                ok = r.status == 200
                if not ok:
                    self._last_error = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
        self._probes += 1
        self._ok += ok
        return ok

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._loop.start()

    async def stop(self) -> HealthStatistics:
        await self._loop.stop()
        if self._session is not None:
            await self._session.close()
        return self.statistics()
