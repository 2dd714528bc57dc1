"""`harness gate`: a performance gate for pull requests that catches real regressions and ignores noise.

Micro tier: ``cases`` (the hot-path benchmarks), ``plant`` (an exact planted slowdown for proofs),
``worker`` (runs inside each revision), ``runner`` (processes and callgrind), ``micro`` (the tier).
End-to-end tier: ``e2eplan`` (the ABBA windows), ``e2erig`` (one anvil, one feed, each revision's
bot in turn), ``e2emetrics`` and ``e2estats`` (figures and decisions), ``e2e`` (the tier).
Shared: ``decision`` (pure statistics), ``mde`` (minimum detectable effect), ``budget`` (``--budget``),
``revisions`` (git worktrees and acknowledgements), ``report`` and ``e2ereport`` (table, JSON,
markdown), ``gateargs`` and ``gate`` (the command), ``proof`` and ``proof_e2e`` (the proofs).
"""
