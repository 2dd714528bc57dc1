"""Who trades what in a sharded bot (pure).

The selected pairs, sorted by id, are dealt round-robin: the k-th goes to shard ``k % N``. The
accounts, in the order the bot loads them, are dealt the same way. Every pair is in exactly one
shard and no account signs for two shards, so each shard owns its accounts' nonces outright (two
processes allocating nonces from one account would collide at the node). The parent computes the
plan to route orders; each child applies the same functions to its own config's ``[shard]`` table,
so parent and child cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from bot.config import BotConfig, ConfigError, ShardConfig, check_processes

T = TypeVar("T")
Selection = Literal["all"] | tuple[str, ...]


def deal(items: Sequence[T], count: int) -> tuple[tuple[T, ...], ...]:
    """``items`` dealt round-robin into ``count`` hands: item k goes to hand ``k % count``."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return tuple(tuple(items[i::count]) for i in range(count))


def selected_ids(deployment_ids: Sequence[str], selection: Selection) -> list[str]:
    """The pair ids the bot trades, sorted; a selected id the deployment lacks is a ``ConfigError``."""
    if selection == "all":
        return sorted(set(deployment_ids))
    missing = sorted(set(selection) - set(deployment_ids))
    if missing:
        raise ConfigError(f"pairs: {missing} are not in the deployment; use ids from its 'pairs'")
    return sorted(selection)


def check_accounts(accounts: int, shards: int) -> None:
    if accounts < shards:
        raise ConfigError(
            f"accounts: {accounts} account(s) for engine.processes = {shards}: each shard signs from accounts of its "
            f"own (two processes sharing an account would collide on its nonces); give at least {shards}, e.g. "
            f'accounts.source = "anvil-dev:{shards}", or more keys in accounts.env / accounts.key_file')


def check_pairs(pairs: int, shards: int) -> None:
    if pairs < shards:
        raise ConfigError(f"engine.processes: {shards} shards for {pairs} selected pair(s): a shard with no pair has "
                          f"nothing to trade; lower engine.processes to at most {pairs} or select more pairs")


def shard_entries(raw: Sequence[Any], selection: Selection, shard: ShardConfig) -> list[Mapping[str, Any]]:
    """The deployment's pair entries this shard trades, in sorted-id order."""
    ids: list[str] = []
    for i, p in enumerate(raw):
        if not isinstance(p, Mapping) or not isinstance(p.get("id"), str):
            raise ConfigError(f"deployment: pairs[{i}] has no string 'id'; point deployment at the deployment.json "
                              "written by the harness's deploy step")
        ids.append(p["id"])
    chosen = selected_ids(ids, selection)
    check_pairs(len(chosen), shard.count)
    mine = deal(chosen, shard.count)[shard.index]
    by_id = {p["id"]: p for p in raw}
    return [by_id[pair_id] for pair_id in mine]


def shard_accounts(accounts: Sequence[T], shard: ShardConfig | None) -> list[T]:
    """This process's accounts: all of them unsharded, else its round-robin hand."""
    if shard is None:
        return list(accounts)
    check_accounts(len(accounts), shard.count)
    return list(deal(accounts, shard.count)[shard.index])


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """The whole split, as the parent sees it: each shard's pairs and account addresses."""

    pairs: tuple[tuple[str, ...], ...]
    accounts: tuple[tuple[str, ...], ...]

    @property
    def count(self) -> int:
        return len(self.pairs)

    def owner(self, pair_id: str) -> int | None:
        """The shard trading ``pair_id`` (None: no shard does)."""
        for i, hand in enumerate(self.pairs):
            if pair_id in hand:
                return i
        return None

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(p)}p/{len(a)}a" for p, a in zip(self.pairs, self.accounts, strict=True))
        return f"<ShardPlan {self.count} shards: {sizes}>"


def make_plan(pair_ids: Sequence[str], accounts: Sequence[str], shards: int) -> ShardPlan:
    """Split sorted ``pair_ids`` and ``accounts`` over ``shards``; ``ConfigError`` when either is too short."""
    check_accounts(len(accounts), shards)
    check_pairs(len(pair_ids), shards)
    return ShardPlan(deal(sorted(pair_ids), shards), deal(list(accounts), shards))


def with_processes(config: BotConfig, processes: int, where: str = "--shards") -> BotConfig:
    """``config`` with ``engine.processes`` replaced (``bot run --shards N``), validated like the file's."""
    if config.shard is not None and processes != 1:
        raise ConfigError(f"{where}: this config is shard {config.shard.index} of a sharded bot ([shard]), "
                          "which is one process; run the parent's config instead")
    return replace(config, engine=replace(config.engine, processes=check_processes(processes, where)))
