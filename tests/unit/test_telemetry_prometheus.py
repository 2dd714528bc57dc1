from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.telemetry.prometheus import LATENCY_BUCKETS_S, make_registry, render
from bot.telemetry.recorder import SLO_OPERATIONS, Telemetry


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_latency_histogram_buckets_counts_and_sum() -> None:
    t = Telemetry()
    for us in (4_000, 40_000, 150_000):
        t.record("trade_execution", us)
    t.rotate()
    t.record("trade_execution", 600_000)  # still in the open interval: must be exposed too
    s = samples(render(make_registry(t, process=False)).decode())

    def bucket(le: str) -> float:
        return s[("bot_operation_latency_seconds_bucket", (("le", le), ("op", "trade_execution")))]

    assert bucket("0.005") == 1
    assert bucket("0.05") == 2
    assert bucket("0.1") == 2
    assert bucket("0.2") == 3
    assert bucket("0.5") == 3
    assert bucket("1.0") == 4
    assert bucket("+Inf") == 4
    assert s[("bot_operation_latency_seconds_count", (("op", "trade_execution"),))] == 4
    assert abs(s[("bot_operation_latency_seconds_sum", (("op", "trade_execution"),))] - 0.794) < 1e-9
    for op in SLO_OPERATIONS:
        assert ("bot_operation_latency_seconds_count", (("op", op),)) in s
    les = [float(le) for (n, labels), _ in s.items() if n == "bot_operation_latency_seconds_bucket" for k, le in labels
           if k == "le" and le != "+Inf"]
    assert set(les) == set(LATENCY_BUCKETS_S)


def test_counters_gauges_and_process_metrics() -> None:
    t = Telemetry()
    t.error("timeout")
    t.error("timeout")
    t.error("node")
    t.count("ticks_handled", 5)
    t.count("drops{reason=market_data.dropped_oldest}", 2)
    t.set_gauge("loop_lag_ms", 3.0)
    t.gauge_provider("in_flight", lambda: 7)
    t.set_gauge("net_bytes_sent", 1234)
    t.set_gauge("queue_depth", 9)
    s = samples(render(make_registry(t)).decode())
    assert s[("bot_errors_total", (("kind", "timeout"),))] == 2
    assert s[("bot_errors_total", (("kind", "node"),))] == 1
    assert s[("bot_ticks_handled_total", ())] == 5
    assert s[("bot_drops_total", (("reason", "market_data.dropped_oldest"),))] == 2
    assert s[("bot_event_loop_lag_seconds", ())] == 0.003
    assert s[("bot_in_flight", ())] == 7
    assert s[("bot_net_bytes_sent_total", ())] == 1234
    assert s[("bot_queue_depth", ())] == 9
    assert s[("bot_process_resident_memory_bytes", ())] > 1_000_000


def test_dedicated_registry_leaves_global_one_alone() -> None:
    t = Telemetry()
    t.record("price_fetch", 10)
    make_registry(t)
    global_names = {m.name for m in REGISTRY.collect()}
    assert "bot_operation_latency_seconds" not in global_names
    # Two registries over two recorders do not collide (one process can host two bots in tests).
    make_registry(Telemetry())


async def test_engine_gauges_are_exported() -> None:
    from bot.engine.actors import Engine
    from bot.engine.mailbox import Message, Priority
    from bot.telemetry.observer import register_engine_gauges

    async def handler(pair: str, m: Message) -> None:
        pass

    eng = Engine(handler)
    eng.add_pair("A")
    eng.add_pair("B")
    eng.pause("A")
    for _ in range(3):
        eng.post("A", Message(Priority.MARKET_DATA, "tick"))
    t = Telemetry()
    register_engine_gauges(t, eng)
    g = t.gauges()
    assert (g["queue_depth"], g["handlers_running"], g["handlers_waiting"], g["pairs_failed"]) == (3, 0, 0, 0)
    s = samples(render(make_registry(t, process=False)).decode())
    assert s[("bot_queue_depth", ())] == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 60_000_000), min_size=1, max_size=200))
def test_bucket_counts_match_exact_counts_away_from_bounds(values: list[int]) -> None:
    """Bucket counts come from HdrHistogram indices; a value clearly below/above a bound (beyond the
    histogram's 0.1% resolution) must land exactly as an exact count would put it."""
    t = Telemetry()
    for v in values:
        t.record("price_fetch", v)
    s = samples(render(make_registry(t, process=False)).decode())
    for b in LATENCY_BUCKETS_S:
        le_us = b * 1e6
        got = s[("bot_operation_latency_seconds_bucket", (("le", repr(b)), ("op", "price_fetch")))]
        clearly_below = sum(1 for v in values if v <= le_us * 0.998)
        maybe = sum(1 for v in values if v <= le_us * 1.002)
        assert clearly_below <= got <= maybe
    assert s[("bot_operation_latency_seconds_count", (("op", "price_fetch"),))] == len(values)


async def test_batch_size_histogram_from_the_transport_without_the_url_path() -> None:
    import asyncio

    from bot.rpc.transport import HttpTransport
    from bot.telemetry.prometheus import endpoint_label
    from tests.unit.rpc_fakes import FakeNode

    node = FakeNode()
    await node.start()
    t = HttpTransport(node.url + "/?apikey=secret-key")  # a provider key in the URL must not become a label
    try:
        await asyncio.gather(*(t.call("eth_blockNumber", []) for _ in range(5)))  # one loop iteration: one batch
        await t.call("eth_blockNumber", [])  # a lone call
        reg = make_registry(Telemetry(), process=False, rpc=lambda: [(t.url, t.statistics())])
        text = render(reg).decode()
    finally:
        await t.aclose()
        await node.stop()
    assert "secret-key" not in text
    label = endpoint_label(t.url)
    assert label == f"127.0.0.1:{node.port}"
    fam = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, s.labels.get("le")): s.value for s in fam["bot_rpc_batch_size"].samples
               if s.labels.get("endpoint") == label}
    assert samples[("bot_rpc_batch_size_bucket", "1.0")] == 1  # the lone call
    assert samples[("bot_rpc_batch_size_bucket", "4.0")] == 1
    assert samples[("bot_rpc_batch_size_bucket", "8.0")] == 2  # the batch of 5
    assert samples[("bot_rpc_batch_size_count", None)] == 2 and samples[("bot_rpc_batch_size_sum", None)] == 6
    auto = [s for s in fam["bot_rpc_auto_batched_calls"].samples if s.name.endswith("_total")]
    assert auto[0].value >= 5
