"""``marquee ab simulate``: a simulated A/B of two policy versions or baselines."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.cli import _progress, _world, console
from marquee.home import Home

if TYPE_CHECKING:
    from agent.policies import SlatePolicy

logger = logging.getLogger(__name__)

ab_app = typer.Typer(help="Compare two policy versions: simulated A/B and interleaving.")

WEAKENED_PREFIX = "weakened:"


def resolve_policy(home: Home, name: str) -> SlatePolicy:
    """A baseline (random, most-popular, graph, mf-greedy, oracle), a registered version
    (champion, challenger, 3, latest) or ``weakened:STRENGTH:NAME``, a weakened copy."""
    from agent.baselines.simple import BASELINES
    from agent.evaluation.weakened import WeakenedPolicy
    from agent.factory import load_agent
    from agent.policies import AgentPolicy
    from agent.registry import PolicyNotFoundError, PolicyRegistry

    if name.startswith(WEAKENED_PREFIX):
        strength, _, base = name[len(WEAKENED_PREFIX) :].partition(":")
        try:
            return WeakenedPolicy(resolve_policy(home, base), float(strength))
        except ValueError as exc:
            raise typer.BadParameter(f"{name!r}: {exc}") from exc
    if name in BASELINES:
        return BASELINES[name]()
    try:
        version = PolicyRegistry(home.tracking_uri).resolve(name)
    except PolicyNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from exc
    model = load_agent(str(version.zip_path), algo=version.algo)
    return AgentPolicy(model, name=f"{version.algo}-v{version.version}")


@ab_app.command("simulate")
def simulate_command(
    ctx: typer.Context,
    policy_a: Annotated[str, typer.Argument(metavar="A", help="Arm A: baseline or version.")],
    policy_b: Annotated[str, typer.Argument(metavar="B", help="Arm B: baseline or version.")],
    users: Annotated[int, typer.Option(help="Held-out users (episodes) per seed.")] = 100,
    seeds: Annotated[int, typer.Option(help="Seeds (each draws its own users).")] = 5,
    max_steps: Annotated[int, typer.Option(help="Steps per episode at most.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Both arms on the same held-out simulated users (common random numbers): per-arm
    figures, the paired difference B - A with its 95% CI and p-value, and a power table."""
    from agent.evaluation.ab_simulation import simulate_ab

    home: Home = ctx.obj
    world = _world(home)
    a, b = resolve_policy(home, policy_a), resolve_policy(home, policy_b)
    with _progress() as progress:
        task = progress.add_task("simulating", total=2 * users * seeds)
        result = simulate_ab(
            a,
            b,
            world,
            users=users,
            seeds=tuple(range(seeds)),
            max_steps=max_steps,
            on_episode=lambda: progress.advance(task),
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title=f"simulated A/B: {users} held-out users x {seeds} seeds, paired")
    for col in ("arm", "policy", "mean return", "hit rate", "mean rating", "coverage"):
        table.add_column(col)
    for arm in (result.a, result.b):
        table.add_row(
            arm.arm,
            arm.policy,
            f"{arm.mean_return:.3f}",
            f"{arm.hit_rate:.3f}",
            f"{arm.mean_rating:.2f}",
            f"{arm.coverage:.3f}",
        )
    console.print(table)
    d = result.difference
    console.print(
        f"B - A = {d.estimate:+.3f} [{d.ci95_low:+.3f}, {d.ci95_high:+.3f}] "
        f"({result.relative_lift:+.1%}), paired t p = {d.p_value:.3g}, n = {d.n}"
    )
    power = Table(title="users needed (alpha 0.05, power 0.8)")
    for col in ("lift of A", "difference", "paired (simulator)", "online A/B split (total)"):
        power.add_column(col)
    for row in result.power:
        power.add_row(
            f"{row.lift:.0%}", f"{row.delta:.3f}", f"{row.paired_users:,}", f"{row.ab_users:,}"
        )
    console.print(power)


@ab_app.command("sensitivity")
def sensitivity_command(
    ctx: typer.Context,
    champion: Annotated[str, typer.Argument(help="The champion: baseline or version.")],
    strength: Annotated[
        float, typer.Option(help="Share of the weakened copy's slate swapped for random picks.")
    ] = 0.5,
    challenger: Annotated[
        str | None, typer.Option(help="Compare with this instead of a weakened copy.")
    ] = None,
    users: Annotated[int, typer.Option(help="Held-out users (episodes) per seed.")] = 100,
    seeds: Annotated[int, typer.Option(help="Seeds (each draws its own users).")] = 5,
    max_steps: Annotated[int, typer.Option(help="Steps per episode at most.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Users needed to tell CHAMPION from a weakened copy (or --challenger) by team-draft
    interleaving and by an A/B split, measured on the same simulated users; and their ratio."""
    from agent.evaluation.interleaving import sensitivity

    home: Home = ctx.obj
    world = _world(home)
    a = resolve_policy(home, champion)
    b = resolve_policy(home, challenger or f"{WEAKENED_PREFIX}{strength}:{champion}")
    with _progress() as progress:
        task = progress.add_task("simulating", total=3 * users * seeds)
        result = sensitivity(
            a,
            b,
            world,
            users=users,
            seeds=tuple(range(seeds)),
            max_steps=max_steps,
            on_episode=lambda: progress.advance(task),
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    p, d = result.interleaving, result.ab_difference
    console.print(f"{result.policy_a} (A) against {result.policy_b} (B), {result.users} users")
    console.print(
        f"interleaving: B wins {p.wins_b}, A wins {p.wins_a}, ties {p.ties}; preference "
        f"{p.preference.estimate:+.3f} [{p.preference.ci95_low:+.3f}, "
        f"{p.preference.ci95_high:+.3f}], p = {p.preference.p_value:.3g}"
    )
    console.print(
        f"A/B: return B - A = {d.estimate:+.3f} [{d.ci95_low:+.3f}, {d.ci95_high:+.3f}], "
        f"Welch p = {d.p_value:.3g}"
    )
    console.print(
        f"users needed (alpha 0.05, power 0.8): interleaving {result.interleaving_users_needed:,},"
        f" A/B split {result.ab_users_needed:,} (both arms): ratio {result.ratio:.1f}x"
    )
