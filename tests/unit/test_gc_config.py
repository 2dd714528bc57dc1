"""``engine.gc_freeze`` and ``engine.gc_threshold`` in bot.toml: defaults, round trip, and errors that name
the field and the fix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, EngineConfig, loads

BASE = """
deployment = "deployment.json"
[endpoints]
http = ["http://127.0.0.1:8545"]
[engine]
"""


def test_defaults_freeze_and_keep_pythons_thresholds() -> None:
    engine = loads(BASE).engine
    assert engine.gc_freeze is True and engine.gc_threshold is None
    assert EngineConfig().gc_freeze is True


@given(st.booleans(), st.integers(1, 10_000_000), st.integers(1, 100_000), st.integers(1, 100_000))
def test_settings_round_trip_through_to_toml(freeze: bool, g0: int, g1: int, g2: int) -> None:
    text = BASE + f"gc_freeze = {'true' if freeze else 'false'}\ngc_threshold = [{g0}, {g1}, {g2}]\n"
    cfg = loads(text)
    assert cfg.engine.gc_freeze is freeze and cfg.engine.gc_threshold == (g0, g1, g2)
    assert loads(cfg.to_toml()).engine == cfg.engine
    assert cfg.to_dict()["engine"]["gc_threshold"] == (g0, g1, g2)


@pytest.mark.parametrize(("value", "field", "says"), [
    ("[0, 10, 10]", "engine.gc_threshold[0]", "0 would switch automatic collection off"),
    ("[700, 10]", "engine.gc_threshold", "three integers"),
    ("700", "engine.gc_threshold", "[g0, g1, g2]"),
    ("[700, 10, true]", "engine.gc_threshold[2]", "an integer 1-100000"),
    ("[700, 1000000, 10]", "engine.gc_threshold[1]", "an integer 1-100000"),
    ("[700.5, 10, 10]", "engine.gc_threshold[0]", "an integer 1-10000000"),
])
def test_a_bad_threshold_names_the_field_and_the_fix(value: str, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(BASE + f"gc_threshold = {value}\n")
    msg = str(err.value)
    assert msg.startswith(f"{field}:") and says in msg
    assert "Python's default is [700, 10, 10]" in msg  # the fix: a valid value, or remove the key


def test_gc_freeze_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"^engine\.gc_freeze: expected true or false, got 'yes'"):
        loads(BASE + 'gc_freeze = "yes"\n')


def test_a_misspelt_key_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"engine\.gc_frezee: unknown key; did you mean 'gc_freeze'"):
        loads(BASE + "gc_frezee = false\n")
