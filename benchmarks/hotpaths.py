"""The hot-path micro benchmarks for asv: one parameterised benchmark over the shared case registry.

The registry (``harness/gate/cases.py``) is loaded *by file path* from this checkout, not imported
from the installed package: asv runs these definitions against older commits' code, which may
predate the registry or some of its cases. A case whose module a commit lacks is skipped
(``NotImplementedError`` in ``setup`` is asv's way to say "not applicable").
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_CASES_FILE = Path(__file__).resolve().parents[1] / "harness" / "gate" / "cases.py"


def _load_cases() -> ModuleType:
    name = "_tradebench_bench_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _CASES_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the benchmark cases from {_CASES_FILE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is created
    spec.loader.exec_module(module)
    return module


_cases = _load_cases()


class HotPaths:
    """Time per operation of each hot path (asv calibrates the number of calls per sample)."""

    params: ClassVar[list[list[str]]] = [_cases.case_names()]
    param_names: ClassVar[list[str]] = ["case"]
    warmup_time = 0.2
    min_run_count = 5

    def setup(self, case: str) -> None:
        try:
            self.op: Any = _cases.get_case(case).setup()
        except _cases.CaseUnavailable as exc:
            raise NotImplementedError(str(exc)) from None
        self.op()

    def time_op(self, case: str) -> None:
        self.op()
