"""``marquee ingest ...`` and ``marquee graph ...``: import data into the graph, inspect it.

Every import parses and validates its files into one GraphBatch before the store is touched,
then applies it with a single ``upsert`` (all or nothing). Bad input ends the command with a
one-line error naming file and line, and exit code 2.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from features.graph.schema import EdgeKind, VertexKind
from marquee.home import Home, resolve_home

if TYPE_CHECKING:
    from features.graph.batch import GraphBatch
    from features.graph.store import GraphStore, UpsertReport
    from features.importers.repairs import Repairs

log = logging.getLogger(__name__)

ingest_app = typer.Typer(
    help="Import movie data (MovieLens, HetRec side data, RecBole, synthetic) into the graph.",
    no_args_is_help=True,
)
graph_app = typer.Typer(help="Inspect the movie knowledge graph.", no_args_is_help=True)

HETREC_ENV = "MARQUEE_HETREC_DIR"

out = Console()
err = Console(stderr=True)

Strict = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse bad optional values (years, timestamps, ids, title decoration, encoding) "
        "instead of repairing them: the first one ends the import with its file and line.",
    ),
]


def _repairs(strict: bool) -> Repairs:
    from features.importers.repairs import Repairs

    return Repairs(strict=strict)


def _home(ctx: typer.Context) -> Home:
    obj = ctx.obj
    return obj if isinstance(obj, Home) else resolve_home(None)


def _open(home: Home) -> AbstractContextManager[GraphStore]:
    """The home's graph store (ArangoDB when MARQUEE_ARANGO_URL is set, else embedded)."""
    from features.graph.factory import opened_store

    return opened_store(home)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _ingest(
    ctx: typer.Context,
    what: str,
    source: Path | None,
    build: Callable[[GraphStore], GraphBatch],
    repairs: Repairs | None = None,
    notes: list[str] | None = None,
) -> None:
    """Open the store, build and validate the batch (merged with what the graph holds), upsert
    it once, print what changed, then the repairs made and any ``notes`` the build left."""
    from features.graph.batch import GraphDataError
    from features.graph.store import GraphStoreError
    from features.importers.merge import merge_with_existing

    try:
        with _open(_home(ctx)) as store:
            with err.status(f"Reading {what} ..."):
                batch = merge_with_existing(build(store), store)
            with err.status(f"Writing {len(batch):,} vertices and edges to the graph ..."):
                report = store.upsert(batch)
    except GraphDataError as exc:
        raise _fail(str(exc)) from None
    except GraphStoreError as exc:
        raise _fail(f"graph store: {exc}", code=1) from None
    _print_report(what, source, report)
    if repairs is not None and repairs.kinds:
        out.print(f"Repaired {repairs.total:,} values (--strict refuses them):", highlight=False)
        for line in repairs.lines():
            out.print(f"  {line}", highlight=False, soft_wrap=True)
    for note in notes or []:
        out.print(note, highlight=False, soft_wrap=True)


def _print_report(what: str, source: Path | None, report: UpsertReport) -> None:
    origin = f" from {source}" if source is not None else ""
    if not report.changed:
        out.print(f"{what}{origin}: already in the graph, nothing changed.", highlight=False)
        return
    out.print(f"{what}{origin}: imported.", highlight=False)
    table = Table()
    table.add_column("collection")
    table.add_column("created", justify="right")
    table.add_column("updated", justify="right")
    for name in sorted(set(report.created) | set(report.updated)):
        created, updated = report.created.get(name, 0), report.updated.get(name, 0)
        if created or updated:
            table.add_row(name, f"{created:,}", f"{updated:,}")
    out.print(table)


@ingest_app.command("movielens")
def ingest_movielens(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help="A MovieLens folder (ml-latest(-small) CSVs, ML-1M .dat or ML-100K u.* files). "
            "Default: the bundled ml-latest-small sample."
        ),
    ] = None,
    strict: Strict = False,
) -> None:
    """Import MovieLens movies, users, ratings, genres and tags."""
    from features.datasets import bundled_movielens
    from features.importers.movielens import load_movielens

    folder = path if path is not None else bundled_movielens()
    fixes = _repairs(strict)
    _ingest(ctx, "MovieLens", folder, lambda _store: load_movielens(folder, fixes), fixes)


@ingest_app.command("hetrec")
def ingest_hetrec(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(
            help=f"The hetrec2011-movielens-2k folder (default: ${HETREC_ENV}). "
            "Import MovieLens first: side data joins only movies whose IMDb ids agree."
        ),
    ] = None,
    strict: Strict = False,
) -> None:
    """Add HetRec 2011 directors, genres, countries, tags and posters to the graph's movies."""
    from features.importers.hetrec import load_hetrec

    if path is None:
        env = os.environ.get(HETREC_ENV)
        if not env:
            raise _fail(f"give the HetRec folder as PATH or set {HETREC_ENV}")
        path = Path(env)
    folder = path
    fixes = _repairs(strict)

    def build(store: GraphStore) -> GraphBatch:
        batch, report = load_hetrec(folder, store, fixes)
        err.print(
            f"HetRec: {report.agreeing:,} of {report.hetrec_movies:,} movies agree on the IMDb "
            f"id ({report.imdb_mismatch:,} disagree, {report.not_in_graph:,} not in the graph); "
            f"{report.directed_movies:,} get directors.",
            highlight=False,
        )
        return batch

    _ingest(ctx, "HetRec", folder, build, fixes)


@ingest_app.command("recbole")
def ingest_recbole(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A RecBole atomic data set folder (.inter, .item, .link, .kg).")
    ],
    strict: Strict = False,
) -> None:
    """Import a RecBole data set: interactions, items and mapped knowledge-graph relations."""
    from features.importers.recbole import load_recbole

    fixes = _repairs(strict)
    notes: list[str] = []

    def build(_store: GraphStore) -> GraphBatch:
        batch, report = load_recbole(path, fixes)
        if report.mapped:
            notes.append("Knowledge-graph triples mapped, per relation:")
            notes.extend(f"  {k}: {v:,}" for k, v in sorted(report.mapped.items()))
        if report.performances:
            notes.append(f"  ({report.performances:,} through performance records)")
        if report.unknown_relations:
            total = sum(report.unknown_relations.values())
            notes.append(f"Relations not mapped (left out, {total:,} triples):")
            notes.extend(f"  {k}: {v:,}" for k, v in report.unknown_relations.items())
        if report.unlinked_triples:
            notes.append(
                f"{report.unlinked_triples:,} mapped triples left out: their film is no item"
            )
        return batch

    _ingest(ctx, "RecBole", path, build, fixes, notes)


@ingest_app.command("synthetic")
def ingest_synthetic(
    ctx: typer.Context,
    movies: Annotated[int, typer.Option(min=1, help="Number of movies.")] = 100_000,
    people: Annotated[int, typer.Option(min=0, help="Number of people (cast and crew).")] = 300_000,
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 10_000,
    ratings_per_user: Annotated[int, typer.Option(min=1, help="Ratings per user.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same graph).")] = 0,
) -> None:
    """Generate a synthetic graph of the given size. The defaults are the scale the benchmarks
    use (about 1.6M edges); pass smaller sizes for a quick look."""
    from features.importers.synthetic import generate_synthetic

    _ingest(
        ctx,
        f"Synthetic graph (seed {seed})",
        None,
        lambda _store: generate_synthetic(
            movies=movies,
            people=people,
            users=users,
            ratings_per_user=ratings_per_user,
            seed=seed,
        ),
    )


@graph_app.command("stats")
def graph_stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Count the vertices and edges of each kind in the graph."""
    from features.graph.store import GraphStoreError

    try:
        with _open(_home(ctx)) as store:
            counts = store.counts()
    except GraphStoreError as exc:
        raise _fail(f"graph store: {exc}", code=1) from None
    vertices = {k.value: int(counts.get(k.value, 0)) for k in VertexKind}
    edges = {k.value: int(counts.get(k.value, 0)) for k in EdgeKind}
    if as_json:
        typer.echo(json.dumps({"vertices": vertices, "edges": edges}, indent=2))
        return
    table = Table(title="Graph")
    table.add_column("kind")
    table.add_column("collection")
    table.add_column("count", justify="right")
    for name, n in vertices.items():
        table.add_row("vertex", name, f"{n:,}")
    for name, n in edges.items():
        table.add_row("edge", name, f"{n:,}")
    out.print(table)


from features import cli_remote as _cli_remote  # noqa: E402,F401  (registers tmdb and trakt)
