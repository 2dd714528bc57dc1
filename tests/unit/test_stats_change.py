"""harness.stats.change: a planted 10% slowdown is found; A/A comparisons stay quiet."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.stats import change as C
from harness.stats import histograms as H


def _series(seed: int, scale: float = 1.0, n: int = 40, per: int = 150) -> H.BucketSeries:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = H.new_histogram()
        vals, cnt = np.unique(np.rint(rng.lognormal(np.log(10_000), 0.5, per) * scale).astype(np.int64),
                              return_counts=True)
        for v, c in zip(vals, cnt, strict=True):
            h.record_value(int(v), int(c))
        out.append(H.counts_array(h))
    return H.series_from_counts(out)


def test_planted_ten_percent_slowdown_is_a_regression() -> None:
    comps = C.compare_series({"op": (_series(1), _series(2, 1.10))}, n_boot=400)
    c = comps[0]
    assert c.change == "regression"
    assert c.ratio.lo > 1.0 and c.ratio.value == pytest.approx(1.10, abs=0.03)


def test_planted_speedup_is_an_improvement() -> None:
    assert C.compare_series({"op": (_series(1), _series(2, 0.85))}, n_boot=400)[0].change == "improvement"


def test_a_a_comparisons_are_quiet() -> None:
    pairs = {f"op{i}": (_series(100 + i), _series(200 + i)) for i in range(12)}
    comps = C.compare_series(pairs, n_boot=300)
    assert all(c.change == "no change" for c in comps)


def test_small_real_change_below_the_noise_threshold_is_not_called() -> None:
    comps = C.compare_series({"op": (_series(1, n=200), _series(2, 1.02, n=200))}, n_boot=300, noise=0.05)
    assert comps[0].change == "no change"


def test_samples_comparison_and_stability() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.03, 30)
    head = rng.normal(1.1, 0.03, 30)
    same = rng.normal(1.0, 0.03, 30)
    comps = C.compare_samples({"slow": (list(base), list(head)), "same": (list(base), list(same))})
    assert [c.change for c in comps] == ["regression", "no change"]
    assert not C.flag_unstable(base).unstable
    noisy = np.concatenate([rng.normal(1.0, 0.02, 80), rng.normal(3.0, 0.1, 20)])
    st_ = C.flag_unstable(noisy)
    assert st_.unstable and st_.reasons
    assert C.flag_unstable([1.0, 2.0]).unstable


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert C.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert C.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert C.holm([]) == []
    with pytest.raises(ConfigError, match="holm"):
        C.adjust(p, "bonferroni")  # type: ignore[arg-type]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_p_values_are_valid_and_not_smaller(p: list[float]) -> None:
    for adj in (C.holm(p), C.benjamini_hochberg(p)):
        assert all(0.0 <= a <= 1.0 for a in adj)
        assert all(a >= x - 1e-12 for a, x in zip(adj, p, strict=True))
    assert all(h >= b - 1e-12 for h, b in zip(C.holm(p), C.benjamini_hochberg(p), strict=True))


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        C.ratio_ci_samples([1.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match="statistic"):
        C.ratio_ci_series(_series(1, n=5), _series(2, n=5), statistic="bogus")
