"""The ``marquee`` console script: one typer app that gathers each package's commands."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from marquee.home import resolve_home

app = typer.Typer(
    name="marquee",
    help="Marquee: a movie recommender that learns from what people watch.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option("--home", help="Home folder (default: $MARQUEE_HOME or a per-user folder)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug output.")] = False,
) -> None:
    """Marquee: a movie recommender that learns from what people watch."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = resolve_home(home)


def _register() -> None:
    """Attach each package's sub-commands (each package owns its CLI module)."""
    from agent.ab_cli import ab_app
    from agent.cli import register as register_agent
    from agent.sweep_cli import experiment_command
    from features.cli import graph_app, ingest_app
    from serving.ab_cli import register as register_ab_report
    from serving.autopilot_cli import register as register_autopilot
    from serving.cli import register as register_serving
    from serving.plex.cli import plex_app
    from serving.radarr.cli import radarr_app

    app.add_typer(ingest_app, name="ingest")
    app.add_typer(graph_app, name="graph")
    register_agent(app)
    register_ab_report(ab_app)
    app.add_typer(ab_app, name="ab")
    app.command("experiment")(experiment_command)
    register_serving(app)
    register_autopilot(app)
    app.add_typer(plex_app, name="plex")
    app.add_typer(radarr_app, name="radarr")


_register()


def main() -> None:
    app()
