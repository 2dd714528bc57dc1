"""The WebSocket dedupe keys (bot.rpc.ws_sync.seen_head / seen_log): packed into bytes to keep a full
SeenSet small, they must tell apart exactly what the plain tuples told apart."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from bot.rpc.ws_sync import SeenSet, head_key, seen_head, seen_log

canonical = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
# Hashes of other shapes (garbage a node might send) take the tuple path; head_key lowercases them all.
odd = st.text(alphabet="0123456789abcdefABx \u00e9", max_size=70).map(str.lower)
hashes = st.one_of(canonical, odd, st.sampled_from(["0x" + "ab" * 31 + "a b", "0x" + "0" * 64]))
sub_keys = st.sampled_from(["heads", "logs:pool", "h", "heads\x00", "", "l"])
log_items = st.tuples(hashes, st.integers(0, 2**70), st.booleans())


@given(a=st.tuples(sub_keys, hashes), b=st.tuples(sub_keys, hashes))
def test_head_keys_are_equal_exactly_when_sub_and_hash_are(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert (seen_head(*a) == seen_head(*b)) == (a == b)


@given(a=st.tuples(sub_keys, log_items), b=st.tuples(sub_keys, log_items))
def test_log_keys_are_equal_exactly_when_the_tuples_are(a: tuple[str, tuple[str, int, bool]],
                                                        b: tuple[str, tuple[str, int, bool]]) -> None:
    assert (seen_log(*a) == seen_log(*b)) == (a == b)


@given(h=st.tuples(sub_keys, hashes), lg=st.tuples(sub_keys, log_items))
def test_a_head_key_never_equals_a_log_key(h: tuple[str, str], lg: tuple[str, tuple[str, int, bool]]) -> None:
    assert seen_head(*h) != seen_log(*lg)


def test_a_full_window_holds_packed_keys_and_forgets_the_oldest() -> None:
    window = 64
    seen = SeenSet(window)
    headers = [{"hash": "0x" + os.urandom(32).hex().upper(), "number": hex(n)} for n in range(window + 10)]
    keys = [seen_head("heads", head_key(h)[0]) for h in headers]
    assert all(isinstance(k, bytes) and len(k) == 32 + 1 + len("heads") for k in keys)
    assert all(seen.add(k) for k in keys)
    assert len(seen) == window
    assert keys[9] not in seen and keys[10] in seen  # the first ten were pushed out, oldest first
    assert not seen.add(keys[-1])  # a duplicate
    assert seen.add(keys[0])  # forgotten: delivered again, as before the packing
    assert repr(seen) == f"<SeenSet {window}/{window}>"
