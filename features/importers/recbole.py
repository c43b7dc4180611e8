"""RecBole atomic files as a generic source: interactions, items and a knowledge graph.

A RecBole data set folder holds ``<name>.inter`` (user_id, item_id, rating, timestamp) and
optionally ``<name>.item`` (item_id, movie_title, release_year, genre), ``<name>.link``
(item_id -> entity_id) and ``<name>.kg`` (head_id, relation_id, tail_id). Headers name each
field as ``name:type``; fields are tab-separated. Items become movies, entities linked to an
item stand for that movie, and the triples whose relation ``freebase`` maps become edges.
Triples with other relations are counted per relation and logged, never mixed in.

The relation mapping (every Freebase film relation naming a person, genre, subject, company,
country or language, in both directions) lives in ``freebase``.

Ids that are integers keep their value as key (MovieLens-style); other tokens go through
``schema.slug``. Titles read "The Name" however the file writes them ("Name, The"); a bad
optional value (year, timestamp, title decoration) is repaired and counted in ``repairs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EdgeKind, VertexKind
from features.importers.common import genre_links, slugs
from features.importers.errors import ImportFileError
from features.importers.freebase import map_triples
from features.importers.repairs import Repairs
from features.importers.tables import Table, read_table
from features.importers.titles import table_titles

log = logging.getLogger(__name__)

RATING_RANGE = (0.5, 5.0)


@dataclass(frozen=True)
class RecboleReport:
    """What a RecBole import found: per relation, triples used; triples left out and why."""

    interactions: int
    items: int
    mapped: dict[str, int] = field(default_factory=dict)
    unknown_relations: dict[str, int] = field(default_factory=dict)
    unlinked_triples: int = 0  # mapped relation, but the film end is no linked item
    performances: int = 0  # acting triples resolved through performance records


def _find(folder: Path, suffix: str, required: bool) -> Path | None:
    found = sorted(folder.glob(f"*{suffix}"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ImportFileError(folder, f"more than one {suffix} file ({names}); keep one data set")
    if not found:
        if required:
            raise ImportFileError(folder, f"no {suffix} file (not a RecBole atomic data set)")
        return None
    return found[0]


def _atomic(path: Path, required: tuple[str, ...], repairs: Repairs) -> Table:
    """Read an atomic file whose header names fields ``name:type``; columns get the names."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            head = fh.readline().rstrip("\r\n")
    except FileNotFoundError:
        raise ImportFileError(path, "file not found") from None
    except UnicodeDecodeError:
        raise ImportFileError(path, "not valid utf-8 text", 1) from None
    fields = [f.strip() for f in head.split("\t")]
    names = [f.split(":", 1)[0] for f in fields]
    missing = [r for r in required if r not in names]
    if missing:
        hint = " (fields must be tab-separated)" if len(fields) == 1 and " " in head else ""
        raise ImportFileError(path, f"missing columns {missing}; found {fields}{hint}", 1)
    table = read_table(path, tuple(fields), sep="\t", header=True, quoted=False, repairs=repairs)
    table.frame.columns = names
    return table


def _keys(tokens: pd.Series) -> np.ndarray:
    """Vertex keys for id tokens: integers as their value, other tokens slugged."""
    tokens = tokens.astype(str)
    numeric = tokens.str.fullmatch(r"\d+").to_numpy(dtype=bool)
    out = slugs(tokens).to_numpy(dtype=object)
    out[numeric] = tokens[numeric].astype("int64").astype(str).to_numpy()
    return out


def load_recbole(folder: Path, repairs: Repairs | None = None) -> tuple[GraphBatch, RecboleReport]:
    """Parse and validate a RecBole atomic data set folder (nothing is stored)."""
    folder = Path(folder)
    fixes = repairs if repairs is not None else Repairs()
    if not folder.is_dir():
        raise ImportFileError(folder, "not a folder (expected a RecBole data set folder)")
    inter_path = _find(folder, ".inter", required=True)
    assert inter_path is not None
    item_path = _find(folder, ".item", required=False)
    link_path = _find(folder, ".link", required=False)
    kg_path = _find(folder, ".kg", required=False)

    batch = GraphBatch()
    movies = pd.DataFrame({"key": pd.Series(dtype=object)})
    if item_path is not None:
        it = _atomic(item_path, ("item_id",), fixes)
        keys = _keys(it.text("item_id"))
        it.check_unique("item_id", keys)
        movies = pd.DataFrame({"key": keys})
        cols = set(it.frame.columns)
        if "movie_title" in cols:
            title, year = table_titles(it, "movie_title", required=False)
            movies["title"] = title.to_numpy()
            movies["year"] = year
        if "release_year" in cols:
            year = it.years("release_year")
            movies["year"] = np.where(year > 0, year, movies.get("year", 0))
        if "genre" in cols:
            genres = it.text("genre", required=False).str.split().str.join("|")
            movies["genres"] = genres.to_numpy()

    t = _atomic(inter_path, ("user_id", "item_id"), fixes)
    users = _keys(t.text("user_id"))
    items = _keys(t.text("item_id"))
    if item_path is not None:
        t.check_known("item_id", items, pd.Index(movies["key"]), f"item (not in {item_path.name})")
    else:
        movies = pd.DataFrame({"key": pd.unique(items)})
    cols = set(t.frame.columns)
    ts = t.timestamps("timestamp") if "timestamp" in cols else np.zeros(len(t), "int64")
    edges = pd.DataFrame({"src": users, "dst": items, "timestamp": ts})
    if "rating" in cols:
        edges["rating"] = t.floats("rating", low=RATING_RANGE[0], high=RATING_RANGE[1])
        batch.add_edges(EdgeKind.RATED, edges)
    else:
        batch.add_edges(EdgeKind.WATCHED, edges)  # implicit feedback: a view, no rating
    batch.add_vertices(VertexKind.MOVIE, movies)
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": pd.unique(users)}))
    if "genres" in movies.columns:
        genre_v, genre_e = genre_links(movies["key"], movies["genres"])
        batch.add_vertices(VertexKind.GENRE, genre_v)
        batch.add_edges(EdgeKind.IN_GENRE, genre_e)

    report = RecboleReport(interactions=len(t), items=len(movies))
    if kg_path is not None:
        if link_path is None:
            raise ImportFileError(
                kg_path, "a .kg file needs a .link file mapping items to entities"
            )
        report = _knowledge(batch, report, kg_path, link_path, pd.Index(movies["key"]), fixes)
    batch = batch.deduplicated()
    log.info(
        "RecBole: %d interactions, %d items; KG edges per relation %s",
        report.interactions,
        report.items,
        report.mapped,
    )
    fixes.log_summary("RecBole")
    if report.unknown_relations:
        log.warning(
            "RecBole: left out %d triples with unmapped relations: %s",
            sum(report.unknown_relations.values()),
            report.unknown_relations,
        )
    return batch, report


def _knowledge(
    batch: GraphBatch,
    report: RecboleReport,
    kg_path: Path,
    link_path: Path,
    items: pd.Index,
    fixes: Repairs,
) -> RecboleReport:
    """Add KG triples with mapped relations to ``batch``; count the rest."""
    lt = _atomic(link_path, ("item_id", "entity_id"), fixes)
    link_items = _keys(lt.text("item_id"))
    lt.check_known("item_id", link_items, items, "item")
    film_of = pd.Series(link_items, index=lt.text("entity_id").to_numpy())
    film_of = film_of[~film_of.index.duplicated(keep="first")]

    kt = _atomic(kg_path, ("head_id", "relation_id", "tail_id"), fixes)
    kg = pd.DataFrame(
        {
            "head": kt.text("head_id").to_numpy(),
            "rel": kt.text("relation_id").to_numpy(),
            "tail": kt.text("tail_id").to_numpy(),
        }
    )
    kg_report = map_triples(kg, film_of, batch)
    return RecboleReport(
        interactions=report.interactions,
        items=report.items,
        mapped=kg_report.mapped,
        unknown_relations=kg_report.unmapped,
        unlinked_triples=kg_report.unlinked,
        performances=kg_report.performances,
    )
