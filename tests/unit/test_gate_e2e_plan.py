"""The end-to-end tier's schedule (ABBA quartets, randomized windows) and its bot.toml writer, pure."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gate.e2eplan import next_quartet, plan, quartet_windows
from harness.gate.e2etoml import bot_config_toml, merge

_plans = st.tuples(st.integers(1, 12), st.floats(1.0, 30.0), st.floats(0.0, 0.9), st.integers(0, 10**6))


@given(_plans)
def test_every_quartet_is_abba_or_baab_with_adjacent_mixed_pairs(args: tuple[int, float, float, int]) -> None:
    quartets, seconds, jitter, seed = args
    windows = plan(quartets, seconds=seconds, jitter=jitter, seed=seed)
    assert [w.index for w in windows] == list(range(4 * quartets))
    for q in range(quartets):
        quartet = windows[4 * q : 4 * q + 4]
        order = tuple(w.side for w in quartet)
        assert order in (("base", "head", "head", "base"), ("head", "base", "base", "head"))
        # Linear drift cancels: the position sums of the two revisions are equal.
        assert sum(w.position for w in quartet if w.side == "base") == sum(
            w.position for w in quartet if w.side == "head")
        # The middle windows are one revision twice: the quartet's A/A pair.
        assert quartet[1].side == quartet[2].side
        for first, second in (quartet[0:2], quartet[2:4]):
            assert first.pair == second.pair and first.side != second.side
            assert first.tick_seed == second.tick_seed and first.seconds == second.seconds
        assert len({w.seconds for w in quartet}) == 1
        assert seconds * (1 - jitter) - 0.01 <= quartet[0].seconds <= seconds * (1 + jitter) + 0.01
    assert len({w.pair for w in windows}) == 2 * quartets
    assert len({w.tick_seed for w in windows}) == 2 * quartets  # each pair replays its own ticks
    assert len({w.tag for w in windows}) == len(windows)


@given(_plans)
def test_quartet_by_quartet_gives_the_same_windows_as_the_whole_plan(args: tuple[int, float, float, int]) -> None:
    quartets, seconds, jitter, seed = args
    whole = plan(quartets, seconds=seconds, jitter=jitter, seed=seed)
    stepwise = [w for q in range(quartets) for w in next_quartet(q, seconds=seconds, jitter=jitter, seed=seed)]
    assert stepwise == whole


def test_both_orders_occur_and_the_seed_decides() -> None:
    orders = {tuple(w.side for w in plan(1, seconds=5, seed=s)) for s in range(40)}
    assert len(orders) == 2
    assert plan(6, seconds=5, seed=3) == plan(6, seconds=5, seed=3)
    assert plan(6, seconds=5, seed=3) != plan(6, seconds=5, seed=4)


@pytest.mark.parametrize(("kw", "match"), [({"quartets": 0}, "quartets"), ({"seconds": 0.0}, "seconds"),
                                           ({"jitter": 1.0}, "jitter")])
def test_bad_plans_name_the_argument(kw: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"quartets": 2, "seconds": 5.0, "jitter": 0.2} | kw
    with pytest.raises(ValueError, match=match):
        plan(int(args["quartets"]), seconds=args["seconds"], jitter=args["jitter"])
    with pytest.raises(ValueError, match="two windows of each"):
        quartet_windows(0, ("base", "base", "base", "head"), 5.0, 0)


_scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False),
                     st.text(max_size=20), st.lists(st.text(max_size=8), max_size=3))
_keys = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
_tables = st.dictionaries(_keys, st.one_of(_scalars, st.dictionaries(_keys, _scalars, max_size=4)), max_size=6)


@given(_tables, _tables)
def test_bot_toml_round_trips_through_tomllib(a: dict[str, object], b: dict[str, object]) -> None:
    assert tomllib.loads(bot_config_toml(a, b)) == merge(a, b)


def test_later_layers_win_and_tables_merge() -> None:
    merged = merge({"engine": {"signing": "inline", "max_in_flight": 8}}, {"engine": {"signing": "thread"}},
                   {"debug": {"burn_us_per_trade": 150}})
    assert merged == {"engine": {"signing": "thread", "max_in_flight": 8}, "debug": {"burn_us_per_trade": 150}}
    text = bot_config_toml(merged)
    assert "[debug]\nburn_us_per_trade = 150" in text
