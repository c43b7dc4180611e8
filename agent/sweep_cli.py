"""``marquee experiment CONFIG.toml [--ray [ADDRESS]]``: a grid of settings x seeds."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agent.cli import _progress, _world, console, err
from marquee.home import Home

logger = logging.getLogger(__name__)


def experiment_command(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="The experiment's TOML file.")],
    address: Annotated[
        str | None,
        typer.Argument(help="With --ray: a Ray cluster's address (default: local Ray)."),
    ] = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Run the trials as Ray tasks (needs marquee[ray]).")
    ] = False,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Run the trials here, one after another.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default: <home>/experiments/<name>).")
    ] = None,
    cpus: Annotated[int | None, typer.Option(help="CPUs for local Ray (default: all).")] = None,
) -> None:
    """Run every config x seed of CONFIG.toml as Ray tasks (local Ray when installed and it
    starts, else in this process; a cluster at ADDRESS after --ray) or in this process, track
    them in MLflow (a parent run, a child run per trial) and write a summary table, PNG plots
    and a self-contained HTML report."""
    from mlflow import MlflowClient

    from agent.sweeps.config import ExperimentConfigError, load_experiment
    from agent.sweeps.report import summarise, write_report
    from agent.sweeps.runner import RayStartError, RayUnavailableError, run_experiment

    if ray and in_process:
        raise typer.BadParameter("choose --ray or --in-process, not both")
    if address and not ray:
        raise typer.BadParameter("an ADDRESS goes after --ray")
    try:
        experiment = load_experiment(config)
    except ExperimentConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    home: Home = ctx.obj
    world = _world(home)
    backend = "ray" if ray else "in-process" if in_process else "auto"
    trials = experiment.trials()
    with _progress() as progress:
        task = progress.add_task("trials", total=len(trials))
        try:
            results, parent, used = run_experiment(
                world,
                experiment,
                backend=backend,
                address=address,
                num_cpus=cpus,
                tracking_uri=home.tracking_uri,
                artifacts_dir=home.artifacts_dir,
                on_trial=lambda _: progress.advance(task),
            )
        except RayStartError as exc:  # --ray and Ray cannot start: one line, no traceback
            err.print(f"[bold red]error:[/] {exc} (--in-process runs without Ray)",
                      highlight=False, soft_wrap=True)  # fmt: skip
            raise typer.Exit(1) from None
        except (RayUnavailableError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from exc
    folder = out or (home.root / "experiments" / experiment.name)
    files = write_report(experiment, results, folder, backend=used, parent_run=parent)
    if parent is not None:
        client = MlflowClient(tracking_uri=home.tracking_uri)
        for path in files.values():
            client.log_artifact(parent, str(path), artifact_path="report")
    table = Table(title=f"{experiment.name}: {len(trials)} trials ({used})")
    for col in ("config", "mean return [95% CI]", "hit rate", "coverage"):
        table.add_column(col)
    summary = summarise(experiment, results)
    for name in experiment.configs:
        row = {s.metric: s for s in summary if s.config == name}
        r = row["mean_return"]
        table.add_row(
            name,
            f"{r.mean:.3f} [{r.ci95_low:.3f}, {r.ci95_high:.3f}]",
            f"{row['hit_rate'].mean:.3f}",
            f"{row['coverage'].mean:.4f}",
        )
    console.print(table)
    console.print(f"report: {files['html']}")
    if parent is not None:
        console.print(f"MLflow parent run: {parent}")
