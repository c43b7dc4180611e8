"""``marquee radarr add``: "download now" for a movie through Radarr.

Settings come from RADARR_URL and RADARR_API_KEY.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

radarr_app = typer.Typer(
    help="Radarr: add recommended movies for download. Needs RADARR_URL and RADARR_API_KEY.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


@radarr_app.callback()
def _radarr() -> None:
    """Radarr: add recommended movies for download. Needs RADARR_URL and RADARR_API_KEY."""


@radarr_app.command("add")
def add(
    tmdb_id: Annotated[int, typer.Argument(help="The movie's TMDB id (e.g. 862 for Toy Story).")],
    quality_profile: Annotated[
        str | None, typer.Option(help="Quality profile id or name (default: Radarr's first).")
    ] = None,
    root_folder: Annotated[
        str | None, typer.Option(help="Root folder path (default: Radarr's first).")
    ] = None,
    monitored: Annotated[bool, typer.Option(help="Monitor the movie.")] = True,
    search: Annotated[bool, typer.Option(help="Start searching for it at once.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Radarr.")] = 15.0,
) -> None:
    """Add a movie to Radarr by TMDB id and start searching for it."""
    from serving.radarr.client import RadarrClient, RadarrError, RadarrSettings

    try:
        with RadarrClient(RadarrSettings.from_env(timeout=timeout)) as client:
            result = client.add(
                tmdb_id,
                quality_profile=quality_profile,
                root_folder=root_folder,
                monitored=monitored,
                search=search,
            )
    except RadarrError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if result.added:
        what = "searching for it now" if result.searching else "not searching yet"
        out.print(f"Added {result.title} (TMDB {tmdb_id}) to Radarr; {what}.")
    else:
        out.print(f"Radarr already has {result.title} (TMDB {tmdb_id}); nothing to do.")
