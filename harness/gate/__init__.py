"""`harness gate`: a performance gate for pull requests that catches real regressions and ignores noise.

``cases`` (the hot-path benchmarks), ``plant`` (an exact planted slowdown for proofs), ``worker``
(runs inside each revision), ``decision`` (pure statistics), ``runner`` (processes and callgrind),
``revisions`` (git worktrees and acknowledgements), ``report`` (table, JSON, markdown) and ``gate``
(the command).
"""
