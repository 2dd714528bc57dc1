"""Benchmark-suite settings that must hold before numpy is imported anywhere in the process."""

from __future__ import annotations

import os

# One BLAS thread: on a 2-core shared box a thread pool measures contention, not the code.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
