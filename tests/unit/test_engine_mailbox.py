from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine.mailbox import (
    Mailbox,
    MailboxClosed,
    MailboxOverflow,
    Message,
    Overflow,
    Priority,
    PutResult,
)


def msg(p: Priority, n: object = 0) -> Message:
    return Message(p, "m", n)


def drain(box: Mailbox) -> list[Message]:
    out = []
    while (m := box.get_nowait()) is not None:
        out.append(m)
    return out


def test_priority_order_then_fifo_within_priority() -> None:
    box = Mailbox(10)
    for i, p in enumerate([Priority.MARKET_DATA, Priority.ENTRY, Priority.RISK_EXIT, Priority.ENTRY,
                           Priority.CANCEL, Priority.MARKET_DATA]):
        assert box.put(msg(p, i)) is PutResult.ACCEPTED
    got = [(m.priority, m.payload) for m in drain(box)]
    assert got == [
        (Priority.RISK_EXIT, 2), (Priority.CANCEL, 4), (Priority.ENTRY, 1), (Priority.ENTRY, 3),
        (Priority.MARKET_DATA, 0), (Priority.MARKET_DATA, 5),
    ]


def test_market_data_drops_oldest_and_counts() -> None:
    box = Mailbox(3)
    for i in range(5):
        box.put(msg(Priority.MARKET_DATA, i))
    assert [m.payload for m in drain(box)] == [2, 3, 4]
    s = box.statistics()
    assert s.drops == {"market_data.dropped_oldest": 2}
    assert s.dropped_total == 2
    assert s.high_water == 3


def test_entry_rejected_when_full_and_counted() -> None:
    box = Mailbox(2)
    assert box.put(msg(Priority.ENTRY, 1)).accepted
    assert box.put(msg(Priority.ENTRY, 2)).accepted
    assert box.put(msg(Priority.ENTRY, 3)) is PutResult.REJECTED
    assert [m.payload for m in drain(box)] == [1, 2]
    assert box.statistics().drops == {"entry.rejected": 1}


def test_market_data_with_only_higher_priority_queued_is_rejected() -> None:
    box = Mailbox(2)
    box.put(msg(Priority.ENTRY, 1))
    box.put(msg(Priority.ENTRY, 2))
    assert box.put(msg(Priority.MARKET_DATA, 3)) is PutResult.REJECTED
    assert box.statistics().drops == {"market_data.rejected": 1}


def test_risk_exit_evicts_lowest_priority_oldest_first() -> None:
    box = Mailbox(3)
    box.put(msg(Priority.ENTRY, "e"))
    box.put(msg(Priority.MARKET_DATA, "old"))
    box.put(msg(Priority.MARKET_DATA, "new"))
    assert box.put(msg(Priority.RISK_EXIT, "x")) is PutResult.EVICTED_LOWER
    assert [m.payload for m in drain(box)] == ["x", "e", "new"]
    assert box.statistics().drops == {"market_data.evicted": 1}


def test_risk_exit_never_dropped_uses_reserve_then_raises() -> None:
    box = Mailbox(2, reserve=1)
    box.put(msg(Priority.RISK_EXIT, 1))
    box.put(msg(Priority.RISK_EXIT, 2))
    assert box.put(msg(Priority.RISK_EXIT, 3)) is PutResult.OVERCOMMITTED
    with pytest.raises(MailboxOverflow, match="mailbox_size"):
        box.put(msg(Priority.RISK_EXIT, 4))
    s = box.statistics()
    assert s.overcommitted_total == 1
    assert s.drops == {"risk_exit.overflow": 1}
    assert [m.payload for m in drain(box)] == [1, 2, 3]


def test_cancel_evicts_lower_but_not_equal() -> None:
    box = Mailbox(1)
    box.put(msg(Priority.CANCEL, 1))
    assert box.put(msg(Priority.CANCEL, 2)) is PutResult.REJECTED
    box2 = Mailbox(1)
    box2.put(msg(Priority.ENTRY, 1))
    assert box2.put(msg(Priority.CANCEL, 2)) is PutResult.EVICTED_LOWER
    assert box2.statistics().drops == {"entry.evicted": 1}


def test_custom_policy_overrides_default() -> None:
    box = Mailbox(1, policy={Priority.MARKET_DATA: Overflow.REJECT_NEW})
    box.put(msg(Priority.MARKET_DATA, 1))
    assert box.put(msg(Priority.MARKET_DATA, 2)) is PutResult.REJECTED
    assert drain(box)[0].payload == 1


def test_on_drop_callback_sees_every_drop() -> None:
    seen: list[tuple[Priority, str, int]] = []
    box = Mailbox(1, on_drop=lambda p, r, n: seen.append((p, r, n)))
    box.put(msg(Priority.MARKET_DATA))
    box.put(msg(Priority.MARKET_DATA))
    box.put(msg(Priority.ENTRY))  # entries reject new rather than evict
    assert seen == [(Priority.MARKET_DATA, "dropped_oldest", 1), (Priority.ENTRY, "rejected", 1)]


def test_close_returns_and_counts_leftovers_and_refuses_puts() -> None:
    box = Mailbox(4)
    box.put(msg(Priority.ENTRY))
    box.put(msg(Priority.MARKET_DATA))
    left = box.close()
    assert len(left) == 2 and len(box) == 0
    with pytest.raises(MailboxClosed):
        box.put(msg(Priority.ENTRY))
    assert box.statistics().drops == {"entry.closed": 2, "market_data.closed": 1}


def test_bad_capacity_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)


def test_repr_is_informative() -> None:
    box = Mailbox(3, name="mailbox:T000/USD")
    box.put(msg(Priority.ENTRY))
    assert "T000/USD" in repr(box) and "depth=1/3" in repr(box)


async def test_get_waits_for_a_message() -> None:
    box = Mailbox(2)
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not getter.done()
    box.put(msg(Priority.ENTRY, 7))
    got = await asyncio.wait_for(getter, 1.0)
    assert got.payload == 7
    assert box.statistics().delivered_total == 1


ops = st.lists(st.tuples(st.booleans(), st.sampled_from(list(Priority))), max_size=200)


@given(ops, st.integers(1, 8))
def test_invariants_hold_for_any_sequence(seq: list[tuple[bool, Priority]], cap: int) -> None:
    """Depth never exceeds capacity+reserve; every message put is delivered, dropped or queued."""
    box = Mailbox(cap, reserve=2)
    put = delivered = raised = 0
    for is_put, p in seq:
        if is_put:
            put += 1
            try:
                box.put(msg(p))
            except MailboxOverflow:
                raised += 1
        elif box.get_nowait() is not None:
            delivered += 1
        assert len(box) <= cap + 2
    s = box.statistics()
    lost = sum(v for k, v in s.drops.items())
    assert put == delivered + len(box) + lost
    assert s.delivered_total == delivered
    assert s.drops.get("risk_exit.overflow", 0) == raised
    # Only never-drop messages may sit above capacity.
    assert len(box) <= cap or box.statistics().depth_by_priority["risk_exit"] > 0


# -- conflation: a newer message of a conflating kind takes the queued one's place ---------------------


def trade(n: object, p: Priority = Priority.ENTRY) -> Message:
    return Message(p, "trade", n)


def test_a_newer_trade_takes_the_queued_ones_place_and_the_old_one_is_counted() -> None:
    superseded: list[Message] = []
    drops: list[tuple[Priority, str, int]] = []
    box = Mailbox(8, conflate={"trade"}, on_conflate=superseded.append,
                  on_drop=lambda p, r, n: drops.append((p, r, n)))
    assert box.put(trade(1)) is PutResult.ACCEPTED
    box.put(Message(Priority.ENTRY, "other", "x"))
    assert box.put(trade(2)) is PutResult.CONFLATED
    assert box.put(trade(3)) is PutResult.CONFLATED
    assert len(box) == 2
    assert [m.payload for m in drain(box)] == [3, "x"]  # newest wins, in the oldest one's turn
    assert [m.payload for m in superseded] == [1, 2]
    assert drops == [(Priority.ENTRY, "conflated", 1)] * 2
    s = box.statistics()
    assert s.drops == {"entry.conflated": 2} and s.put_total == 4 and s.delivered_total == 2


def test_conflation_needs_no_room_and_keeps_other_kinds_and_priorities_apart() -> None:
    box = Mailbox(2, conflate={"trade"})
    box.put(trade(1))
    box.put(trade("exit", Priority.RISK_EXIT))
    assert box.put(trade(2)) is PutResult.CONFLATED  # full, yet not refused: it replaces
    assert box.put(Message(Priority.ENTRY, "order", 9)) is PutResult.REJECTED  # not a conflating kind
    assert [m.payload for m in drain(box)] == ["exit", 2]
    assert box.put(trade(3)) is PutResult.ACCEPTED  # nothing queued to replace any more


def test_an_evicted_or_closed_trade_leaves_no_place_behind() -> None:
    box = Mailbox(1, conflate={"trade"})
    box.put(trade(1, Priority.MARKET_DATA))
    assert box.put(Message(Priority.RISK_EXIT, "order", "exit")) is PutResult.EVICTED_LOWER
    assert box.put(trade(2, Priority.MARKET_DATA)) is PutResult.REJECTED  # full of a higher priority
    assert [m.payload for m in drain(box)] == ["exit"]
    box.put(trade(3))
    box.put(trade(4))
    assert [m.payload for m in box.close()] == [4]
    assert box.statistics().drops == {"market_data.evicted": 1, "market_data.rejected": 1,
                                      "entry.conflated": 1, "entry.closed": 1}


conflating_ops = st.lists(
    st.one_of(st.tuples(st.sampled_from(["trade", "m"]), st.sampled_from(list(Priority))), st.just(None)),
    max_size=200,
)


@given(conflating_ops)
def test_conflation_matches_a_model_queue(seq: list[tuple[str, Priority] | None]) -> None:
    """With room to spare, the mailbox behaves like per-priority lists in which a put of a conflating
    kind overwrites the queued message of its kind and priority in place; nothing else is lost."""
    box = Mailbox(1000, conflate={"trade"})
    model: dict[Priority, list[Message]] = {p: [] for p in Priority}
    conflated = 0
    for n, op in enumerate(seq):
        if op is None:
            got = box.get_nowait()
            expected = next((model[p].pop(0) for p in Priority if model[p]), None)
            assert got is expected
            continue
        kind, p = op
        m = Message(p, kind, n)
        queued = [i for i, q in enumerate(model[p]) if q.kind == "trade"] if kind == "trade" else []
        if queued:
            model[p][queued[0]] = m
            conflated += 1
            assert box.put(m) is PutResult.CONFLATED
        else:
            model[p].append(m)
            assert box.put(m) is PutResult.ACCEPTED
        assert sum(1 for q in model[p] if q.kind == "trade") <= 1
        assert len(box) == sum(len(q) for q in model.values())
    s = box.statistics()
    assert sum(v for k, v in s.drops.items() if k.endswith(".conflated")) == conflated
    assert s.put_total == s.delivered_total + len(box) + s.dropped_total
