"""``marquee autopilot``: guarded promotion over the running service's logged traffic
(serving.autopilot), once or in a loop beside ``marquee serve`` and ``marquee learn``."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from marquee.home import Home

console = Console()
log = logging.getLogger(__name__)


def _off_policy_parts(home: Home, settings: Any, store: Any, registry: Any) -> Any:
    """The service's Ranker (same candidates and settings) and an actor loader, or None when
    the home holds no trained world (no ranking bundle to re-score slates with)."""
    from agent.actor import actor_fn
    from agent.factory import load_agent
    from features.bundle import RankingBundle
    from serving.autopilot import OffPolicyParts
    from serving.policy_source import ranker_for

    try:
        bundle = RankingBundle.load(home.world_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        log.warning("no ranking bundle in %s (%s): no off-policy stage", home.world_dir, exc)
        return None
    ranker = ranker_for(bundle, settings)

    def actor_of(version: int) -> Any:
        import mlflow

        mlflow.set_tracking_uri(registry.tracking_uri)  # resolve downloads via the global URI
        pv = registry.resolve(str(version))
        return actor_fn(load_agent(str(pv.zip_path), algo=pv.algo))

    return OffPolicyParts(ranker, store, actor_of)


def autopilot_command(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One step, then exit (cron).")] = False,
    every: Annotated[float, typer.Option(help="Seconds between steps in the loop.")] = 60.0,
    min_slates_per_arm: Annotated[
        int, typer.Option(help="Slates each arm serves before a challenger is judged.")
    ] = 300,
    looks: Annotated[
        int,
        typer.Option(
            help="Analyses of the online A/B, equally spaced up to --min-slates-per-arm "
            "(group-sequential: a clear win promotes early, a challenger not ahead from half "
            "the plan on stops early; 1 = one test at the end)."
        ),
    ] = 1,
    watch_slates_per_arm: Annotated[
        int,
        typer.Option(help="Slates per arm a new champion is watched beside the previous one."),
    ] = 300,
    candidate_alias: Annotated[
        str, typer.Option(help="Alias of the learner's versions ('' : only the challenger).")
    ] = "candidate",
    champion_arm: Annotated[str, typer.Option(help="The A/B arm serving 'champion'.")] = "champion",
    challenger_arm: Annotated[
        str, typer.Option(help="The A/B arm serving 'challenger'.")
    ] = "challenger",
    off_policy: Annotated[
        bool, typer.Option(help="Estimate the challenger off-policy first (needs the world).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the off-policy bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per step.")] = False,
) -> None:
    """Compare the registry's challenger with the champion on the live logs (off-policy, then
    the online A/B with its SRM check and guardrails, or the interleaved teams' return when
    MARQUEE_AB's challenger arm interleaves against the champion arm), promote only on a
    significant win,
    roll back on a guardrail drop, watch a new champion beside the previous one, and log every
    decision to MLflow (experiment marquee-promotion)."""
    from agent.promotion import PromotionRules
    from agent.registry import PolicyRegistry
    from features.graph.factory import open_store
    from features.graph.schema import VertexKind
    from serving.autopilot import Autopilot, AutopilotConfig
    from serving.wiring import ServiceConfigError, service_redis, service_settings

    home: Home = ctx.obj
    try:
        settings = service_settings(home)
    except ServiceConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    arms = {arm.name for arm in settings.ab.arms}
    if settings.ab.mode != "split":
        raise typer.BadParameter("the autopilot judges an A/B split (MARQUEE_AB mode 'split')")
    for name in (champion_arm, challenger_arm):
        if name not in arms:
            raise typer.BadParameter(
                f"MARQUEE_AB has no arm {name!r} (arms: {', '.join(sorted(arms))})"
            )
    by_name = {arm.name: arm for arm in settings.ab.arms}
    if by_name[champion_arm].against is not None:
        raise typer.BadParameter(f"the champion arm {champion_arm!r} must serve plain slates")
    against = by_name[challenger_arm].against
    if against not in (None, champion_arm):
        raise typer.BadParameter(
            f"the challenger arm {challenger_arm!r} interleaves against {against!r}, "
            f"not the champion arm {champion_arm!r}"
        )
    if every <= 0:
        raise typer.BadParameter(f"--every must be > 0, got {every}")
    try:
        config = AutopilotConfig(
            champion_arm=champion_arm,
            challenger_arm=challenger_arm,
            candidate_alias=candidate_alias or None,
            min_slates_per_arm=min_slates_per_arm,
            watch_slates_per_arm=watch_slates_per_arm,
            temperature=settings.temperature if settings.temperature > 0 else 0.5,
            interleaved=against is not None,
            shares=(by_name[champion_arm].share, by_name[challenger_arm].share),
            seed=seed,
            rules=PromotionRules(looks=looks),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    registry = PolicyRegistry(home.tracking_uri, settings.model_name)
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    store = open_store(home)
    try:
        catalogue = int(store.counts().get(VertexKind.MOVIE.value, 0))
        sampled = settings.temperature > 0  # top-k slates (propensity 1) say nothing off-policy
        if off_policy and not sampled:
            log.warning("MARQUEE_TEMPERATURE is 0: no off-policy stage")
        parts = (
            _off_policy_parts(home, settings, store, registry) if off_policy and sampled else None
        )
        with service_redis(settings) as handle:
            pilot = Autopilot(
                registry,
                handle.client,
                settings.redis_prefix,
                catalogue_size=catalogue,
                config=config,
                off_policy_parts=parts,
                artifacts_dir=home.artifacts_dir,
            )
            while not stop.is_set():
                result = pilot.step()
                if as_json:
                    typer.echo(json.dumps(result.as_dict(), default=str))
                else:
                    console.print(f"{result.action}: {result.detail}")
                    if result.run_id:
                        console.print(f"  MLflow run {result.run_id}")
                if once:
                    break
                stop.wait(every)
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.command("autopilot")(autopilot_command)
