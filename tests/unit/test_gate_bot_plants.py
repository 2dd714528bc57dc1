"""The bot's planted slowdowns for the gate's proofs: validated config keys, off by default, real CPU spent."""

from __future__ import annotations

import time

import pytest

from bot.config import ConfigError, parse
from bot.debug import burn_cpu

MINIMAL = {"deployment": "deployment.json", "endpoints": {"http": ["http://127.0.0.1:8545"]},
           "accounts": {"env": "TRADEBENCH_BOT_KEYS"}}


def test_plants_are_off_by_default_and_parse_when_given() -> None:
    assert (parse(MINIMAL).debug.burn_us_per_trade, parse(MINIMAL).debug.delay_price_fetch_ms) == (0, 0.0)
    cfg = parse({**MINIMAL, "debug": {"burn_us_per_trade": 400, "delay_price_fetch_ms": 1}})
    assert cfg.debug.burn_us_per_trade == 400 and cfg.debug.delay_price_fetch_ms == 1.0
    # They survive the round trip through the file the harness writes.
    import tomllib

    again = parse(tomllib.loads(cfg.to_toml()))
    assert again.debug.burn_us_per_trade == 400 and again.debug.delay_price_fetch_ms == 1.0


@pytest.mark.parametrize(("table", "field"), [
    ({"burn_us_per_trade": -1}, "debug.burn_us_per_trade"), ({"burn_us_per_trade": 1.5}, "debug.burn_us_per_trade"),
    ({"burn_us_per_trade": True}, "debug.burn_us_per_trade"), ({"burn_us_per_trade": 10**7}, "debug.burn_us_per_trade"),
    ({"delay_price_fetch_ms": -0.5}, "debug.delay_price_fetch_ms"),
    ({"delay_price_fetch_ms": "1ms"}, "debug.delay_price_fetch_ms"),
])  # fmt: skip
def test_bad_plants_name_the_field_and_the_fix(table: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        parse({**MINIMAL, "debug": table})
    assert "e.g." in str(info.value)


def test_burn_cpu_spends_that_much_of_the_threads_cpu_clock() -> None:
    t0 = time.thread_time_ns()
    burn_cpu(3000)
    spent_us = (time.thread_time_ns() - t0) / 1000
    # At least what was asked (the clock decides), and not wildly more: the clock is read every
    # 200 additions, a few µs.
    assert 3000 <= spent_us < 3000 + 2000
