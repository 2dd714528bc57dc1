"""FaultPlan/FaultDecider: exact text round trip, validation, seeded draws at the planned rates, outage
windows, and plans combined on top of a network profile."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.node.faultplan import FAULT_KINDS, FaultDecider, FaultPlan

rates = st.floats(0, 0.09, allow_nan=False)
seconds = st.floats(0, 1e5, allow_nan=False)


@st.composite
def windows(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    edges = sorted(set(draw(st.lists(seconds, max_size=8))))
    pairs = list(zip(edges[::2], edges[1::2], strict=False))
    return tuple(pairs)


@st.composite
def periodic(draw: st.DrawFn) -> tuple[float, float] | None:
    if draw(st.booleans()):
        return None
    period = draw(st.floats(0.01, 1e4, allow_nan=False))
    length = draw(st.floats(0.001, period, allow_nan=False, exclude_max=True))
    return (period, length)


plans = st.builds(
    FaultPlan,
    latency_ms=st.floats(0, 1000, allow_nan=False),
    jitter_ms=st.floats(0, 100, allow_nan=False),
    rpc_error_rate=rates,
    http_5xx_rate=rates,
    rate_limit_rate=rates,
    retry_after_s=st.floats(0, 60, allow_nan=False),
    drop_rate=rates,
    garbage_rate=rates,
    loss_rate=rates,
    slow_rate=rates,
    slow_ms=st.floats(0, 10_000, allow_nan=False),
    truncate_rate=rates,
    oversize_rate=rates,
    oversize_bytes=st.integers(1, 1 << 30),
    shape_rate=rates,
    ws_garbage_rate=st.floats(0, 1, allow_nan=False),
    outages=windows(),
    outage_every=periodic(),
    ws_drop_after=st.none() | st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
)


@given(plans)
def test_text_form_round_trips(plan: FaultPlan) -> None:
    assert FaultPlan.parse(str(plan)) == plan


def test_parse_units_and_percentages() -> None:
    plan = FaultPlan.parse("latency=0.5s, jitter=200us, error=1%, 429=0.02, retry_after=500ms, ws_drop_after=3, seed=9")
    assert plan == FaultPlan(
        latency_ms=500.0, jitter_ms=0.2, rpc_error_rate=0.01, rate_limit_rate=0.02, retry_after_s=0.5,
        ws_drop_after=3, seed=9,
    )  # fmt: skip
    assert FaultPlan.parse("").is_clean
    assert not plan.is_clean


def test_the_new_faults_read_as_documented() -> None:
    text = ("loss=0.01,outage=5s-8s;20s-22s,slow=0.01:200ms,truncate=0.01,oversize=0.001:20MB,shape=0.01,"
            "wsgarbage=0.01,outage_every=60s:2s")
    plan = FaultPlan.parse(text)
    assert plan == FaultPlan(
        loss_rate=0.01, outages=((5.0, 8.0), (20.0, 22.0)), slow_rate=0.01, slow_ms=200.0, truncate_rate=0.01,
        oversize_rate=0.001, oversize_bytes=20_000_000, shape_rate=0.01, ws_garbage_rate=0.01,
        outage_every=(60.0, 2.0),
    )  # fmt: skip
    assert FaultPlan.parse("slow=0.1:0.5s,oversize=1%:1MiB,outage=1500ms-2s") == FaultPlan(
        slow_rate=0.1, slow_ms=500.0, oversize_rate=0.01, oversize_bytes=2**20, outages=((1.5, 2.0),))
    assert FaultPlan.parse("slow=0.2").slow_ms == 200.0  # the duration is optional
    assert str(FaultPlan(oversize_rate=0.5, oversize_bytes=1500)) == "oversize=0.5:1500B,seed=0"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("latency", "key=value"),
        ("speed=3", "known keys"),
        ("error=lots", "error='lots'.*e.g. error=0.01"),
        ("error=1.5", r"\[0, 1\]"),
        ("error=0.6,drop=0.6", "add up to 1.2"),
        ("loss=0.6,shape=0.6", "add up to 1.2"),
        ("latency=-1ms", ">= 0"),
        ("ws_drop_after=0", "ws_drop_after"),
        ("slow=0.1:fast", "slow=.*rate:duration"),
        ("oversize=0.1:huge", "oversize=.*e.g. oversize=0.001:20MB"),
        ("oversize=0.1:0B", "oversize size must be"),
        ("oversize=0.1:2GB", "1GiB"),
        ("loss=0.1:5", "loss=.*e.g. loss=0.01"),
        ("outage=8s-5s", "outage window 8s-5s must start >= 0 and end after"),
        ("outage=5s", "outage=.*e.g. outage=5s-8s"),
        ("outage=20s-22s;5s-8s", "outage window 5s-8s starts before.*time order"),
        ("outage_every=2s:60s", "outage_every=2s:60s needs 1 ms <= length < period"),
        ("outage_every=60s", "outage_every=.*60s:2s"),
        ("wsgarbage=2", "wsgarbage rate must be in"),
    ],
)
def test_bad_plans_name_the_field(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FaultPlan.parse(text)


@settings(max_examples=30, deadline=None)
@given(plans)
def test_decisions_follow_the_rates(plan: FaultPlan) -> None:
    n = 4000
    decider = FaultDecider(plan)
    decisions = [decider.decide() for _ in range(n)]
    for kind in (*FAULT_KINDS, "pass"):
        p = plan.rate(kind)
        seen = sum(d.kind == kind for d in decisions)
        # six binomial standard deviations, plus one for rates near 0 or 1
        assert abs(seen - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1, kind
    assert all(d.delay_s >= 0 for d in decisions)
    if plan.jitter_ms == 0:
        assert {d.delay_s for d in decisions} == {plan.latency_ms / 1e3}


@settings(max_examples=20, deadline=None)
@given(st.floats(0, 1, allow_nan=False), st.integers(0, 2**32))
def test_ws_garbage_is_a_per_frame_rate_to_the_client_only(rate: float, seed: int) -> None:
    n = 4000
    decider = FaultDecider(FaultPlan(ws_garbage_rate=rate, seed=seed))
    seen = sum(decider.frame(to_client=True).garbage is not None for _ in range(n))
    assert abs(seen - n * rate) <= 6 * math.sqrt(n * rate * (1 - rate)) + 1
    assert all(decider.frame(to_client=False).garbage is None for _ in range(200))


def test_websocket_frames_do_not_shift_the_http_draws() -> None:
    plan = FaultPlan(loss_rate=0.3, ws_garbage_rate=0.5, latency_ms=10, jitter_ms=3, seed=5)
    quiet, busy = FaultDecider(plan), FaultDecider(plan)
    for _ in range(50):
        busy.frame(to_client=True)
    assert [quiet.decide() for _ in range(100)] == [busy.decide() for _ in range(100)]


def test_old_plans_draw_as_before_the_new_kinds_existed() -> None:
    # The new kinds sit after the old ones in the cumulative draw: a recorded plan replays the same faults.
    plan = FaultPlan(rpc_error_rate=0.2, http_5xx_rate=0.1, drop_rate=0.2, garbage_rate=0.1, seed=3)
    rng = random.Random(3)
    old_edges = [(0.2, "rpc_error"), (0.3, "http_5xx"), (0.3, "rate_limited"), (0.5, "drop"), (0.6, "garbage")]
    expected = []
    for _ in range(500):
        u = rng.random()
        expected.append(next((k for edge, k in old_edges if u < edge), "pass"))
    decider = FaultDecider(plan)
    assert [decider.decide().kind for _ in range(500)] == expected


def test_same_seed_same_decisions_other_seed_other_decisions() -> None:
    plan = FaultPlan(rpc_error_rate=0.3, drop_rate=0.3, jitter_ms=5, latency_ms=10, seed=3)
    assert _draw(plan, 200) == _draw(plan, 200)
    other = FaultPlan(rpc_error_rate=0.3, drop_rate=0.3, jitter_ms=5, latency_ms=10, seed=4)
    assert _draw(plan, 200) != _draw(other, 200)


def _draw(plan: FaultPlan, n: int) -> list[object]:
    decider = FaultDecider(plan)
    return [decider.decide() for _ in range(n)]


def test_jitter_is_centred_on_the_latency() -> None:
    decider = FaultDecider(FaultPlan(latency_ms=50, jitter_ms=5, seed=1))
    delays = [decider.delay() for _ in range(4000)]
    assert sum(delays) / len(delays) == pytest.approx(0.050, abs=0.001)


def test_outage_windows_and_their_edges() -> None:
    plan = FaultPlan.parse("outage=5s-8s;20s-22s,outage_every=60s:2s")
    assert [plan.in_outage(t) for t in (0, 4.99, 5, 7.99, 8, 21, 22, 59.9, 60, 61.9, 62, 120.5)] == [
        False, False, True, True, False, True, False, False, True, True, False, True]
    edges, t = [], 0.0
    for _ in range(8):
        nxt = plan.next_outage_edge(t)
        assert nxt is not None
        edges.append(nxt)
        t = nxt
    assert edges == [5, 8, 20, 22, 60, 62, 120, 122]
    assert FaultPlan.parse("outage=1s-2s").next_outage_edge(2) is None


@given(windows(), periodic(), seconds)
def test_next_edge_is_where_the_state_changes(outages: tuple[tuple[float, float], ...],
                                              every: tuple[float, float] | None, t: float) -> None:
    plan = FaultPlan(outages=outages, outage_every=every)
    edge = plan.next_outage_edge(t)
    if edge is None:
        assert every is None and all(end <= t for _, end in outages)
        return
    assert edge > t
    assume(edge - t > 1e-6 and edge < 1e9)
    before = (t + edge) / 2
    assert plan.in_outage(before) == plan.in_outage(t)  # windows are [start, end): no change before the edge


def test_a_profile_plus_faults_adds_them_on_top() -> None:
    profile = FaultPlan.parse("latency=70ms,jitter=10ms,loss=0.01,5xx=0.005,outage_every=60s:2s")
    combined = profile.plus(FaultPlan.parse("latency=5ms,jitter=10ms,loss=0.02,outage=5s-8s,retry_after=3s,seed=4"))
    assert combined.latency_ms == 75
    assert combined.jitter_ms == pytest.approx(math.hypot(10, 10))
    assert combined.loss_rate == pytest.approx(0.03) and combined.http_5xx_rate == 0.005
    assert combined.outages == ((5.0, 8.0),) and combined.outage_every == (60.0, 2.0)
    assert (combined.retry_after_s, combined.seed) == (3.0, 4)
    assert profile.plus(FaultPlan()) == profile
    assert FaultPlan.parse("outage=1s-5s").plus(FaultPlan.parse("outage=3s-9s;10s-11s")).outages == (
        (1.0, 9.0), (10.0, 11.0))
    with pytest.raises(ConfigError, match=r"add up to .*combining"):
        profile.plus(FaultPlan(loss_rate=0.99))
