"""The fidelity report: every policy measured on real data and in three simulators."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.sim_fidelity import POLICIES, Args, main, rank_agreement
from tests.experiments.test_offline_ranking import _write_100k


@pytest.mark.parametrize(
    ("sim", "real", "tau"),
    [([1, 2, 3, 4], [10, 20, 30, 40], 1.0), ([1, 2, 3, 4], [4, 3, 2, 1], -1.0)],
)
def test_rank_agreement(sim: list[float], real: list[float], tau: float) -> None:
    agreement = rank_agreement(sim, real)
    assert agreement["kendall_tau"] == pytest.approx(tau)
    assert agreement["spearman_rho"] == pytest.approx(tau)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_report_compares_the_three_simulators(tmp_path: Path) -> None:
    folder = _write_100k(tmp_path / "ml-100k")
    plot = tmp_path / "fidelity.png"
    out = main(Args(data=folder, timesteps=200, eval_seeds=2, episodes=3, plot=plot))
    sims = out["simulators"]
    assert set(sims) == {  # type: ignore[arg-type, call-overload]
        "rating-only choice (original)",
        "calibrated choice, invented boredom (previous)",
        "calibrated choice, fitted boredom",
    }
    for sim in sims.values():  # type: ignore[attr-defined]
        assert set(sim["policies"]) == set(POLICIES)
        assert -1.0 <= sim["hit_rate_vs_p10"]["kendall_tau"] <= 1.0
    assert set(out["real"]) == set(POLICIES)  # type: ignore[arg-type, call-overload]
    assert out["choice_fit"]["w_boredom"] is not None  # type: ignore[index]
    assert plot.stat().st_size > 0
