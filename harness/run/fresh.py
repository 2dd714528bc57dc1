"""A fresh start before a scenario: the chain reverted if it grew, then quiet; and before each
step of the trading stress search (``fresh_step``).

The runner calls ``prepare`` before each scenario. The trading stress calls ``fresh_step`` before
every step after its first: the node slows as it absorbs swaps (RSS 80 MB to 1.1-2.1 GB within one
search, ``balance_check`` p95 at ~100/s from 3-8 ms to 10-16 ms three minutes later), so without it
each step was judged on an older node than the one before and the bracket followed the order of
the steps. The fresh bot carries the old session's records (``BotSession.carry_from``), so the
scenario is still read as one record.
"""

from __future__ import annotations

from typing import Any

from harness.run import progress as progress_ui
from harness.run.chainstate import ResetDecision
from harness.run.ledgercheck import reconcile_session
from harness.run.stack import Stack

NOT_OURS = ResetDecision(False, "a user's node is never reverted")
FEED_CLIENT_TIMEOUT_S = 30.0  # a bound, not a pace: a whole step restart took 1.9-2.7 s here


async def reset_if_grown(st: Stack, ui: progress_ui.Ui, settle_timeout_s: float) -> ResetDecision:
    """Revert our anvil to its snapshot, with a fresh bot, when its chain grew past the limit."""
    from harness.run.settle import settle

    if st.chain is None:
        return NOT_OURS
    decision, since = await st.chain.decide()
    if decision.reset:
        # The old bot drains and stops before the chain moves back under it; the new one reads
        # its nonces from the reverted chain when it starts.
        await settle(st, timeout_s=settle_timeout_s)
        await reconcile_session(st, ui)  # the revert erases this session's transactions: check them first
        failed_before, base = st.chain.failed, st.chain.snapshot_block
        block = await st.restart_bot(st.chain.revert)
        if st.chain.failed > failed_before:
            ui.log(f"chain: anvil acknowledged the revert but stayed at block {block} (snapshot at "
                   f"{base}); this scenario runs on the longer chain. bot: fresh process, "
                   f"pid {st.bot.pid}")
            return ResetDecision(True, f"revert of {since} blocks did not take: anvil stayed at block {block}, "
                                       "fresh bot")
        ui.log(f"chain: reverted {since} blocks, to block {block} (the post-deployment snapshot); "
               f"bot: fresh process, pid {st.bot.pid}")
    return decision


async def prepare(st: Stack, ui: progress_ui.Ui, *, settle_timeout_s: float, fresh_bot: bool, first: bool
                  ) -> tuple[dict[str, Any], ResetDecision]:
    """A clean start for the next scenario: the chain reverted (with a fresh bot) when it grew, or
    a fresh bot if asked, then a bounded wait for quiet. Returns the summary fields and the decision."""
    from harness.run.settle import settle

    decision = await reset_if_grown(st, ui, settle_timeout_s)
    if fresh_bot and not first and not decision.reset:
        await reconcile_session(st, ui)  # a fresh bot starts with an empty ledger
        await st.restart_bot()
        ui.log(f"bot: fresh process, pid {st.bot.pid}")
    settled = await settle(st, timeout_s=settle_timeout_s)
    if settled.timed_out:
        ui.log(f"not quiet after {settled.settle_s:.0f} s ({'; '.join(settled.busy)}); starting anyway")
    elif settled.settle_s > 2:
        ui.log(f"settled in {settled.settle_s:.1f} s")
    out = settled.summary()
    out["fresh_bot"] = fresh_bot or decision.reset
    return out, decision


async def fresh_step(st: Stack, ui: progress_ui.Ui) -> int | None:
    """Our anvil back to its snapshot, with a fresh bot that keeps the scenario's records, before a
    stress step. Returns the block after the revert (None: nothing done: not our node, --keep-chain,
    or a run that must keep one bot process, memray)."""
    if st.chain is None or not st.chain.enabled or st.chain.one_bot:
        return None
    await reconcile_session(st, ui)  # the revert erases this session's transactions: check them first
    block: int = await st.restart_bot(st.chain.revert, keep_records=True)
    await st.feed.wait_for_client(FEED_CLIENT_TIMEOUT_S)  # ticks sent before the bot listens would be lost
    return block

