"""An experiment's summary: a table per config (mean and 95% CI over seeds), PNG plots and a
self-contained HTML report (the plots embedded as data URIs, no outside files or scripts)."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from .config import Experiment
from .runner import TrialResult

METRICS = ("mean_return", "hit_rate", "mean_rating", "coverage")


@dataclass(frozen=True)
class ConfigSummary:
    config: str
    metric: str
    mean: float
    ci95_low: float
    ci95_high: float
    seeds: int


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.shape[0] < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, x.shape[0] - 1) * x.std(ddof=1) / np.sqrt(x.shape[0]))
    return mean, mean - half, mean + half


def summarise(experiment: Experiment, results: Sequence[TrialResult]) -> list[ConfigSummary]:
    rows = []
    for config in experiment.configs:
        mine = [r for r in results if r.trial.config == config]
        for metric in METRICS:
            mean, low, high = _interval([r.metrics[metric] for r in mine])
            rows.append(ConfigSummary(config, metric, mean, low, high, len(mine)))
    return rows


def _plot(summary: Sequence[ConfigSummary], metric: str, path: Path) -> Path:
    rows = [s for s in summary if s.metric == metric]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.6))
    means = [r.mean for r in rows]
    errs = np.array([[r.mean - r.ci95_low, r.ci95_high - r.mean] for r in rows], dtype=np.float64).T
    ax.bar([r.config for r in rows], means, yerr=np.nan_to_num(errs), capsize=4, color="#4c72b0")
    ax.set_ylabel(f"{metric} (95% CI over seeds)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(
    experiment: Experiment,
    results: Sequence[TrialResult],
    out: Path,
    *,
    backend: str,
    parent_run: str | None,
) -> dict[str, Path]:
    """Write summary.csv, trials.csv, one PNG per metric and report.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(experiment, results)
    files: dict[str, Path] = {}
    with (out / "summary.csv").open("w", newline="") as fh:
        table = csv.DictWriter(fh, fieldnames=list(asdict(summary[0])))
        table.writeheader()
        table.writerows(asdict(s) for s in summary)
    files["summary"] = out / "summary.csv"
    with (out / "trials.csv").open("w", newline="") as fh:
        keys = sorted({k for r in results for k in r.trial.settings})
        metric_keys = list(results[0].metrics)
        writer = csv.writer(fh)
        writer.writerow(["config", "seed", *keys, *metric_keys])
        for r in results:
            writer.writerow(
                [r.trial.config, r.trial.seed, *(r.trial.settings.get(k, "") for k in keys)]
                + [r.metrics[m] for m in metric_keys]
            )
    files["trials"] = out / "trials.csv"
    for metric in ("mean_return", "hit_rate"):
        files[metric] = _plot(summary, metric, out / f"{metric}.png")
    files["html"] = out / "report.html"
    files["html"].write_text(_html(experiment, summary, files, backend, parent_run))
    return files


def _html(
    experiment: Experiment,
    summary: Sequence[ConfigSummary],
    files: dict[str, Path],
    backend: str,
    parent_run: str | None,
) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(m)}</th>" for m in METRICS)
    body = []
    for config in experiment.configs:
        cells = []
        for metric in METRICS:
            s = next(r for r in summary if r.config == config and r.metric == metric)
            ci = "" if np.isnan(s.ci95_low) else f" [{s.ci95_low:.3f}, {s.ci95_high:.3f}]"
            cells.append(f"<td>{s.mean:.3f}{ci}</td>")
        settings = esc(", ".join(f"{k}={v}" for k, v in experiment.configs[config].items()))
        body.append(f"<tr><td title='{settings}'>{esc(config)}</td>{''.join(cells)}</tr>")
    images = []
    for metric in ("mean_return", "hit_rate"):
        data = base64.b64encode(files[metric].read_bytes()).decode()
        images.append(f"<figure><img alt='{metric}' src='data:image/png;base64,{data}'></figure>")
    buf = io.StringIO()
    buf.write("<!doctype html><html><head><meta charset='utf-8'>")
    buf.write(f"<title>{esc(experiment.name)}</title><style>")
    buf.write("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}")
    buf.write("td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>")
    buf.write(f"</head><body><h1>{esc(experiment.name)}</h1>")
    buf.write(
        f"<p>{esc(experiment.kind)} experiment: {len(experiment.configs)} configs x "
        f"{len(experiment.seeds)} seeds ({esc(str(experiment.seeds))}), run {esc(backend)}"
        + (f", MLflow parent run {esc(parent_run)}" if parent_run else "")
        + ". Mean over seeds with a 95% Student-t interval.</p>"
    )
    buf.write(f"<table><tr><th>config</th>{head}</tr>{''.join(body)}</table>")
    buf.write("".join(images))
    buf.write("</body></html>")
    return buf.getvalue()
