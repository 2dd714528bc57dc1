"""The bot's RPC client against a bare aiohttp + orjson client, interleaved on one anvil.

    python -m harness.perf.transport                  # ~1 min: 5 rounds, each client in turn
    python -m harness.perf.transport --rev 43f6c76    # also the transport of an earlier revision

Every round runs each client in a shuffled order on the same node: ``seq`` (sequential
``eth_getBalance``: median latency and CPU per call) and ``inflight`` (64 callers, calls/s). The
clients: ``bare`` (an aiohttp session posting orjson bodies: the floor the issue names), ``transport``
(``HttpTransport``, auto-batching on), ``unbatched`` (batching off), ``pool`` (``EndpointPool`` over the
transport: the bot's real path), ``ws`` (calls over the bot's ``WsSubscriber`` socket), ``ws-bare`` (a
bare aiohttp WebSocket with orjson), ``h2`` (httpx over HTTP/2 prior knowledge), and ``rev:<REV>``
(that revision's ``bot/rpc/transport.py``, loaded as a module beside today's). Ratios against ``bare``
are taken per round, then the median and range over rounds are reported, so a drift of the machine
moves both sides of each ratio alike.

    python -m harness.perf.transport --clients transport,ws,ws-bare,h2   # h2: pip install 'httpx[http2]'

"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bot.rpc import BatchPolicy, EndpointPool, HttpTransport, PoolLimits

ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
Call = Callable[[str, list[Any]], Awaitable[Any]]


class Bare:
    """The floor: one aiohttp session, an orjson body, the result read back. No typed errors, no stats."""

    def __init__(self, url: str, connections: int) -> None:
        self.url = url
        self._ids = 0
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))

    async def call(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        body = orjson.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        async with self._session.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                      allow_redirects=False) as r:
            return orjson.loads(await r.read())["result"]

    async def aclose(self) -> None:
        await self._session.close()


class BareWs:
    """The WebSocket floor: one aiohttp WebSocket, orjson text frames, answers matched by id."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://")
        self._ids = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._session = aiohttp.ClientSession()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await self._session.ws_connect(self.url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                d = orjson.loads(msg.data)
                fut = self._pending.pop(d["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(d.get("result"))

    async def call(self, method: str, params: list[Any]) -> Any:
        assert self._ws is not None
        self._ids += 1
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = fut
        await self._ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method,
                                              "params": params}).decode())
        return await fut

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=2)
        await self._session.close()


class H2:
    """httpx with HTTP/2 prior knowledge (h2c: anvil speaks it), one multiplexed connection."""

    def __init__(self, url: str) -> None:
        import httpx  # type: ignore[import-not-found,unused-ignore]  # optional: httpx[http2]

        self.url = url
        self._ids = 0
        self._client = httpx.AsyncClient(http1=False, http2=True)

    async def call(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        body = orjson.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        r = await self._client.post(self.url, content=body, headers={"Content-Type": "application/json"})
        return orjson.loads(r.content)["result"]

    async def aclose(self) -> None:
        await self._client.aclose()


def _transport_at(rev: str) -> type[Any]:
    """``HttpTransport`` as it was at ``rev`` (its imports resolve to today's codec and config)."""
    src = subprocess.run(["git", "show", f"{rev}:bot/rpc/transport.py"], capture_output=True, text=True,
                         check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"transport_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"bot.rpc._transport_{rev}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    cls: type[Any] = mod.HttpTransport
    return cls


@dataclass
class Round:
    client: str
    seq_median_us: float
    seq_cpu_us: float
    inflight_per_s: float


async def _measure(call: Call, seq_n: int, inflight_n: int, workers: int) -> tuple[float, float, float]:
    for _ in range(50):  # warm the connection pool and the interpreter
        await call("eth_getBalance", [ADDRESS, "latest"])
    lat = []
    cpu0 = time.process_time()
    for _ in range(seq_n):
        t0 = time.perf_counter_ns()
        await call("eth_getBalance", [ADDRESS, "latest"])
        lat.append((time.perf_counter_ns() - t0) / 1000)
    cpu_us = (time.process_time() - cpu0) / seq_n * 1e6
    left = inflight_n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call("eth_getBalance", [ADDRESS, "latest"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    rate = inflight_n / (time.perf_counter() - started)
    return statistics.median(lat), cpu_us, rate


async def _client(name: str, url: str, workers: int,
                  old: type[Any] | None) -> tuple[Call, Callable[[], Awaitable[None]]]:
    limits = PoolLimits(max_connections=workers)
    if name == "bare":
        b = Bare(url, workers)
        return b.call, b.aclose
    if name == "transport":
        t = HttpTransport(url, limits=limits)
        return t.call, t.aclose
    if name == "unbatched":
        t = HttpTransport(url, limits=limits, batching=BatchPolicy(enabled=False))
        return t.call, t.aclose
    if name == "pool":
        pool = EndpointPool([HttpTransport(url, limits=limits)])
        return pool.call, pool.aclose
    if name == "ws-bare":
        w = BareWs(url)
        await w.start()
        return w.call, w.aclose
    if name == "ws":
        from bot.rpc.ws import WsSubscriber

        sub = WsSubscriber(url.replace("http://", "ws://"))
        await sub.start()  # returns once connected
        return sub.request, sub.aclose
    if name == "h2":
        h = H2(url)
        return h.call, h.aclose
    assert old is not None
    o = old(url, limits=limits)
    return o.call, o.aclose


CLIENTS = ("transport", "unbatched", "pool", "ws", "ws-bare", "h2")


async def run(url: str, *, rounds: int, seq_n: int, inflight_n: int, workers: int, rev: str | None,
              seed: int, clients: tuple[str, ...] = CLIENTS[:3]) -> dict[str, Any]:
    names = ["bare", *clients] + ([f"rev:{rev}"] if rev else [])
    old = _transport_at(rev) if rev else None
    rng = random.Random(seed)
    out: list[Round] = []
    for r in range(rounds):
        order = names[:]
        rng.shuffle(order)
        for name in order:
            call, close = await _client(name, url, workers, old)
            try:
                med, cpu, rate = await _measure(call, seq_n, inflight_n, workers)
            finally:
                await close()
            out.append(Round(name, med, cpu, rate))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return {"rounds": [asdict(x) for x in out], "summary": summarize(out, names)}


def _mid_range(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def summarize(rounds: list[Round], names: list[str]) -> dict[str, Any]:
    by = {n: [r for r in rounds if r.client == n] for n in names}
    bare = by["bare"]
    summary: dict[str, Any] = {}
    for n in names:
        rs = by[n]
        summary[n] = {
            "seq_median_us": _mid_range([r.seq_median_us for r in rs]),
            "seq_cpu_us": _mid_range([r.seq_cpu_us for r in rs]),
            "inflight_per_s": _mid_range([r.inflight_per_s for r in rs]),
            # Per round: this client against the bare client measured in the same round.
            "seq_vs_bare": _mid_range([r.seq_median_us / b.seq_median_us for r, b in zip(rs, bare, strict=True)]),
            "inflight_vs_bare": _mid_range([r.inflight_per_s / b.inflight_per_s
                                            for r, b in zip(rs, bare, strict=True)]),
        }
    return summary


def _table(summary: dict[str, Any]) -> str:
    lines = [f"{'client':<16}{'seq median':>12}{'CPU/call':>10}{'vs bare':>9}{'64 in flight':>15}"
             f"{'vs bare [range]':>20}"]
    for n, s in summary.items():
        sv, iv = s["seq_vs_bare"], s["inflight_vs_bare"]
        lines.append(f"{n:<16}{s['seq_median_us']['median']:>10.0f}us{s['seq_cpu_us']['median']:>8.0f}us"
                     f"{sv['median']:>8.2f}x{s['inflight_per_s']['median']:>13,.0f}/s"
                     f"{iv['median']:>8.0%} [{iv['min']:.0%}-{iv['max']:.0%}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.perf.transport", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--seq", type=int, default=2000, help="sequential calls per round and client (default 2000)")
    ap.add_argument("--inflight", type=int, default=20000, help="calls at 64 in flight per round (default 20000)")
    ap.add_argument("--workers", type=int, default=64, help="callers in flight (default 64)")
    ap.add_argument("--rev", help="also measure bot/rpc/transport.py at this git revision")
    ap.add_argument("--clients", default="transport,unbatched,pool",
                    help=f"clients beside bare, comma-separated, from {','.join(CLIENTS)} (h2 needs httpx[http2])")
    ap.add_argument("--out", type=Path, default=Path("reports/perf"), help="folder for the JSON (reports/perf)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    clients = tuple(c for c in args.clients.split(",") if c)
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        ap.error(f"--clients: unknown {', '.join(unknown)}; choose from {', '.join(CLIENTS)}")
    import uvloop

    from harness.node.anvil import Anvil, AnvilOptions
    from harness.probes.calibration import cpu_reference
    from harness.run.conditions import machine

    async def go() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            async with Anvil(Path(tmp), AnvilOptions(quiet=True)) as node:
                return await run(node.url, rounds=args.rounds, seq_n=args.seq, inflight_n=args.inflight,
                                 workers=args.workers, rev=args.rev, seed=args.seed, clients=clients)

    cpu, cpu_spread = cpu_reference(5)
    result = uvloop.run(go())
    result["conditions"] = {"machine": machine(), "cpu_ref_per_s": cpu, "cpu_ref_spread": cpu_spread,
                            "loop": "uvloop", "node": "anvil automine", "rounds": args.rounds, "seq": args.seq,
                            "inflight": args.inflight, "workers": args.workers, "rev": args.rev}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"transport-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(_table(result["summary"]))
    print(f"CPU reference {cpu:,.0f} it/s (spread {cpu_spread:.1%}); written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
