"""harness.run.soakrate: the soak's default rate scales with the machine; --rate wins; both are recorded."""

from __future__ import annotations

from harness.run.scenarios import Profile
from harness.run.soakrate import DEFAULT_RATE, MAX_RATE, MIN_RATE, choose_rate, soak_scenario, with_rate


def test_the_rate_follows_the_cpu_reference_within_bounds() -> None:
    here, how = choose_rate({"cpu_ref_per_s": 5_500_000.0}, memray=True)
    assert here == 20.0 and "from the calibration" in how and "with memray" in how
    slower, _ = choose_rate({"cpu_ref_per_s": 2_200_000.0}, memray=True)  # a machine 2.5x slower
    assert slower == 5.0 and slower < here
    assert choose_rate({"cpu_ref_per_s": 5_500_000.0}, memray=False)[0] == MAX_RATE  # no memray: 6x cheaper
    assert choose_rate({"cpu_ref_per_s": 1_000.0}, memray=True)[0] == MIN_RATE


def test_without_a_calibration_the_fixed_default_says_so() -> None:
    rate, how = choose_rate(None, memray=True)
    assert rate == DEFAULT_RATE and "no calibration" in how
    assert choose_rate({"cpu_ref_per_s": None}, memray=False)[0] == DEFAULT_RATE


def test_with_rate_replaces_only_the_soak_scenarios_rate() -> None:
    prof = Profile("soak", (soak_scenario(DEFAULT_RATE, 90.0, True),))
    got = with_rate(prof, 35.0, True).scenarios[0]
    assert got.steps[0].rate == 35.0 and got.duration_s == 90.0 * 60 and "35 trades/s" in got.description
