"""A/B statistics: SRM check, paired and Welch tests, power, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from agent.evaluation.ab_stats import (
    bootstrap_interval,
    paired_difference,
    power_table,
    proportion_interval,
    srm_check,
    users_needed,
    welch,
)


def test_srm_catches_a_45_55_split_of_2000_users_configured_50_50() -> None:
    check = srm_check({"a": 900, "b": 1100}, {"a": 0.5, "b": 0.5})
    assert not check.ok
    assert check.chi2 == pytest.approx(20.0)
    assert check.p_value < 1e-5


def test_srm_passes_a_true_50_50_split() -> None:
    assert srm_check({"a": 1000, "b": 1000}, {"a": 0.5, "b": 0.5}).ok
    # users assigned by fair coins: the check flags about alpha = 0.1% of such splits
    rng = np.random.default_rng(0)
    flagged = sum(
        not srm_check({"a": int(n), "b": 2000 - int(n)}, {"a": 0.5, "b": 0.5}).ok
        for n in rng.binomial(2000, 0.5, size=2000)
    )
    assert flagged <= 10
    # users assigned by coins biased 45/55 land near 900/1100 and are mostly caught (the
    # chi-square test's power at alpha 0.001 is about 0.87 there)
    caught = sum(
        not srm_check({"a": int(n), "b": 2000 - int(n)}, {"a": 0.5, "b": 0.5}).ok
        for n in rng.binomial(2000, 0.45, size=200)
    )
    assert caught >= 160


def test_srm_uses_configured_shares_and_flags_traffic_to_a_zero_share_arm() -> None:
    assert srm_check({"a": 1800, "b": 200}, {"a": 0.9, "b": 0.1}).ok
    assert not srm_check({"a": 1000, "b": 1000}, {"a": 0.9, "b": 0.1}).ok
    assert not srm_check({"a": 1000, "b": 5}, {"a": 1.0, "b": 0.0}).ok
    with pytest.raises(ValueError, match="without a configured share"):
        srm_check({"c": 3}, {"a": 0.5, "b": 0.5})


def test_paired_and_welch_agree_with_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, 300)
    b = a + rng.normal(0.2, 0.5, 300)
    d = paired_difference(a, b)
    assert d.p_value == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert d.ci95_low < 0.2 < d.ci95_high
    w = welch(a, b)
    assert w.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert w.estimate == pytest.approx(b.mean() - a.mean())


def test_users_needed_matches_the_textbook_formula_and_power_table_orders_lifts() -> None:
    # n = ((1.96 + 0.84) * sd / delta)^2 = 785 for sd 1, delta 0.1
    assert users_needed(1.0, 0.1) == 785
    assert users_needed(1.0, 0.1, arms=2) == 2 * 1570
    rng = np.random.default_rng(2)
    a = rng.normal(2.0, 1.0, 400)
    rows = power_table(a, a + rng.normal(0.0, 0.3, 400))
    assert [r.lift for r in rows] == [0.02, 0.05, 0.10]
    assert rows[0].paired_users > rows[1].paired_users > rows[2].paired_users
    assert all(r.ab_users > r.paired_users for r in rows)  # pairing removes user variance


def test_proportion_interval_and_bootstrap_are_sane_and_seeded() -> None:
    low, high = proportion_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35
    x = np.random.default_rng(3).normal(0.0, 1.0, 500)
    one = bootstrap_interval(x, seed=4)
    assert one == bootstrap_interval(x, seed=4)
    assert one[0] < x.mean() < one[1]
