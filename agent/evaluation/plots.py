"""PNG plots of evaluation results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from agent.evaluation.simulated import PolicyReport


def plot_returns(
    reports: Sequence[PolicyReport],
    path: Path,
    curve: Sequence[tuple[int, float]] | None = None,
) -> Path:
    """Bar chart of mean return with 95% CIs per policy; beside it the learning curve
    (eval return against training steps) when one is given."""
    ncols = 2 if curve else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0][0]
    names = [r.policy for r in reports]
    means = [r.mean_return for r in reports]
    errs = [
        [r.mean_return - r.ci95_low for r in reports],
        [r.ci95_high - r.mean_return for r in reports],
    ]
    ax.bar(names, means, yerr=errs, capsize=4, color="#4c72b0")
    ax.set_ylabel("mean return per episode (95% CI)")
    ax.set_title("held-out simulated users")
    ax.tick_params(axis="x", rotation=30)
    if curve:
        steps, values = zip(*curve, strict=True)
        axes[0][1].plot(steps, values, marker="o")
        axes[0][1].set_xlabel("training steps")
        axes[0][1].set_ylabel("eval mean return")
        axes[0][1].set_title("learning curve")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
