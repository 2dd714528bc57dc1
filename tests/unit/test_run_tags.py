"""Scenario isolation: the bot splits its telemetry by tick tag, the harness judges only its own.

The bot half: ``Telemetry`` keeps, beside the totals, what each tag's context recorded, and the
context travels into tasks spawned while a tagged tick is handled (the confirmation task). The
harness half: ``merge_intervals(own=...)`` keeps a scenario's own operations, ``carry_over``
reports everybody else's, and together they account for every tagged sample exactly once.
"""

from __future__ import annotations

import asyncio

from hdrh.histogram import HdrHistogram
from hypothesis import given
from hypothesis import strategies as st

from bot.telemetry.recorder import TAG, Telemetry
from harness.run.collect import carry_over, merge_intervals, own_view, tag_filter


def _count(enc: str) -> int:
    return int(HdrHistogram.decode(enc).get_total_count())


def test_records_in_a_tagged_context_are_split_by_tag_and_kept_in_the_totals() -> None:
    t = Telemetry(wall_clock=lambda: 100.0)
    t.record("price_fetch", 10)  # untagged: totals only
    token = TAG.set("burst")
    t.record("price_fetch", 20)
    t.count("trades_ok")
    TAG.reset(token)
    token = TAG.set("sustained")
    t.record("price_fetch", 30)
    t.record("price_fetch", 40)
    TAG.reset(token)
    t.count("ticks_handled", tag="sustained")  # explicit tag, outside any context
    t.count_untagged("in_flight_max", 3)
    iv = t.rotate().to_json()
    assert _count(iv["histograms"]["price_fetch"]) == 4
    assert _count(iv["tags"]["burst"]["histograms"]["price_fetch"]) == 1
    assert _count(iv["tags"]["sustained"]["histograms"]["price_fetch"]) == 2
    assert iv["tags"]["burst"]["counters"] == {"trades_ok": 1}
    assert iv["tags"]["sustained"]["counters"] == {"ticks_handled": 1}
    assert iv["counters"]["in_flight_max"] == 3
    assert all("in_flight_max" not in sl["counters"] for sl in iv["tags"].values())


def test_an_interval_without_tagged_work_has_no_tags_key() -> None:
    t = Telemetry()
    t.record("price_fetch", 10)
    assert "tags" not in t.rotate().to_json()


async def test_the_tag_follows_the_work_into_spawned_tasks() -> None:
    t = Telemetry()

    async def confirm() -> None:
        await asyncio.sleep(0)
        t.record("trade_execution", 50_000)

    token = TAG.set("stress/2")
    task = asyncio.create_task(confirm())  # created while the tick is handled: inherits its tag
    TAG.reset(token)
    await task
    iv = t.rotate().to_json()
    assert _count(iv["tags"]["stress/2"]["histograms"]["trade_execution"]) == 1


def test_idle_tags_are_retired_so_live_histograms_stay_bounded() -> None:
    t = Telemetry()
    token = TAG.set("burst")
    t.record("price_fetch", 10)
    TAG.reset(token)
    for _ in range(40):
        t.rotate()
    assert t.statistics().live_tags == ()


def test_a_stress_tag_owns_its_steps_only() -> None:
    own = tag_filter("stress")
    assert own("stress") and own("stress/3")
    assert not own("stressful") and not own("sustained")


def _enc(values: list[int]) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    return h.encode().decode("ascii")


@given(st.dictionaries(st.sampled_from(["burst", "sustained", "stress/1", "stress/2"]),
                       st.tuples(st.integers(1, 20), st.integers(0, 20)), min_size=1),
       st.integers(0, 5), st.sampled_from(["burst", "sustained", "stress"]))
def test_own_and_carry_over_account_for_every_tagged_sample_once(
        per_tag: dict[str, tuple[int, int]], untagged: int, scenario: str) -> None:
    tags = {tag: {"histograms": {"trade_execution": _enc([1000] * n)}, "counters": {"trades_ok": ok}}
            for tag, (n, ok) in per_tag.items()}
    total_samples = sum(n for n, _ in per_tag.values()) + untagged
    iv = {"start": 10.0, "end": 11.0,
          "histograms": {"trade_execution": _enc([1000] * total_samples), "event_loop_lag": _enc([5])},
          "counters": {"trades_ok": sum(ok for _, ok in per_tag.values()), "in_flight_max": 9}, "tags": tags}
    own = tag_filter(scenario)
    hists, counters = own_view(iv, own)
    mine = sum(n for tag, (n, _) in per_tag.items() if own(tag))
    assert (_count(hists["trade_execution"]) if "trade_execution" in hists else 0) == mine
    assert "event_loop_lag" in hists and counters["in_flight_max"] == 9  # untagged kinds stay whole
    carried = carry_over(10.0, 1.0, [iv], own)
    assert mine + carried["histograms"].get("trade_execution", 0) == sum(n for n, _ in per_tag.values())
    ok_mine = counters.get("trades_ok", 0)
    assert ok_mine + carried["counters"].get("trades_ok", 0) == iv["counters"]["trades_ok"]
    merged = merge_intervals(10.0, [iv], own=own)
    assert merged[0]["counters"].get("ok", 0) == ok_mine


def test_without_a_filter_the_merge_keeps_the_totals() -> None:
    iv = {"start": 0.0, "end": 1.0, "histograms": {"x": _enc([1, 2])}, "counters": {"trades_ok": 2},
          "tags": {"burst": {"histograms": {"x": _enc([1])}, "counters": {"trades_ok": 1}}}}
    merged = merge_intervals(0.0, [iv])
    assert merged[0]["counters"]["ok"] == 2 and _count(merged[0]["histograms"]["x"]) == 2
