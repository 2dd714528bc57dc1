"""The bot's HTTP control API (aiohttp), bound to loopback only.

Read-only endpoints (no token):

- ``GET /health``: 200 ``{"status": "ok", ...}`` or 503 ``{"status": "unhealthy", "reasons": [...]}``.
- ``GET /metrics``: Prometheus text exposition.
- ``GET /status``: pairs, in-flight, nonces, queue and limiter statistics: whatever the injected
  status provider returns (the API knows nothing of the engine's internals). URLs in it (and in
  ``/health``) are redacted (``bot.redact``): these views need no token.
- ``GET /stats?since=SEQ``: the telemetry payload of docs/DESIGN.md (closed intervals with
  ``seq > SEQ``).
- ``GET /debug/heap``: the heap watch's levels; ``GET /debug/heap/growth?top=N`` (token: a snapshot stalls
  the loop): the allocation sites whose live bytes grew most since the baseline (``POST /debug/heap/baseline``,
  token, sets it); 409 when
  tracing is off (``debug.heap_trace_frames``) or no baseline was taken (``bot.heapwatch``).

Mutating endpoints need ``Authorization: Bearer <token>`` (401 without it, 403 with a wrong one,
compared in constant time; 403 for everyone when no token is configured):

- ``POST /pairs/{id}/pause`` and ``POST /pairs/{id}/resume`` (pair ids contain ``/``, e.g.
  ``/pairs/T000/USD/pause``; a percent-encoded ``T000%2FUSD`` works too). 404 for an unknown pair.
- ``POST /orders`` with a JSON body validated by ``parse_order`` (400 naming the field on bad
  input); 202 with the submitter's answer.
- ``GET /ledger``: every transaction record the bot holds and its per-account tallies
  (``bot.chain.ledger_view``: the document the harness reconciles against the chain); ``?records=0``
  leaves the records out. Behind the token: it lists every hash and nonce the bot used.
- ``POST /ledger/drain?within=S``: waits up to S seconds (0 < S <= ``MAX_DRAIN_S``) until every
  intent is terminal; ``{"drained": bool, "in_flight": n, "waited_s": s}``. It stops nothing: an
  intent opened meanwhile is waited for too.
- ``POST /tasks/{name}/kill``: cancels the running incarnation of a supervised background task
  (``Supervisor.kill``: counted as a crash, restarted with backoff; chaos testing). 404 for a name
  the supervisor does not know, 409 while the task is not running (waiting for its restart).

Everything the API does is through ``ApiHooks`` callables, so it is tested without a bot.
``start_api(bot)`` builds those hooks from a running bot by duck typing (see ``ControlledBot``).
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from aiohttp import web

from bot.redact import redact_text

if TYPE_CHECKING:
    from bot.config import BotConfig
    from bot.engine.actors import Engine
    from bot.telemetry.recorder import Telemetry

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024
MAX_CLIENT_ID = 64
MAX_DRAIN_S = 120.0  # the sender's own bound on tracking one transaction (max_pending_wait)


class OrderError(ValueError):
    """An invalid order request; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    pair: str
    side: Literal["buy", "sell"]
    amount: int  # wei of the token paid in
    max_slippage_bps: float | None = None
    client_id: str | None = None


_ORDER_FIELDS = ("pair", "side", "amount", "max_slippage_bps", "client_id")


def parse_order(body: Any) -> OrderRequest:
    """Validate a decoded JSON order body (pure)."""
    if not isinstance(body, dict):
        raise OrderError("body: expected a JSON object like {\"pair\": \"T000/USD\", \"side\": \"buy\", "
                         "\"amount\": \"1000000000000000000\"}")
    unknown = sorted(set(body) - set(_ORDER_FIELDS))
    if unknown:
        raise OrderError(f"{unknown[0]}: unknown field; allowed fields are {', '.join(_ORDER_FIELDS)}")
    pair = body.get("pair")
    if not isinstance(pair, str) or not pair.strip():
        raise OrderError("pair: required; a pair id string like \"T000/USD\"")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise OrderError(f"side: expected \"buy\" or \"sell\", got {side!r}"[:200])
    amount = body.get("amount")
    if isinstance(amount, str) and amount.isascii() and amount.isdigit() and len(amount) <= 78:
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount >= 2**256:
        raise OrderError("amount: expected a positive integer amount in wei (a JSON integer or a string of "
                         "digits, below 2**256)")
    slip = body.get("max_slippage_bps")
    if slip is not None and (
        isinstance(slip, bool) or not isinstance(slip, int | float) or not 0 <= slip < 10_000
    ):
        raise OrderError("max_slippage_bps: expected a number >= 0 and < 10000 (basis points)")
    client_id = body.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID):
        raise OrderError(f"client_id: expected a string of 1-{MAX_CLIENT_ID} characters")
    return OrderRequest(
        pair=pair.strip(),
        side=side,
        amount=amount,
        max_slippage_bps=None if slip is None else float(slip),
        client_id=client_id,
    )


PairAction = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class ApiHooks:
    """What the API calls. Raise ``LookupError`` from a pair action or the submitter for an unknown pair."""

    health: Callable[[], tuple[bool, Mapping[str, Any]]]
    status: Callable[[], Mapping[str, Any]]
    stats: Callable[[int | None], Mapping[str, Any]]
    metrics: Callable[[], bytes]
    pause: PairAction | None = None
    resume: PairAction | None = None
    submit_order: Callable[[OrderRequest], Awaitable[Mapping[str, Any]]] | None = None
    ledger: Callable[[bool], Mapping[str, Any]] | None = None  # records included?
    drain: Callable[[float], Awaitable[Mapping[str, Any]]] | None = None  # seconds at most
    kill_task: Callable[[str], bool] | None = None  # False: not running now; LookupError: unknown task
    heap: Any = None  # a bot.heapwatch.HeapWatch: GET /debug/heap, POST /debug/heap/baseline, GET .../growth


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None, *,
          redact: bool = False) -> web.Response:
    # OPT_NON_STR_KEYS: status maps may be keyed by ints (e.g. nonces by account index).
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
    if redact and b"://" in body:
        # The unauthenticated views carry components' statistics and error messages, any of which
        # may quote an endpoint URL; redacting inside a JSON string never breaks the document.
        body = redact_text(body.decode()).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status, headers)


HOOKS_KEY = web.AppKey("hooks", ApiHooks)
TOKEN_KEY = web.AppKey("token", bytes)  # empty = mutating endpoints disabled


def _authorize(request: web.Request) -> web.Response | None:
    token = request.app[TOKEN_KEY]
    if not token:
        return _error(403, "control endpoints are disabled: start the bot with the environment variable named "
                           "by api.token_env set to a token")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _error(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                      {"WWW-Authenticate": 'Bearer realm="bot"'})
    if not hmac.compare_digest(given.strip().encode(), token):
        return _error(403, "wrong bearer token")
    return None


async def _health(request: web.Request) -> web.Response:
    try:
        ok, details = request.app[HOOKS_KEY].health()
    except Exception as exc:  # a broken health check is itself unhealthy, never a 500
        log.exception("health provider failed")
        return _json({"status": "unhealthy", "reasons": [f"health check failed: {type(exc).__name__}"]}, 503)
    return _json({"status": "ok" if ok else "unhealthy", **details}, 200 if ok else 503, redact=True)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[HOOKS_KEY].metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[HOOKS_KEY].status(), redact=True)


def parse_since(request: web.Request) -> int | web.Response | None:
    """``/stats``'s ``since`` query: the sequence number, None when absent, or the 400 to answer."""
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return _error(400, f"since: expected an integer interval sequence number, got {raw[:40]!r}")


async def _stats(request: web.Request) -> web.Response:
    since = parse_since(request)
    if isinstance(since, web.Response):
        return since
    return _json(request.app[HOOKS_KEY].stats(since))


async def _pair_action(request: web.Request, which: Literal["pause", "resume"]) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    action = getattr(request.app[HOOKS_KEY], which)
    if action is None:
        return _error(501, f"{which} is not available in this bot")
    pair = request.match_info["id"]
    try:
        result = action(pair)
        if inspect.isawaitable(result):
            await result
    except LookupError:
        return _error(404, f"unknown pair {pair!r}; GET /status lists the pairs")
    return _json({"pair": pair, "state": "paused" if which == "pause" else "running"})


async def _pause(request: web.Request) -> web.Response:
    return await _pair_action(request, "pause")


async def _resume(request: web.Request) -> web.Response:
    return await _pair_action(request, "resume")


async def _orders(request: web.Request) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    submit = request.app[HOOKS_KEY].submit_order
    if submit is None:
        return _error(501, "order submission is not available in this bot")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "body: not valid JSON; send a JSON object with Content-Type application/json")
    try:
        order = parse_order(body)
    except OrderError as exc:
        return _error(400, str(exc))
    try:
        answer = await submit(order)
    except LookupError:
        return _error(404, f"pair: unknown pair {order.pair!r}; GET /status lists the pairs")
    except OrderError as exc:
        return _error(400, str(exc))
    return _json(dict(answer), 202)


async def _ledger(request: web.Request) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    dump = request.app[HOOKS_KEY].ledger
    if dump is None:
        return _error(501, "the ledger is not available in this bot")
    raw = request.query.get("records", "1")
    if raw not in ("0", "1"):
        return _error(400, f"records: expected 0 or 1, got {raw[:40]!r}")
    return _json(dump(raw == "1"))


async def _drain(request: web.Request) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    drain = request.app[HOOKS_KEY].drain
    if drain is None:
        return _error(501, "draining is not available in this bot")
    raw = request.query.get("within", "")
    try:
        within = float(raw)
    except ValueError:
        within = -1.0
    if not 0 < within <= MAX_DRAIN_S:
        return _error(400, f"within: expected seconds > 0 and <= {MAX_DRAIN_S:g}, got {raw[:40]!r}")
    return _json(dict(await drain(within)))


async def _kill_task(request: web.Request) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    kill = request.app[HOOKS_KEY].kill_task
    if kill is None:
        return _error(501, "task control is not available in this bot")
    name = request.match_info["name"]
    try:
        killed = kill(name)
    except LookupError as exc:
        return _error(404, f"unknown task {name!r}; {exc.args[0] if exc.args else 'GET /status lists the tasks'}")
    if not killed:
        return _error(409, f"task {name!r} is not running now (waiting for its restart, or given up on)")
    return _json({"task": name, "killed": True})


async def _heap(request: web.Request) -> web.Response:
    """``GET /debug/heap``: the heap's levels; ``POST /debug/heap/baseline`` (token): growth is measured from
    now; ``GET /debug/heap/growth?top=N``: the sites that grew most since (bot.heapwatch). 409: tracing is
    off or there is no baseline yet (the message says which)."""
    from bot.heapwatch import DEFAULT_TOP, HeapWatchError

    watch = request.app[HOOKS_KEY].heap
    if watch is None:
        return _error(501, "the heap watch is not available in this bot")
    what = request.match_info.get("what", "")
    try:
        if request.method == "POST":
            denied = _authorize(request)
            return denied if denied is not None else _json(await watch.baseline())
        if what == "growth":
            # Behind the token like the baseline: a snapshot stalls the loop for up to a second under memray,
            # so an unauthenticated poller must not be able to take one.
            denied = _authorize(request)
            if denied is not None:
                return denied
            raw = request.query.get("top", str(DEFAULT_TOP))
            if not raw.isdigit() or not 0 < int(raw) <= 500:
                return _error(400, f"top: expected an integer 1-500, got {raw[:20]!r}")
            return _json((await watch.growth(int(raw))).to_json())
    except HeapWatchError as exc:
        return _error(409, str(exc))
    return _json(watch.statistics())


def create_app(hooks: ApiHooks, *, token: str | None) -> web.Application:
    """The control API. ``token`` None or empty disables the mutating endpoints (403)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[HOOKS_KEY] = hooks
    app[TOKEN_KEY] = (token or "").encode()
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/status", _status)
    app.router.add_get("/stats", _stats)
    # {id:.+} because pair ids contain a slash ("T000/USD").
    app.router.add_post("/pairs/{id:.+}/pause", _pause)
    app.router.add_post("/pairs/{id:.+}/resume", _resume)
    app.router.add_post("/orders", _orders)
    app.router.add_get("/ledger", _ledger)
    app.router.add_post("/ledger/drain", _drain)
    app.router.add_post("/tasks/{name}/kill", _kill_task)
    app.router.add_get("/debug/heap", _heap)
    app.router.add_get("/debug/heap/{what:growth}", _heap)
    app.router.add_post("/debug/heap/{what:baseline}", _heap)
    return app


def _require_loopback(host: str) -> None:
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"api.host: the control API binds to loopback only (127.0.0.1, ::1, localhost), got {host!r}")


class ApiServer:
    """A running control API. ``port`` is the bound port (useful with ``port=0``)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<ApiServer {self.url}>"

    async def aclose(self) -> None:
        await self._runner.cleanup()

    cleanup = aclose  # the name aiohttp's AppRunner uses, so either handle stops the server


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 8600) -> ApiServer:
    """Start serving ``app`` on a loopback address. Access logging is off: it costs more than the handlers."""
    _require_loopback(host)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:  # the real port when port=0 asked the OS to choose
        bound = int(addr[1])
        break
    return ApiServer(runner, host, bound)


class ControlledBot(Protocol):
    """What ``start_api`` needs of a bot. Optional extras, found by name if present:
    ``status() -> Mapping`` (replaces the default status body),
    ``submit_order(OrderRequest) -> Awaitable[Mapping]`` (enables ``POST /orders``),
    ``ledger_dump(records: bool) -> Mapping`` and ``drain_ledger(seconds) -> Awaitable[Mapping]``
    (enable ``GET /ledger`` and ``POST /ledger/drain``) and
    ``supervisor.health() -> (ok, reasons)`` (its background tasks, part of ``/health``;
    with ``supervisor.kill`` and ``statistics``, ``POST /tasks/{name}/kill``)."""

    config: BotConfig
    telemetry: Telemetry
    engine: Engine | None


# Components of a bot whose statistics() GET /status reports, when the bot has them.
STATUS_COMPONENTS = (
    "engine", "trader", "sender", "signer", "nonces", "rpc", "receipts", "fees", "ws", "feed", "watchdog",
    "supervisor",
)


def default_status(bot: ControlledBot) -> dict[str, Any]:
    """Pairs with their actor state, queue depth and errors, plus every component's ``statistics()``."""
    out: dict[str, Any] = {"gauges": bot.telemetry.gauges(), "telemetry": bot.telemetry.statistics()}
    engine = bot.engine
    if engine is not None:
        out["pairs"] = {
            p: {"state": a.state.value, "queued": len(a.mailbox), "handled": a.handled_total, "errors": a.errors,
                "restarts": a.restarts}
            for p in engine.pairs
            for a in (engine.actor(p),)
        }
    for name in STATUS_COMPONENTS:
        component = getattr(bot, name, None)
        stats = getattr(component, "statistics", None)
        if callable(stats):
            try:
                out[name] = stats()
            except Exception as exc:  # one broken component must not hide the others
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def hooks_for(bot: ControlledBot) -> ApiHooks:
    from bot.rpc.transport import TransportStatistics
    from bot.telemetry.prometheus import make_registry, render

    def rpc_statistics() -> list[tuple[str, TransportStatistics]]:
        pool = getattr(bot, "rpc", None)
        stats = getattr(pool, "statistics", None)
        if not callable(stats):
            return []
        return [(e.transport.url, e.transport) for e in stats().endpoints if e.transport is not None]

    registry = make_registry(bot.telemetry, rpc=rpc_statistics)

    def health() -> tuple[bool, Mapping[str, Any]]:
        if bot.engine is None:
            return False, {"reasons": ["engine not started"]}
        ok, reasons = bot.engine.health()
        # A dead background task (receipts, heads, feed, WebSocket) stops the bot as surely as a dead actor.
        supervisor_health = getattr(getattr(bot, "supervisor", None), "health", None)
        if callable(supervisor_health):
            tasks_ok, task_reasons = supervisor_health()
            ok, reasons = ok and tasks_ok, [*reasons, *task_reasons]
        return ok, ({"pairs": len(bot.engine.pairs)} if ok else {"reasons": reasons})

    def engine_action(which: str) -> PairAction:
        def act(pair: str) -> None:
            if bot.engine is None:
                raise LookupError(pair)
            getattr(bot.engine, which)(pair)  # UnknownPair is a LookupError -> 404
        return act

    supervisor: Any = getattr(bot, "supervisor", None)
    kill_task = None
    if callable(getattr(supervisor, "kill", None)) and callable(getattr(supervisor, "statistics", None)):
        def kill_task(name: str) -> bool:
            known = sorted(t.name for t in supervisor.statistics().tasks)
            if name not in known:
                raise LookupError(f"supervised tasks: {', '.join(known) or 'none'}")
            return bool(supervisor.kill(name))

    custom_status = getattr(bot, "status", None)
    submit = getattr(bot, "submit_order", None)
    ledger = getattr(bot, "ledger_dump", None)
    drain = getattr(bot, "drain_ledger", None)
    return ApiHooks(
        health=health,
        status=custom_status if callable(custom_status) else (lambda: default_status(bot)),
        stats=bot.telemetry.payload,
        metrics=lambda: render(registry),
        pause=engine_action("pause"),
        resume=engine_action("resume"),
        submit_order=submit if callable(submit) else None,
        ledger=ledger if callable(ledger) else None,
        drain=drain if callable(drain) else None,
        kill_task=kill_task,
        heap=getattr(bot, "heapwatch", None),
    )


async def start_api(bot: ControlledBot, environ: Mapping[str, str] | None = None) -> ApiServer:
    """Serve the control API for ``bot`` on ``bot.config.api`` (token from the variable it names)."""
    api = bot.config.api
    return await serve(create_app(hooks_for(bot), token=api.token(environ)), api.host, api.port)
