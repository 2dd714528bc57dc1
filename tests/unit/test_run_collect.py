from __future__ import annotations

from hdrh.histogram import HdrHistogram

from harness.run.collect import merge_intervals, tag_filter, totals


def _hist(*values: int) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    enc = h.encode()
    return enc.decode() if isinstance(enc, bytes) else enc


def test_bot_and_feed_intervals_merge_by_second_and_keep_histograms_exact() -> None:
    t0 = 1000.0
    bot = [
        {"seq": 1, "start": 999.0, "end": 1000.0, "histograms": {"x": _hist(1)}, "counters": {"trades_ok": 9}},
        {"seq": 2, "start": 1000.0, "end": 1001.0, "histograms": {"x": _hist(100, 200)},
         "counters": {"trades_ok": 2, "trades_reverted": 1, "in_flight_max": 7}},
        {"seq": 3, "start": 1001.0, "end": 1002.0, "histograms": {"x": _hist(300)},
         "counters": {"trades_ok": 1, "trades_failed": 2, "in_flight_max": 3, "tx_accepted": 4}},
    ]
    feed = [{"start": 0.0, "end": 1.0, "sent": 3, "dropped": 0}, {"start": 1.0, "end": 2.0, "sent": 5, "dropped": 1}]
    ivs = merge_intervals(t0, bot, feed, duration_s=3)
    assert [iv["start"] for iv in ivs] == [0.0, 1.0, 2.0]  # the pre-t0 interval is ignored, an empty 3rd second kept
    assert ivs[0]["counters"] == {"ok": 2, "errors": 1, "in_flight_max": 7, "sent": 3, "dropped": 0}
    assert ivs[1]["counters"]["errors"] == 2 and ivs[1]["counters"]["tx_accepted"] == 4
    h = HdrHistogram.decode(ivs[0]["histograms"]["x"])
    assert h.get_total_count() == 2 and h.get_max_value() >= 200
    t = totals(ivs)
    assert t["ok"] == 3 and t["errors"] == 3 and t["sent"] == 8 and t["in_flight_max"] == 7


def test_two_bot_intervals_in_one_second_are_merged_not_overwritten() -> None:
    bot = [
        {"start": 10.0, "end": 10.5, "histograms": {"x": _hist(5)}, "counters": {"trades_ok": 1}},
        {"start": 10.5, "end": 10.9, "histograms": {"x": _hist(7)}, "counters": {"trades_ok": 1}},
    ]
    ivs = merge_intervals(10.0, bot)
    assert len(ivs) == 1 and ivs[0]["counters"]["ok"] == 2
    assert HdrHistogram.decode(ivs[0]["histograms"]["x"]).get_total_count() == 2


def test_an_interval_straddling_the_start_gives_the_scenario_its_own_ticks_only() -> None:
    # The bot's interval clock is not the scenario's: [t0-0.75, t0+0.25] holds the first quarter
    # second of this scenario's ticks (tagged) beside the pause before it (untagged, other tags).
    # Dropping it judged ~2.5% of a websocket scenario's ticks as dropped.
    t0 = 1000.0
    straddle = {"start": 999.25, "end": 1000.25, "histograms": {"event_loop_lag": _hist(9)},
                "counters": {"ticks_handled": 2700, "in_flight_max": 40},
                "tags": {"websocket": {"histograms": {}, "counters": {"ticks_handled": 2665}},
                         "sustained": {"histograms": {"x": _hist(5)}, "counters": {"ticks_handled": 35}}}}
    inside = {"start": 1000.25, "end": 1001.25, "histograms": {}, "counters": {"ticks_handled": 10500},
              "tags": {"websocket": {"histograms": {}, "counters": {"ticks_handled": 10500}}}}
    before = {"start": 998.25, "end": 999.25, "histograms": {}, "counters": {"ticks_handled": 7},
              "tags": {"websocket": {"histograms": {}, "counters": {"ticks_handled": 7}}}}
    ivs = merge_intervals(t0, [before, straddle, inside], own=tag_filter("websocket"))
    assert totals(ivs)["ws_handled"] == 2665 + 10500  # nothing from before the start, nothing lost after
    assert "event_loop_lag" not in ivs[0]["histograms"] and "x" not in ivs[0]["histograms"]
    assert "in_flight_max" not in ivs[0]["counters"]  # the pause's untagged peak is not the scenario's
    # Without tags (a bot that does not tag) the old rule stands: the interval is the pause's.
    assert totals(merge_intervals(t0, [straddle, inside]))["ws_handled"] == 10500
