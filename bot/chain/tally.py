"""Per-account aggregates of the ledger that are never evicted: what a reconciliation needs after a long run.

The ledger keeps full records only for live intents and the last ``keep_recent`` terminal ones.
A run that outlives the ring can still be reconciled against the chain through these tallies,
which every terminal record updates exactly once (``Ledger.transition`` is the only caller):

- ``states``: terminal records per state;
- ``mined``: the nonces of records that ended ``mined_ok`` or ``reverted`` (nonce fillers
  included), as disjoint ranges;
- ``may_land``: the nonces of records that ended ``failed`` while their bytes could still land
  (the nonce was never released), so a late inclusion has an explanation;
- ``doubled``: a second mined record at a nonce already mined. The chain cannot hold two
  transactions at one nonce, so this is always a ledger bug worth a loud report.

Bound: memory per account is O(disjoint nonce ranges), not O(transactions). Nonces are mined in
order apart from the few released and refilled later, so a long run holds a handful of ranges;
at worst (every other nonce missing) it is one range per two transactions. At most
``MAX_LISTED`` doubled nonces are listed (the count is exact).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 100
_MINED = frozenset({"mined_ok", "reverted"})
FILLER_LABEL = "nonce_filler"


class NonceRanges:
    """A set of non-negative integers stored as sorted, disjoint, non-adjacent closed ranges."""

    __slots__ = ("_count", "_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._count = 0

    def add(self, n: int) -> bool:
        """Add ``n``; False (and nothing changes) when it was already present."""
        i = bisect_right(self._starts, n) - 1  # the last range starting at or below n
        if i >= 0 and n <= self._ends[i]:
            return False
        joins_left = i >= 0 and self._ends[i] == n - 1
        joins_right = i + 1 < len(self._starts) and self._starts[i + 1] == n + 1
        if joins_left and joins_right:
            self._ends[i] = self._ends[i + 1]
            del self._starts[i + 1], self._ends[i + 1]
        elif joins_left:
            self._ends[i] = n
        elif joins_right:
            self._starts[i + 1] = n
        else:
            self._starts.insert(i + 1, n)
            self._ends.insert(i + 1, n)
        self._count += 1
        return True

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        i = bisect_right(self._starts, n) - 1
        return i >= 0 and n <= self._ends[i]

    def __len__(self) -> int:
        return self._count

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    @property
    def highest(self) -> int | None:
        return self._ends[-1] if self._ends else None

    def __repr__(self) -> str:
        shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.ranges()[:5])
        more = "" if len(self._starts) <= 5 else f", … {len(self._starts) - 5} more"
        return f"NonceRanges({self._count} nonces: {shown}{more})"


@dataclass(slots=True)
class AccountTally:
    states: Counter[str] = field(default_factory=Counter)
    mined: NonceRanges = field(default_factory=NonceRanges)
    may_land: NonceRanges = field(default_factory=NonceRanges)
    doubled: int = 0
    doubled_nonces: list[int] = field(default_factory=list)
    fillers: int = 0

    def settle(self, state: str, nonce: int | None, label: str, *, may_land: bool) -> None:
        """One record reached terminal ``state`` (called once per record)."""
        self.states[state] += 1
        if nonce is None:
            return
        if state in _MINED:
            if label == FILLER_LABEL:
                self.fillers += 1
            if not self.mined.add(nonce):
                self.doubled += 1
                if len(self.doubled_nonces) < MAX_LISTED:
                    self.doubled_nonces.append(nonce)
        elif may_land:
            self.may_land.add(nonce)

    def as_json(self) -> dict[str, Any]:
        mined = self.states["mined_ok"] + self.states["reverted"]
        return {
            "states": dict(self.states),
            "mined": mined,
            "fillers": self.fillers,
            "mined_nonces": [list(r) for r in self.mined.ranges()],
            "highest_confirmed": self.mined.highest,
            "may_land": len(self.may_land),
            "may_land_nonces": [list(r) for r in self.may_land.ranges()],
            "doubled": self.doubled,
            "doubled_nonces": list(self.doubled_nonces),
        }

    def __repr__(self) -> str:
        return (f"AccountTally(states={dict(self.states)}, mined={self.mined!r}, may_land={len(self.may_land)}, "
                f"doubled={self.doubled})")
