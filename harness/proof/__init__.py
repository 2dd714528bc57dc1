"""Proofs about the harness itself, run on this machine.

- :mod:`harness.proof.aa`: the A/A proof of a whole ``harness run``: the same build run N times
  must give the same verdicts (``python -m harness.proof.aa --runs 5``).

The gate has its own proof (false-alarm and miss rates of the PR gate) in :mod:`harness.gate.proof`.
"""
