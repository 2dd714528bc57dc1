"""A small async client for Prometheus's HTTP API (``/api/v1/...``), typed answers only.

Every answer is checked (``status: success``, the fields we read, their types) and parsed into
frozen records by pure functions, so a Prometheus of another version that changed a shape fails
with a ``HarnessError`` naming the field, not with a KeyError three calls later. Redirects are not
followed, as everywhere in the harness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from harness.errors import HarnessError


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or a scalar, with no labels)."""

    labels: Mapping[str, str]
    value: float

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


@dataclass(frozen=True)
class Target:
    job: str
    scrape_url: str
    health: str  # "up" | "down" | "unknown"
    last_error: str
    last_scrape: str  # RFC 3339; "0001-01-01T00:00:00Z" before the first scrape
    labels: Mapping[str, str]

    @property
    def scraped(self) -> bool:
        return not self.last_scrape.startswith("0001-")


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # "pending" | "firing"
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: str
    active_at: str


@dataclass(frozen=True)
class Rule:
    group: str
    name: str
    kind: str  # "alerting" | "recording"
    query: str
    health: str  # "ok" | "err" | "unknown" (not evaluated yet)
    last_error: str
    last_evaluation: str
    state: str  # alerting rules: "inactive" | "pending" | "firing"; "" for recording rules
    labels: Mapping[str, str]
    alerts: tuple[Alert, ...]

    @property
    def evaluated(self) -> bool:
        return self.health != "unknown" and not self.last_evaluation.startswith("0001-")


# -- pure parsing ------------------------------------------------------------------------------------
def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise HarnessError(f"Prometheus API {where}: expected an object, got {type(obj).__name__}")
    value = obj.get(key)
    if not isinstance(value, kind):
        raise HarnessError(f"Prometheus API {where}.{key}: expected {kind}, got {value!r:.200}")
    return value


def _str_map(obj: Any, where: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise HarnessError(f"Prometheus API {where}: expected a map of strings, got {obj!r:.200}")
    return dict(obj)


def unwrap(doc: Any, where: str) -> Any:
    """The ``data`` of a ``{"status": "success", "data": ...}`` envelope; the error text otherwise."""
    status = _field(doc, "status", str, where)
    if status != "success":
        raise HarnessError(f"Prometheus API {where} failed: {doc.get('errorType', '?')}: {doc.get('error', '?')}")
    return doc.get("data")


def _number(text: Any, where: str) -> float:
    if not isinstance(text, str):
        raise HarnessError(f"Prometheus API {where}: expected a number as a string, got {text!r:.100}")
    try:
        return float(text)  # "NaN", "+Inf" included: Prometheus writes them so
    except ValueError:
        raise HarnessError(f"Prometheus API {where}: not a number: {text!r:.100}") from None


def parse_query(data: Any) -> list[Sample]:
    """An instant query's ``data``: a vector or a scalar (a matrix is for range queries, not used)."""
    kind = _field(data, "resultType", str, "query")
    result = data.get("result")
    if kind == "scalar":
        if not isinstance(result, list) or len(result) != 2:
            raise HarnessError(f"Prometheus API query: a scalar must be [time, value], got {result!r:.200}")
        return [Sample({}, _number(result[1], "query.result[1]"))]
    if kind != "vector":
        raise HarnessError(f"Prometheus API query: resultType {kind!r} is not supported (instant vectors only)")
    if not isinstance(result, list):
        raise HarnessError(f"Prometheus API query.result: expected a list, got {result!r:.200}")
    samples = []
    for i, item in enumerate(result):
        pair = _field(item, "value", list, f"query.result[{i}]")
        if len(pair) != 2:
            raise HarnessError(f"Prometheus API query.result[{i}].value: expected [time, value], got {pair!r:.100}")
        samples.append(Sample(_str_map(item.get("metric"), f"query.result[{i}].metric"),
                              _number(pair[1], f"query.result[{i}].value")))
    return samples


def parse_targets(data: Any) -> list[Target]:
    active = _field(data, "activeTargets", list, "targets")
    out = []
    for i, t in enumerate(active):
        where = f"targets.activeTargets[{i}]"
        labels = _str_map(t.get("labels") if isinstance(t, dict) else None, where + ".labels")
        out.append(Target(
            job=_field(t, "scrapePool", str, where), scrape_url=_field(t, "scrapeUrl", str, where),
            health=_field(t, "health", str, where), last_error=_field(t, "lastError", str, where),
            last_scrape=_field(t, "lastScrape", str, where), labels=labels))
    return out


def _parse_alert(a: Any, where: str) -> Alert:
    labels = _str_map(a.get("labels") if isinstance(a, dict) else None, where + ".labels")
    value = a.get("value", "") if isinstance(a, dict) else ""
    return Alert(name=labels.get("alertname", ""), state=_field(a, "state", str, where), labels=labels,
                 annotations=_str_map(a.get("annotations"), where + ".annotations"),
                 value=value if isinstance(value, str) else str(value),
                 active_at=str(a.get("activeAt", "")))


def parse_alerts(data: Any) -> list[Alert]:
    return [_parse_alert(a, f"alerts.alerts[{i}]") for i, a in enumerate(_field(data, "alerts", list, "alerts"))]


def parse_rules(data: Any) -> list[Rule]:
    out = []
    for gi, g in enumerate(_field(data, "groups", list, "rules")):
        gname = _field(g, "name", str, f"rules.groups[{gi}]")
        for ri, r in enumerate(_field(g, "rules", list, f"rules.groups[{gi}]")):
            where = f"rules.groups[{gi}].rules[{ri}]"
            alerts = r.get("alerts") if isinstance(r, dict) else None
            out.append(Rule(
                group=gname, name=_field(r, "name", str, where), kind=_field(r, "type", str, where),
                query=_field(r, "query", str, where), health=_field(r, "health", str, where),
                last_error=str(r.get("lastError", "")), last_evaluation=str(r.get("lastEvaluation", "")),
                state=str(r.get("state", "")), labels=_str_map(r.get("labels"), where + ".labels"),
                alerts=tuple(_parse_alert(a, f"{where}.alerts[{i}]") for i, a in enumerate(alerts or ()))))
    return out


def parse_strings(data: Any, where: str) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
        raise HarnessError(f"Prometheus API {where}: expected a list of strings, got {data!r:.200}")
    return list(data)


# -- the client ----------------------------------------------------------------------------------------
class PrometheusClient:
    """``async with PrometheusClient("http://127.0.0.1:9090") as prom: await prom.query("up")``."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PrometheusClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _require(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise HarnessError("PrometheusClient is not open; use `async with PrometheusClient(url) as prom:`")
        return self._session

    async def ready(self) -> bool:
        """``/-/ready`` answers 200: storage is open and the config (rules included) is loaded."""
        try:
            async with self._require().get(self.base_url + "/-/ready", allow_redirects=False) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def status(self, path: str) -> int:
        """The HTTP status of a page (the UI's pages differ between builds: see ``server.ui_urls``)."""
        async with self._require().get(self.base_url + path, allow_redirects=False) as r:
            return r.status

    async def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        where = path.removeprefix("/api/v1/")
        try:
            async with self._require().get(self.base_url + path, params=params, allow_redirects=False) as r:
                body = await r.read()
                # 400/422 carry the error envelope (a bad query); anything else is not the API.
                if r.status not in (200, 400, 422, 503):
                    raise HarnessError(f"Prometheus API {where}: HTTP {r.status}: {body[:200]!r}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HarnessError(f"Prometheus API {where} at {self.base_url}: {exc!r}") from exc
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HarnessError(f"Prometheus API {where}: not JSON: {body[:200]!r}") from None
        return unwrap(doc, where)

    async def query(self, expr: str) -> list[Sample]:
        """An instant query at the current time."""
        return parse_query(await self._api("/api/v1/query", {"query": expr}))

    async def value(self, expr: str) -> float | None:
        """The one value of a query that returns at most one sample (None: no data)."""
        samples = await self.query(expr)
        if len(samples) > 1:
            raise HarnessError(f"query {expr!r} returned {len(samples)} series, expected at most one")
        return samples[0].value if samples and not math.isnan(samples[0].value) else None

    async def version(self) -> str:
        data = await self._api("/api/v1/status/buildinfo")
        return str(_field(data, "version", str, "status/buildinfo"))

    async def targets(self) -> list[Target]:
        return parse_targets(await self._api("/api/v1/targets", {"state": "active"}))

    async def rules(self) -> list[Rule]:
        return parse_rules(await self._api("/api/v1/rules"))

    async def alerts(self) -> list[Alert]:
        return parse_alerts(await self._api("/api/v1/alerts"))

    async def label_values(self, label: str) -> list[str]:
        """Every value of a label over the stored series; ``__name__`` gives the metric names."""
        return parse_strings(await self._api(f"/api/v1/label/{label}/values"), f"label/{label}/values")
