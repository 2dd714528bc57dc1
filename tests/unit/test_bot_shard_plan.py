"""The shard plan (pure) and its config: every pair in exactly one shard, accounts never shared."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import load_pairs
from bot.config import ConfigError, ShardConfig, loads
from bot.shard.parent import child_config
from bot.shard.plan import deal, make_plan, shard_accounts, shard_entries, with_processes

MINIMAL = 'deployment = "deployment.json"\n[endpoints]\nhttp = ["http://127.0.0.1:8545"]\n'

ids = st.lists(st.from_regex(r"T[0-9]{3}/USD", fullmatch=True), min_size=1, max_size=40, unique=True)


@settings(deadline=None)
@given(ids, st.integers(1, 16), st.integers(0, 8), st.randoms())
def test_every_pair_is_in_exactly_one_shard_and_no_account_signs_for_two(
    pair_ids: list[str], shards: int, extra_accounts: int, rnd: random.Random
) -> None:
    shards = min(shards, len(pair_ids))
    accounts = [f"0x{i:040x}" for i in range(shards + extra_accounts)]
    plan = make_plan(pair_ids, accounts, shards)
    assert plan.count == shards
    hands = [p for hand in plan.pairs for p in hand]
    assert sorted(hands) == sorted(pair_ids)  # each exactly once
    used = [a for hand in plan.accounts for a in hand]
    assert sorted(used) == sorted(accounts)  # disjoint, and none left unused
    assert all(hand for hand in plan.accounts) and all(hand for hand in plan.pairs)
    for i, hand in enumerate(plan.pairs):
        assert all(plan.owner(p) == i for p in hand)
    # Deterministic: the order the ids come in does not matter.
    shuffled = list(pair_ids)
    rnd.shuffle(shuffled)
    assert make_plan(shuffled, accounts, shards) == plan


@settings(deadline=None)
@given(ids, st.integers(2, 16))
def test_each_child_computes_the_parents_hand(pair_ids: list[str], shards: int) -> None:
    shards = min(shards, len(pair_ids))
    if shards < 2:
        return
    raw = [{"id": p} for p in reversed(pair_ids)]
    accounts = [f"0x{i:040x}" for i in range(shards * 2)]
    plan = make_plan(pair_ids, accounts, shards)
    for i in range(shards):
        shard = ShardConfig(i, shards)
        assert tuple(e["id"] for e in shard_entries(raw, "all", shard)) == plan.pairs[i]
        assert tuple(shard_accounts(accounts, shard)) == plan.accounts[i]


def test_a_selection_is_split_not_the_whole_deployment() -> None:
    raw = [{"id": f"T00{i}/USD"} for i in range(6)]
    got = [[e["id"] for e in shard_entries(raw, ("T005/USD", "T001/USD", "T003/USD"), ShardConfig(i, 2))]
           for i in range(2)]
    assert got == [["T001/USD", "T005/USD"], ["T003/USD"]]
    with pytest.raises(ConfigError, match="T009/USD"):
        shard_entries(raw, ("T009/USD", "T001/USD"), ShardConfig(0, 2))


def test_too_few_accounts_says_how_many_anvil_dev_needs() -> None:
    with pytest.raises(ConfigError, match=r'accounts\.source = "anvil-dev:3"'):
        make_plan(["A", "B", "C"], ["0x1", "0x2"], 3)
    with pytest.raises(ConfigError, match="anvil-dev:4"):
        shard_accounts(["0x1"], ShardConfig(0, 4))


def test_more_shards_than_pairs_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"engine\.processes: 3 shards for 2 selected pair"):
        make_plan(["A", "B"], ["0x1", "0x2", "0x3"], 3)


def test_deal_is_round_robin() -> None:
    assert deal([1, 2, 3, 4, 5], 2) == ((1, 3, 5), (2, 4))
    with pytest.raises(ValueError):
        deal([1], 0)


@pytest.mark.parametrize("value", ["0", "17", '"2"', "true", "1.5"])
def test_engine_processes_is_validated_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match=r"engine\.processes: expected an integer 1-16"):
        loads(MINIMAL + f"[engine]\nprocesses = {value}\n")


def test_shard_table_round_trips_and_is_one_process() -> None:
    cfg = loads(MINIMAL + "[engine]\nprocesses = 3\n")
    assert cfg.engine.processes == 3 and cfg.shard is None
    child = child_config(cfg, 1, 9001, "ws://127.0.0.1:9/feed/1")
    assert child.shard == ShardConfig(1, 3) and child.engine.processes == 1 and child.api.port == 9001
    again = loads(child.to_toml())
    assert again == child
    assert "[shard]" not in cfg.to_toml()
    with pytest.raises(ConfigError, match=r"engine\.processes: a shard"):
        loads(MINIMAL + "[engine]\nprocesses = 2\n[shard]\nindex = 0\ncount = 2\n")
    with pytest.raises(ConfigError, match=r"shard\.index: expected an integer 0-1"):
        loads(MINIMAL + "[shard]\nindex = 2\ncount = 2\n")
    with pytest.raises(ConfigError, match="give both index and count"):
        loads(MINIMAL + "[shard]\ncount = 2\n")
    with pytest.raises(ConfigError, match=r"shard\.color: unknown key"):
        loads(MINIMAL + "[shard]\nindex = 0\ncount = 2\ncolor = 1\n")


def test_shards_flag_overrides_and_is_validated() -> None:
    cfg = loads(MINIMAL)
    assert with_processes(cfg, 4).engine.processes == 4
    with pytest.raises(ConfigError, match=r"--shards: expected an integer 1-16"):
        with_processes(cfg, 0)
    with pytest.raises(ConfigError, match="shard 0 of a sharded bot"):
        with_processes(replace(cfg, shard=ShardConfig(0, 2)), 2)


def test_a_shard_trades_its_pairs_with_every_one_of_its_own_accounts(tmp_path: Path) -> None:
    entries = [{"id": f"T{i:03d}/USD", "pool": f"0x{i:040x}", "token0": "0x" + "a" * 40, "token1": "0x" + "b" * 40,
                "base": "0x" + "a" * 40, "quote": "0x" + "b" * 40} for i in range(8)]
    (tmp_path / "deployment.json").write_text(json.dumps({"pairs": entries}))
    base = loads(MINIMAL, base_dir=tmp_path)
    accounts = [f"0x{i:040x}" for i in range(4)]
    seen: dict[str, str] = {}
    for i in range(2):
        mine = shard_accounts(accounts, ShardConfig(i, 2))
        pairs = load_pairs(replace(base, shard=ShardConfig(i, 2)), mine)
        assert {p.account for p in pairs.values()} == set(mine)  # both of its accounts sign, no other
        for pid, info in pairs.items():
            assert pid not in seen
            seen[pid] = info.account
    assert sorted(seen) == [e["id"] for e in entries]
