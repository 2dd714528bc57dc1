"""The bot's configuration: ``bot.toml`` loaded with ``tomllib`` into frozen, validated dataclasses.

Every mistake is a ``ConfigError`` whose message names the field by its dotted path and says what
would be accepted, e.g. ``api.port: expected an integer 1-65535, got 'abc'``. Unknown keys are
errors too (with a "did you mean" hint), because a misspelt setting that is silently ignored is a
benchmark measured under the wrong conditions.

A complete file (every key optional except ``deployment`` and ``endpoints.http``)::

    deployment = "deployment.json"   # written by the harness's deploy step; relative to this file
    pairs = "all"                    # or ["T000/USD", "T001/USD"]
    loop = "uvloop"                  # uvloop | asyncio
    json = "orjson"                  # orjson | json

    [endpoints]
    http = ["http://127.0.0.1:8545"] # one or more; more than one enables failover
    ws = "ws://127.0.0.1:8545"       # optional: new heads / logs subscriptions
    # http_env = "NODE_HTTP_URLS"    # optional: the real URLs (whitespace-separated) in this variable;
    # ws_env = "NODE_WS_URL"         #   http and ws then hold their redacted forms (bot.redact)

    [accounts]                       # exactly one of source / env / key_file
    source = "anvil-dev:4"           # the first N anvil dev accounts (standard test mnemonic)
    # env = "BOT_PRIVATE_KEYS"       # comma-separated private keys in this environment variable
    # key_file = "keys.txt"          # one key per line

    [strategy]
    trade_size = 1000000000000000000 # integer amount of the token paid in (wei)
    deadband_bps = 30.0
    max_slippage_bps = 100.0

    [engine]
    mailbox_size = 256               # per pair
    dispatch_slots = 64              # pair handlers running at once
    max_in_flight = 128              # transactions submitted and not yet confirmed
    rpc_concurrency = 64             # RPC calls in flight
    rpc_batch = true                 # auto-batch calls made in the same loop iteration
    rpc_batch_window = 0.0           # seconds to wait for more calls (0: the same iteration only)
    rpc_batch_size = 100             # most calls in one JSON-RPC batch
    rpc_max_response_bytes = 16777216 # a larger HTTP response body is an invalid response, not read
    rpc_transport = "http"           # http | ws: calls over kept-alive HTTP, or one WebSocket per endpoint
    max_retry_after = 5.0            # seconds: the longest one 429's Retry-After parks an endpoint or delays a retry
    conflate_trades = false          # true: a busy pair keeps only its newest queued trade signal (rest counted)
    signing = "inline"               # inline | thread | process
    workers = 2                      # signing threads/processes
    gc_freeze = true                 # gc.freeze() after startup: startup's objects are never scanned again
    # gc_threshold = [700, 10, 10]   # gc.set_threshold(g0, g1, g2); absent: Python's own
    processes = 1                    # 1-16: N > 1 runs N bot processes, each with its own pairs and accounts

    [timeouts]                       # seconds
    connect = 2.0
    read = 10.0
    total = 15.0
    price_fetch = 2.0
    balance_check = 2.0
    submit = 5.0
    confirm = 30.0
    handler = 60.0
    shutdown = 10.0

    [api]
    host = "127.0.0.1"               # loopback only
    port = 8600
    token_env = "BOT_API_TOKEN"      # bearer token for the mutating endpoints

    [feed]
    url = "ws://127.0.0.1:9100/ticks" # optional market-data feed

    [telemetry]
    interval_s = 1.0
    keep = 600

    [debug]                          # deliberate misbehaviour, for proving the harness; off by default
    leak_bytes_per_trade = 0         # keep N bytes alive per confirmed trade (a planted leak, bot.debug)
    burn_us_per_trade = 0            # spend N µs of CPU per trade (a planted slowdown, for harness gate's proofs)
    delay_price_fetch_ms = 0.0       # wait N ms inside every price_fetch round trip (a planted latency)
    heap_trace_frames = 0            # > 0: tracemalloc with N frames: heap_bytes and growth sites (bot.heapwatch)

A sharded bot's parent (``engine.processes`` > 1, bot.shard) writes each child a config of its own with
a ``[shard]`` table (``index``, ``count``): that child trades only its share of the pairs and accounts.

Secrets never live in this file or in the dataclasses: only the *names* of environment variables
or key files. ``to_dict()`` is therefore safe to write into a results file. An endpoint URL with a
provider key in it goes the same way: ``endpoints.http_env`` / ``ws_env`` name the variables that
hold the real URLs, and ``http`` / ``ws`` list their redacted forms (``bot.redact.redact_url``),
which must match them, so the file still says which endpoint was used.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from bot.redact import redact_url

if TYPE_CHECKING:
    from bot.chain.accounts import Account

SigningMode = Literal["inline", "thread", "process"]
RpcTransportKind = Literal["http", "ws"]
LoopKind = Literal["uvloop", "asyncio"]
JsonKind = Literal["orjson", "json"]

MAX_DEV_ACCOUNTS = 1000
MAX_PROCESSES = 16  # engine.processes: beyond this the parent's merging costs more than a shard gains
# engine.rpc_max_response_bytes: the default and floor are bot.rpc.config's (not imported: that would load
# the whole network layer to read a TOML file); a cap above 1 GiB is no cap.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20
MIN_RESPONSE_BYTES = 1024
MAX_RESPONSE_BYTES = 2**30
# engine.max_retry_after: bot.rpc.config's default, for the same reason. A node's Retry-After is capped at it.
DEFAULT_MAX_RETRY_AFTER = 5.0
MAX_RETRY_AFTER_LIMIT = 3600.0


class ConfigError(ValueError):
    """A bad configuration value; the message names the field (dotted path) and the fix."""


@dataclass(frozen=True, slots=True)
class EndpointsConfig:
    http: tuple[str, ...] = ("http://127.0.0.1:8545",)
    ws: str | None = None
    http_env: str | None = None  # the real http URLs come from this variable; ``http`` is their redacted form
    ws_env: str | None = None

    def http_urls(self, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """The URLs to connect to: ``http``, or the ones in ``$http_env`` when it is named."""
        if self.http_env is None:
            return self.http
        urls = tuple(_env(self.http_env, "endpoints.http_env", environ).split())
        if len(urls) != len(self.http):
            raise ConfigError(f"endpoints.http_env: ${self.http_env} holds {len(urls)} URL(s) but endpoints.http "
                              f"lists {len(self.http)}; list one redacted form per URL")
        for i, (real, listed) in enumerate(zip(urls, self.http, strict=True)):
            _check_url(real, ("http", "https"), f"${self.http_env}[{i}]")
            _same_endpoint(real, listed, f"endpoints.http[{i}]", f"${self.http_env}[{i}]")
        return urls

    def ws_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The WebSocket URL to subscribe on: ``ws``, or the one in ``$ws_env`` when it is named."""
        if self.ws_env is None:
            return self.ws
        url = _env(self.ws_env, "endpoints.ws_env", environ).strip()
        _check_url(url, ("ws", "wss"), f"${self.ws_env}")
        if self.ws is not None:
            _same_endpoint(url, self.ws, "endpoints.ws", f"${self.ws_env}")
        return url


def _env(name: str, field_: str, environ: Mapping[str, str] | None) -> str:
    value = (os.environ if environ is None else environ).get(name, "")
    if not value.strip():
        raise ConfigError(f"{field_}: environment variable {name} is not set; export the node's URL(s) in it, "
                          f"or remove {field_.rsplit('.', 1)[-1]} and list the URLs in the file")
    return value


def _check_url(url: str, schemes: Sequence[str], where: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{where}: expected a {'/'.join(schemes)} URL like '{schemes[0]}://127.0.0.1:8545', "
                          f"got {redact_url(url)!r}")


def _same_endpoint(real: str, listed: str, field_: str, source: str) -> None:
    """The file must name the endpoint actually used: its URL is the redacted form of the real one."""
    want = redact_url(real)
    if redact_url(listed) != want:
        raise ConfigError(f"{field_}: {redact_url(listed)!r} is not the endpoint in {source}; write {want!r}")


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    source: str | None = "anvil-dev:1"  # "anvil-dev:N"
    env: str | None = None
    key_file: Path | None = None

    @property
    def dev_count(self) -> int | None:
        if self.source is None:
            return None
        return int(self.source.split(":", 1)[1])

    def load(self, environ: Mapping[str, str] | None = None) -> list[Account]:
        """Load the signing accounts (keys stay inside ``bot.chain.accounts.Account``)."""
        from bot.chain import accounts

        if self.source is not None:
            return accounts.from_mnemonic(accounts.ANVIL_MNEMONIC, self.dev_count or 1)
        if self.env is not None:
            return accounts.from_env(self.env, dict(os.environ if environ is None else environ))
        assert self.key_file is not None
        return accounts.from_file(self.key_file)


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    trade_size: int = 10**18
    deadband_bps: float = 30.0
    max_slippage_bps: float = 100.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    mailbox_size: int = 256
    dispatch_slots: int = 64
    max_in_flight: int = 128
    rpc_concurrency: int = 64
    rpc_batch: bool = True
    rpc_batch_window: float = 0.0
    rpc_batch_size: int = 100
    rpc_max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    rpc_transport: RpcTransportKind = "http"
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    conflate_trades: bool = False  # off: the SLO scenarios count every signal as a transaction
    signing: SigningMode = "inline"
    workers: int = 2
    gc_freeze: bool = True  # measured: docs/PERFORMANCE.md (GC pauses with and without)
    gc_threshold: tuple[int, int, int] | None = None  # None: Python's own (700, 10, 10)
    processes: int = 1  # > 1: a parent process runs that many shards behind one control API (bot.shard)


@dataclass(frozen=True, slots=True)
class TimeoutsConfig:
    connect: float = 2.0
    read: float = 10.0
    total: float = 15.0
    price_fetch: float = 2.0
    balance_check: float = 2.0
    submit: float = 5.0
    confirm: float = 30.0
    handler: float = 60.0
    shutdown: float = 10.0


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8600
    token_env: str = "BOT_API_TOKEN"

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The bearer token, or None when the variable is unset (mutating endpoints then refuse)."""
        value = (os.environ if environ is None else environ).get(self.token_env)
        return value if value else None


@dataclass(frozen=True, slots=True)
class FeedConfig:
    url: str | None = None


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    interval_s: float = 1.0
    keep: int = 600


# debug.leak_bytes_per_trade: up to 16 MiB per trade; more would exhaust a machine within seconds of
# trading, which proves nothing a smaller planted leak does not.
MAX_LEAK_BYTES_PER_TRADE = 16 * 2**20


@dataclass(frozen=True, slots=True)
class DebugConfig:
    leak_bytes_per_trade: int = 0  # > 0: a planted leak of this many bytes per confirmed trade (bot.debug)
    burn_us_per_trade: int = 0  # > 0: CPU spent per trade on purpose (bot.debug.burn_cpu), for gate proofs
    delay_price_fetch_ms: float = 0.0  # > 0: added inside each price_fetch round trip, for gate proofs
    heap_trace_frames: int = 0  # > 0: tracemalloc with this many frames (bot.heapwatch); costly, for soaks


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """Written by the sharded parent into each child's config (``[shard]``): this process is shard ``index`` of
    ``count`` and trades only its share of the selected pairs, with its share of the accounts (bot.shard.plan)."""

    index: int
    count: int


@dataclass(frozen=True, slots=True)
class BotConfig:
    deployment: Path
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    pairs: Literal["all"] | tuple[str, ...] = "all"
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    shard: ShardConfig | None = None
    loop: LoopKind = "uvloop"
    json: JsonKind = "orjson"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able settings (no secrets: only variable names and paths) for a report."""
        d = asdict(self)
        d["deployment"] = str(self.deployment)
        d["accounts"]["key_file"] = None if self.accounts.key_file is None else str(self.accounts.key_file)
        d["endpoints"]["http"] = list(self.endpoints.http)
        d["pairs"] = self.pairs if self.pairs == "all" else list(self.pairs)
        return d

    def to_toml(self) -> str:
        """A ``bot.toml`` that ``loads`` reads back to an equal config (absolute paths)."""
        d = self.to_dict()
        lines: list[str] = []
        for key in ("deployment", "pairs", "loop", "json"):
            lines.append(f"{key} = {_toml_value(d[key])}")
        for section in ("endpoints", "accounts", "strategy", "engine", "timeouts", "api", "feed", "telemetry",
                        "debug", "shard"):
            if d[section] is None:
                continue
            lines.append(f"\n[{section}]")
            for k, v in d[section].items():
                if v is not None:
                    lines.append(f"{k} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


# -- reading ------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Table:
    """Typed access to one TOML table; remembers which keys were read so leftovers are reported."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a table ([{path}]), got {_show(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def integer(self, key: str, default: int, lo: int, hi: int | None = None) -> int:
        v = self.raw(key)
        if v is None:
            return default
        rng = f"{lo}-{hi}" if hi is not None else f">= {lo}"
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise ConfigError(f"{self.name(key)}: expected an integer {rng}, got {_show(v)}")
        return v

    def number(self, key: str, default: float, *, lo: float, hi: float | None = None,
               lo_open: bool = False) -> float:
        v = self.raw(key)
        if v is None:
            return default
        want = f"a number {'>' if lo_open else '>='} {lo:g}" + (f" and < {hi:g}" if hi is not None else "")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{self.name(key)}: expected {want}, got {_show(v)}")
        if (v <= lo if lo_open else v < lo) or (hi is not None and v >= hi):
            raise ConfigError(f"{self.name(key)}: expected {want}, got {_show(v)}")
        return float(v)

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise ConfigError(f"{self.name(key)}: expected true or false, got {_show(v)}")
        return v

    def string(self, key: str, default: str | None) -> str | None:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{self.name(key)}: expected a non-empty string, got {_show(v)}")
        return v.strip()

    def choice(self, key: str, default: str, options: Sequence[str]) -> str:
        v = self.raw(key)
        if v is None:
            return default
        if v not in options:
            raise ConfigError(f"{self.name(key)}: expected one of {', '.join(map(repr, options))}, got {_show(v)}")
        return str(v)

    def table(self, key: str) -> _Table:
        v = self.raw(key)
        return _Table({} if v is None else v, self.name(key))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(self.seen), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(self.seen))}"
            raise ConfigError(f"{self.name(key)}: unknown key{hint}")


def _url(t: _Table, key: str, value: Any, schemes: Sequence[str], where: str | None = None) -> str:
    name = where or t.name(key)
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a {'/'.join(schemes)} URL string, got {_show(value)}")
    shown = _show(redact_url(value.strip()))  # an error message must not carry a provider key
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a {'/'.join(schemes)} URL, got {shown}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name}: expected a {'/'.join(schemes)} URL like "
                          f"'{schemes[0]}://127.0.0.1:8545', got {shown}")
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError(f"{name}: the port in {shown} is not a number 1-65535") from None
    return value.strip()


def _endpoints(t: _Table) -> EndpointsConfig:
    http = t.raw("http")
    if http is None:
        raise ConfigError(f"{t.name('http')}: required; list the node's JSON-RPC URLs, "
                          "e.g. http = [\"http://127.0.0.1:8545\"]")
    if isinstance(http, str):
        http = [http]
    if not isinstance(http, list) or not http:
        raise ConfigError(f"{t.name('http')}: expected a non-empty list of http(s) URLs, got {_show(http)}")
    urls = tuple(_url(t, "http", u, ("http", "https"), f"{t.name('http')}[{i}]") for i, u in enumerate(http))
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{t.name('http')}: lists the same URL twice; list each endpoint once")
    ws_raw = t.raw("ws")
    ws = None if ws_raw is None else _url(t, "ws", ws_raw, ("ws", "wss"))
    names: dict[str, str | None] = {}
    for key in ("http_env", "ws_env"):
        value = t.string(key, None)
        if value is not None and not _ENV_NAME.match(value):
            raise ConfigError(f"{t.name(key)}: expected an environment variable name like NODE_URLS, "
                              f"got {_show(value)}")
        names[key] = value
    t.finish()
    return EndpointsConfig(http=urls, ws=ws, http_env=names["http_env"], ws_env=names["ws_env"])


_DEV = re.compile(r"^anvil-dev:(\d+)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _accounts(t: _Table, base: Path) -> AccountsConfig:
    given = [k for k in ("source", "env", "key_file") if t.has(k)]
    for k in ("source", "env", "key_file"):
        t.raw(k)
    t.finish()
    if len(given) > 1:
        raise ConfigError(f"{t.path}: give exactly one of source, env, key_file (got {', '.join(given)})")
    if not given:
        return AccountsConfig()
    key = given[0]
    value = t.data[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{t.name(key)}: expected a non-empty string, got {_show(value)}")
    if key == "source":
        m = _DEV.match(value.strip())
        if not m or not 1 <= int(m.group(1)) <= MAX_DEV_ACCOUNTS:
            raise ConfigError(f"{t.name(key)}: expected 'anvil-dev:N' with N 1-{MAX_DEV_ACCOUNTS} "
                              f"(the first N anvil dev accounts), got {_show(value)}")
        return AccountsConfig(source=f"anvil-dev:{int(m.group(1))}")
    if key == "env":
        if not _ENV_NAME.match(value):
            raise ConfigError(f"{t.name(key)}: expected an environment variable name like BOT_PRIVATE_KEYS, "
                              f"got {_show(value)}")
        return AccountsConfig(source=None, env=value)
    return AccountsConfig(source=None, key_file=(base / value).resolve())


def _pairs(value: Any) -> Literal["all"] | tuple[str, ...]:
    if value is None or value == "all":
        return "all"
    if not isinstance(value, list) or not value:
        raise ConfigError(f"pairs: expected \"all\" or a non-empty list of pair ids like [\"T000/USD\"], "
                          f"got {_show(value)}")
    for i, p in enumerate(value):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"pairs[{i}]: expected a pair id string like \"T000/USD\", got {_show(p)}")
    if len(set(value)) != len(value):
        dup = next(p for p in value if value.count(p) > 1)
        raise ConfigError(f"pairs: {dup!r} is listed twice; list each pair once")
    return tuple(value)


def _strategy(t: _Table) -> StrategyConfig:
    d = StrategyConfig()
    size = t.raw("trade_size")
    if size is None:
        size = d.trade_size
    elif isinstance(size, str) and size.strip().isdigit():
        size = int(size.strip())  # TOML integers stop at 2**63-1; big amounts may come as strings
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigError(f"strategy.trade_size: expected a positive integer amount in wei "
                          f"(e.g. 1000000000000000000 for 1 token), got {_show(size)}")
    cfg = StrategyConfig(
        trade_size=size,
        deadband_bps=t.number("deadband_bps", d.deadband_bps, lo=0, hi=10_000),
        max_slippage_bps=t.number("max_slippage_bps", d.max_slippage_bps, lo=0, hi=10_000),
    )
    t.finish()
    return cfg


def _engine(t: _Table) -> EngineConfig:
    d = EngineConfig()
    cfg = EngineConfig(
        mailbox_size=t.integer("mailbox_size", d.mailbox_size, 1, 1_000_000),
        dispatch_slots=t.integer("dispatch_slots", d.dispatch_slots, 1, 100_000),
        max_in_flight=t.integer("max_in_flight", d.max_in_flight, 1, 1_000_000),
        rpc_concurrency=t.integer("rpc_concurrency", d.rpc_concurrency, 1, 100_000),
        rpc_batch=t.boolean("rpc_batch", d.rpc_batch),
        rpc_batch_window=t.number("rpc_batch_window", d.rpc_batch_window, lo=0, hi=1),
        rpc_batch_size=t.integer("rpc_batch_size", d.rpc_batch_size, 1, 10_000),
        rpc_max_response_bytes=t.integer("rpc_max_response_bytes", d.rpc_max_response_bytes, MIN_RESPONSE_BYTES,
                                         MAX_RESPONSE_BYTES),
        rpc_transport=cast(RpcTransportKind, t.choice("rpc_transport", d.rpc_transport, ("http", "ws"))),
        max_retry_after=_max_retry_after(t, d.max_retry_after),
        conflate_trades=t.boolean("conflate_trades", d.conflate_trades),
        signing=cast(SigningMode, t.choice("signing", d.signing, ("inline", "thread", "process"))),
        workers=t.integer("workers", d.workers, 1, 256),
        gc_freeze=t.boolean("gc_freeze", d.gc_freeze),
        gc_threshold=_gc_threshold(t),
        processes=check_processes(t.raw("processes"), t.name("processes"), d.processes),
    )
    t.finish()
    return cfg


def check_processes(value: Any, where: str, default: int = 1) -> int:
    """``engine.processes`` (or ``bot run --shards``): 1-``MAX_PROCESSES``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PROCESSES:
        raise ConfigError(f"{where}: expected an integer 1-{MAX_PROCESSES} (bot processes: more than 1 splits the "
                          f"pairs and the accounts across that many shards, each with at least one account of its "
                          f"own), got {_show(value)}")
    return value


def _shard(t: _Table, processes: int) -> ShardConfig:
    count = t.integer("count", 0, 2, MAX_PROCESSES)
    index = t.integer("index", -1, 0, max(0, count - 1))
    t.finish()
    if not t.has("count") or not t.has("index"):
        raise ConfigError(f"{t.path}: give both index and count (written by the sharded parent, bot.shard); "
                          "to shard a bot set engine.processes instead")
    if processes != 1:
        raise ConfigError(f"engine.processes: a shard ([{t.path}]) is one process; got {processes}, write 1")
    return ShardConfig(index=index, count=count)


# gc.set_threshold: generation 0 counts allocations minus deallocations, 1 and 2 count collections of the
# generation below. 0 would switch automatic collection off (reference cycles then pile up until exit).
GC_THRESHOLD_LIMITS = ((1, 10_000_000), (1, 100_000), (1, 100_000))


def _gc_threshold(t: _Table) -> tuple[int, int, int] | None:
    v = t.raw("gc_threshold")
    if v is None:
        return None
    want = ("a list of three integers [g0, g1, g2] with g0 1-10000000 and g1, g2 1-100000 "
            "(Python's default is [700, 10, 10]; remove the key to keep it)")
    if not isinstance(v, list) or len(v) != 3:
        raise ConfigError(f"{t.name('gc_threshold')}: expected {want}, got {_show(v)}")
    for i, (x, (lo, hi)) in enumerate(zip(v, GC_THRESHOLD_LIMITS, strict=True)):
        if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
            hint = " (0 would switch automatic collection off)" if x == 0 else ""
            raise ConfigError(f"{t.name('gc_threshold')}[{i}]: expected an integer {lo}-{hi}, got {_show(x)}{hint}; "
                              f"give {want}")
    return (v[0], v[1], v[2])


def _max_retry_after(t: _Table, default: float) -> float:
    v = t.raw("max_retry_after")
    if v is None:
        return default
    if (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
            or not 0 < v <= MAX_RETRY_AFTER_LIMIT):
        raise ConfigError(
            f"{t.name('max_retry_after')}: expected seconds > 0 and <= {MAX_RETRY_AFTER_LIMIT:g}, got {_show(v)}; "
            "it caps how long one HTTP 429's Retry-After may park an endpoint or delay a retry "
            f"(a node asking for longer is capped; default {DEFAULT_MAX_RETRY_AFTER:g})")
    return float(v)


def _timeouts(t: _Table) -> TimeoutsConfig:
    d = TimeoutsConfig()
    values = {k: t.number(k, getattr(d, k), lo=0, hi=3600, lo_open=True) for k in asdict(d)}
    t.finish()
    cfg = TimeoutsConfig(**values)
    if cfg.connect > cfg.total or cfg.read > cfg.total:
        raise ConfigError(f"timeouts.total: must be at least timeouts.connect ({cfg.connect}) and "
                          f"timeouts.read ({cfg.read}), got {cfg.total}; raise total or lower the phase")
    return cfg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api(t: _Table) -> ApiConfig:
    d = ApiConfig()
    host = t.string("host", d.host) or d.host
    if not _is_loopback(host):
        raise ConfigError(f"api.host: the control API binds to loopback only (127.0.0.1, ::1 or localhost), "
                          f"got {_show(host)}")
    port = t.integer("port", d.port, 1, 65535)
    token_env = t.string("token_env", d.token_env) or d.token_env
    if not _ENV_NAME.match(token_env):
        raise ConfigError(f"api.token_env: expected an environment variable name like BOT_API_TOKEN, "
                          f"got {_show(token_env)}")
    t.finish()
    return ApiConfig(host=host, port=port, token_env=token_env)


def _feed(t: _Table) -> FeedConfig:
    raw = t.raw("url")
    t.finish()
    return FeedConfig(url=None if raw is None else _url(t, "url", raw, ("ws", "wss")))


def _telemetry(t: _Table) -> TelemetryConfig:
    d = TelemetryConfig()
    cfg = TelemetryConfig(
        interval_s=t.number("interval_s", d.interval_s, lo=0.01, hi=3600),
        keep=t.integer("keep", d.keep, 1, 1_000_000),
    )
    t.finish()
    return cfg


# debug.burn_us_per_trade / delay_price_fetch_ms: a planted slowdown is a few percent of a trade's
# ~1 ms of CPU or of a ~1 ms read; a second per trade is already far past anything a proof needs.
MAX_BURN_US_PER_TRADE = 1_000_000
MAX_DELAY_PRICE_FETCH_MS = 1000.0


# debug.heap_trace_frames: tracemalloc keeps this many frames per live block; its cost grows with them.
MAX_HEAP_TRACE_FRAMES = 16


def _debug_plants(t: _Table) -> dict[str, Any]:
    burn = t.raw("burn_us_per_trade")
    if burn is not None and (isinstance(burn, bool) or not isinstance(burn, int)
                             or not 0 <= burn <= MAX_BURN_US_PER_TRADE):
        raise ConfigError(f"{t.name('burn_us_per_trade')}: expected an integer number of microseconds "
                          f"0-{MAX_BURN_US_PER_TRADE} (0: off; e.g. 150 spends 150 µs of CPU per trade, a planted "
                          f"slowdown for proving harness gate), got {_show(burn)}")
    delay = t.raw("delay_price_fetch_ms")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)
                              or not 0 <= delay <= MAX_DELAY_PRICE_FETCH_MS):
        raise ConfigError(f"{t.name('delay_price_fetch_ms')}: expected milliseconds 0-{MAX_DELAY_PRICE_FETCH_MS:g} "
                          f"(0: off; e.g. 1 adds 1 ms to every price_fetch round trip), got {_show(delay)}")
    return {"burn_us_per_trade": burn or 0, "delay_price_fetch_ms": float(delay or 0.0)}


def _debug(t: _Table) -> DebugConfig:
    plants = _debug_plants(t)
    plants["heap_trace_frames"] = t.integer("heap_trace_frames", 0, 0, MAX_HEAP_TRACE_FRAMES)
    v = t.raw("leak_bytes_per_trade")
    t.finish()
    if v is None:
        return DebugConfig(**plants)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_LEAK_BYTES_PER_TRADE:
        raise ConfigError(f"{t.name('leak_bytes_per_trade')}: expected an integer number of bytes "
                          f"0-{MAX_LEAK_BYTES_PER_TRADE} (0: off; e.g. 65536 keeps 64 KiB per confirmed trade, "
                          f"a planted leak for testing a leak detector), got {_show(v)}")
    return DebugConfig(leak_bytes_per_trade=v, **plants)


def parse(data: Mapping[str, Any], *, base_dir: Path | str = ".") -> BotConfig:
    """Validate an already-parsed TOML document. Relative paths resolve against ``base_dir``."""
    base = Path(base_dir)
    top = _Table(dict(data), "")
    dep = top.string("deployment", None)
    if dep is None:
        raise ConfigError("deployment: required; the path of the deployment.json the harness's deploy step wrote")
    cfg = BotConfig(
        deployment=(base / dep).resolve(),
        endpoints=_endpoints(top.table("endpoints")) if top.has("endpoints") else _endpoints_missing(),
        accounts=_accounts(top.table("accounts"), base),
        pairs=_pairs(top.raw("pairs")),
        strategy=_strategy(top.table("strategy")),
        engine=_engine(top.table("engine")),
        timeouts=_timeouts(top.table("timeouts")),
        api=_api(top.table("api")),
        feed=_feed(top.table("feed")),
        telemetry=_telemetry(top.table("telemetry")),
        debug=_debug(top.table("debug")),
        loop=cast(LoopKind, top.choice("loop", "uvloop", ("uvloop", "asyncio"))),
        json=cast(JsonKind, top.choice("json", "orjson", ("orjson", "json"))),
    )
    if top.has("shard"):
        cfg = replace(cfg, shard=_shard(top.table("shard"), cfg.engine.processes))
    top.finish()
    return cfg


def _endpoints_missing() -> EndpointsConfig:
    raise ConfigError("endpoints.http: required; add [endpoints] with http = [\"http://127.0.0.1:8545\"]")


def loads(text: str, *, base_dir: Path | str = ".") -> BotConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bot.toml is not valid TOML: {exc}") from None
    return parse(data, base_dir=base_dir)


def load(path: Path | str) -> BotConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}; pass --config PATH") from None
    try:
        return loads(text, base_dir=p.parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
