"""The chaos scenarios as data (harness.run.chaosplan) and how --chaos composes a profile."""

from __future__ import annotations

import itertools

import pytest

from harness.errors import ConfigError
from harness.node.faultplan import FaultPlan
from harness.run.chaosplan import CHAOS_NAMES, chaos_spec, parse_chaos
from harness.run.scenarios import profile, with_chaos


def test_names_parse_in_canonical_order_and_bad_names_list_the_valid_ones() -> None:
    assert parse_chaos("all") == CHAOS_NAMES
    assert parse_chaos(" wsdrop,outage ,outage") == ("outage", "wsdrop")
    with pytest.raises(ConfigError) as err:
        parse_chaos("outage,blackout")
    assert "blackout" in str(err.value) and all(n in str(err.value) for n in CHAOS_NAMES)
    with pytest.raises(ConfigError, match="at least one"):
        parse_chaos(" , ")


@pytest.mark.parametrize("form", ["short", "full"])
@pytest.mark.parametrize("name", CHAOS_NAMES)
def test_every_timeline_happens_inside_the_load_and_leaves_the_proxies_clean(name: str, form: str) -> None:
    spec = chaos_spec(name, form)  # type: ignore[arg-type]
    acts = spec.timeline()
    assert acts and [a.t for a in acts] == sorted(a.t for a in acts)
    assert all(0 <= a.t <= spec.seconds for a in acts)
    for a in acts:
        FaultPlan.parse(a.plan)  # every plan is valid text
    last_plan = {a.target: a.plan for a in acts if a.verb == "plan"}
    assert all(p == "" for p in last_plan.values()), last_plan
    assert all(a.t + a.seconds <= spec.seconds for a in acts if a.verb == "outage")
    assert 20 <= spec.rate <= 50  # a moderate load: recovery is judged, not capacity
    if form == "short":
        assert spec.seconds <= 30


def test_outages_are_spaced_beyond_the_breaker_cooldown() -> None:
    from bot.rpc.config import HealthPolicy

    for form in ("short", "full"):
        spec = chaos_spec("outage", form)
        starts = [a.t for a in spec.timeline()]
        assert len(starts) == spec.outages >= 5
        # the endpoint down before may have opened its breaker as late as its outage's end
        assert min(b - a for a, b in itertools.pairwise(starts)) > spec.outage_s + HealthPolicy().cooldown


def test_the_rate_limit_outlasts_the_bots_cap_which_is_below_the_header() -> None:
    spec = chaos_spec("ratelimit")
    assert spec.cap_s == spec.max_retry_after_s < spec.retry_after_s
    assert spec.limit_s > spec.cap_s  # the bot's return after the cap happens inside the window
    assert spec.bot == {"engine": {"max_retry_after": spec.cap_s}}


def test_chaos_only_runs_the_named_ones_short_unless_the_profile_is_full() -> None:
    quick = with_chaos(profile("quick"), None, "outage,ambiguous")
    assert quick.name == "custom" and [s.id for s in quick.scenarios] == ["chaos_outage", "chaos_ambiguous"]
    assert all(s.kind == "chaos" and s.chaos is not None and s.chaos.form == "short" for s in quick.scenarios)
    both = with_chaos(profile("quick"), "burst", "wsdrop")
    assert [s.id for s in both.scenarios] == ["burst", "chaos_wsdrop"]
    full = with_chaos(profile("full"), None, "all")
    assert {s.chaos.form for s in full.scenarios if s.chaos} == {"full"}


def test_the_full_profile_ends_with_all_five_and_quick_has_none() -> None:
    full = profile("full").scenarios
    assert [s.id for s in full[-5:]] == [f"chaos_{n}" for n in CHAOS_NAMES]
    assert all(s.chaos is None for s in full[:-5])
    assert all(s.chaos is None for s in profile("quick").scenarios)
    assert all(s.chaos is None for s in profile("smoke").scenarios)
