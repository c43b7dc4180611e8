"""``marquee train`` and ``marquee evaluate``: the researcher's commands for the simulator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from marquee.home import Home

if TYPE_CHECKING:
    from env.world import SimulationWorld

logger = logging.getLogger(__name__)
console = Console()  # results
err = Console(stderr=True)  # progress and status, so `--json > file` stays valid JSON


def _world(
    home: Home,
    rebuild: bool = False,
    slate_features: tuple[str, ...] = (),
    slate_feature_reach: float = 1.0,
) -> SimulationWorld:
    """The home's simulation world, with a status line while it is built."""
    from agent.worlds import NoRatingsError, load_or_build_world, world_dir

    try:
        if world_dir(home).exists() and not rebuild:
            return load_or_build_world(home)
        with err.status("building the simulation world (embeddings, world model)..."):
            return load_or_build_world(
                home,
                rebuild=True,
                slate_features=slate_features,
                slate_feature_reach=slate_feature_reach,
            )
    except NoRatingsError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def train_command(
    ctx: typer.Context,
    timesteps: Annotated[int, typer.Option(help="Environment steps in total.")] = 60_000,
    algo: Annotated[str, typer.Option(help="ddpg or td3.")] = "ddpg",
    n_envs: Annotated[int, typer.Option(help="Simulated users stepped together.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for the agent and environments.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
    run_name: Annotated[str, typer.Option(help="Checkpoint folder and MLflow run name.")] = "train",
    alias: Annotated[
        list[str] | None, typer.Option(help="Registry aliases for the new version.")
    ] = None,
    rebuild_world: Annotated[bool, typer.Option(help="Rebuild the simulation world.")] = False,
    slate_feature: Annotated[
        list[str] | None,
        typer.Option(
            help="A slate feature the action weighs (quality, variety; repeat the option) in a "
            "world built now (a new home or --rebuild-world). Off by default: README."
        ),
    ] = None,
    slate_feature_reach: Annotated[
        float,
        typer.Option(
            help="How far a slate-feature weight of 1 moves a score, as a share of the "
            "retriever base (the bound on the agent's feature corrections), in a world built now."
        ),
    ] = 1.0,
) -> None:
    """Train a policy in the simulator, track it in MLflow and register it."""
    from agent.config import AgentConfig
    from agent.training import TrainConfig, train

    if algo not in ("ddpg", "td3"):
        raise typer.BadParameter(f"algo must be ddpg or td3, not {algo!r}")
    home: Home = ctx.obj
    world = _world(home, rebuild_world, tuple(slate_feature or ()), slate_feature_reach)
    asked = tuple(slate_feature or ())
    if asked and tuple(world.settings.get("slate_features", ())) != asked:
        raise typer.BadParameter(
            f"the home's world was built with slate features "
            f"{list(world.settings.get('slate_features', ()))}, not {list(asked)}: add "
            "--rebuild-world"
        )
    config = TrainConfig(
        agent=AgentConfig(algo=algo, seed=seed),  # type: ignore[arg-type]
        timesteps=timesteps,
        n_envs=n_envs,
        run_name=run_name,
        aliases=tuple(alias or ["challenger"]),
    )
    with _progress() as progress:
        task = progress.add_task("training", total=timesteps)
        result = train(
            home, world, config, resume=resume, on_steps=lambda n: progress.advance(task, n)
        )
    console.print(
        f"trained {result.timesteps} steps in {result.seconds:.0f}s "
        f"({result.timesteps / max(result.seconds, 1e-9):.0f} steps/s); "
        f"run {result.run_id}; registered version {result.version}"
    )


def evaluate_command(
    ctx: typer.Context,
    policies: Annotated[
        list[str] | None,
        typer.Argument(
            help="Baselines (random, most-popular, graph, mf-greedy, oracle) and registered "
            "versions (champion, challenger, 3, latest). Default: all baselines and champion."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds (at least 2; 5 for the report).")] = 5,
    episodes: Annotated[int, typer.Option(help="Episodes per seed.")] = 50,
    estimator: Annotated[
        str,
        typer.Option(
            help="stratified: each seed spreads its episodes evenly over the users and weighs "
            "every slate's reward by the chance the user is still there (less variance); "
            "simple: users drawn at random, sessions as played."
        ),
    ] = "stratified",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the returns here.")] = None,
    against: Annotated[
        str | None,
        typer.Option(
            help="Also give every policy's paired difference from this one (one of the "
            "policies named), with its interval over seeds; JSON becomes "
            '{"policies": [...], "paired": [...]}.'
        ),
    ] = None,
) -> None:
    """Compare policies on the same held-out simulated users (common random numbers)."""
    from agent.baselines.simple import BASELINES
    from agent.evaluation.plots import plot_returns
    from agent.evaluation.simulated import ESTIMATORS, evaluate_policies, paired_differences
    from agent.factory import load_agent
    from agent.policies import AgentPolicy, SlatePolicy
    from agent.registry import PolicyNotFoundError, PolicyRegistry

    home: Home = ctx.obj
    world = _world(home)
    names = policies or [
        *(n for n in BASELINES if n != "ease" or world.retriever is not None),
        "champion",
    ]
    if estimator not in ESTIMATORS:
        raise typer.BadParameter(f"--estimator {estimator!r}: use one of {', '.join(ESTIMATORS)}")
    if against is not None and against not in names:
        raise typer.BadParameter(
            f"--against {against!r} is not among the policies evaluated: {', '.join(names)}"
        )
    chosen: list[SlatePolicy] = []
    curve: list[tuple[int, float]] = []
    registry = PolicyRegistry(home.tracking_uri)
    for name in names:
        if name in BASELINES:
            chosen.append(BASELINES[name]())
            continue
        try:
            version = registry.resolve(name)
        except PolicyNotFoundError as exc:
            raise typer.BadParameter(str(exc)) from exc
        model = load_agent(str(version.zip_path), algo=version.algo)
        chosen.append(AgentPolicy(model, name=f"{version.algo}-v{version.version}"))
        if not curve:  # the learning curve of the first registered version's training run
            history = registry.client.get_metric_history(version.run_id, "eval/mean_return")
            curve = sorted((m.step, m.value) for m in history)
    with _progress() as progress:
        task = progress.add_task("evaluating", total=len(chosen) * seeds * episodes)
        reports = evaluate_policies(
            chosen,
            world,
            seeds=tuple(range(seeds)),
            episodes_per_seed=episodes,
            estimator=estimator,
            on_episode=lambda: progress.advance(task),
        )
    out = plot or (home.root / "evaluation.png")
    plot_returns(reports, out, curve or None)
    paired = [] if against is None else paired_differences(reports, reports[names.index(against)])
    if as_json:
        listed = [r.as_dict() for r in reports]
        if against is None:
            typer.echo(json.dumps(listed, indent=2))
        else:
            both = {"policies": listed, "paired": [p.as_dict() for p in paired]}
            typer.echo(json.dumps(both, indent=2))
        return
    table = Table(
        title=f"held-out users, {seeds} seeds x {episodes} episodes ({estimator} estimator)"
    )
    for col in ("policy", "return", "95% CI", "hit rate", "rating", "coverage", "diversity"):
        table.add_column(col)
    for r in reports:
        table.add_row(
            r.policy,
            f"{r.mean_return:.3f}",
            f"[{r.ci95_low:.3f}, {r.ci95_high:.3f}]",
            f"{r.hit_rate:.3f}",
            f"{r.mean_rating:.2f}",
            f"{r.coverage:.3f}",
            f"{r.diversity:.3f}",
        )
    console.print(table)
    if paired:
        diffs = Table(title=f"paired with {paired[0].reference} (same episodes)")
        for col in ("policy", "return difference", "95% CI", "seeds won"):
            diffs.add_column(col)
        for p in paired:
            diffs.add_row(
                p.policy,
                f"{p.difference.estimate:+.3f}",
                f"[{p.difference.ci95_low:+.3f}, {p.difference.ci95_high:+.3f}]",
                f"{p.seeds_won} of {p.difference.n}",
            )
        console.print(diffs)
    console.print(f"plot: {out}")


def register(app: typer.Typer) -> None:
    """Attach the commands to the root app."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
