"""Freebase film relations (RecBole/KB4Rec ``.kg`` triples) mapped onto the graph model.

Each relation is known in both directions: ``film.film.directed_by`` (head: the film) and its
inverse ``film.director.film`` (tail: the film). Relation names may come wrapped as URIs
(``<http://rdf.freebase.com/ns/film.film.genre>``) or marked as reversed (``~rel``,
``rel_reverse``, ``rel.reverse``, ``rel_inverse``): both are understood.

Actors usually sit behind a performance record (a Freebase "CVT" node, unnamed):
film -starring-> performance -performance.actor-> actor, and actor -actor.film-> performance
-performance.film-> film. Performance records are resolved to their actors when the KG holds
the second hop; a starring tail that is no performance record is taken as the actor itself.

============================================  ============  =====================
relation (film end)                           edge kind     other end
============================================  ============  =====================
film.film.directed_by / film.director.film    directed      person
film.film.written_by, film.film.story_by,     wrote         person
film.writer.film, ...film_story_credits
film.film.starring / film.actor.film          acted_in      person (via CVTs)
film.film.produced_by, ...executive_prod...   produced      person
film.film.cinematography / ...cinematographer shot          person
film.film.music / film.music_contributor.film composed     person
film.film.genre / ...films_in_this_genre      in_genre      genre
film.film.subjects / film.film_subject.films  tagged        tag
film.film.production_companies / ...films     made_by       tag
film.film.country                             from_country  tag
film.film.language                            in_language   tag
film.film.sequel, film.film.prequel           similar_to    film
============================================  ============  =====================

Entities carry no names in these files: vertices get the slugged entity id as key and an
empty name (explanations then name the kind, "the same director"); a tail that is not a
Freebase id ("Drama") is its own name.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from features.graph.batch import GraphBatch
from features.graph.schema import EDGE_SPECS, EdgeKind, VertexKind
from features.importers.common import slugs

FilmEnd = Literal["head", "tail", "both"]

_FORWARD: dict[str, EdgeKind] = {  # film.film.X: head is the film
    "film.film.directed_by": EdgeKind.DIRECTED,
    "film.film.written_by": EdgeKind.WROTE,
    "film.film.story_by": EdgeKind.WROTE,
    "film.film.screenplay_by": EdgeKind.WROTE,
    "film.film.starring": EdgeKind.ACTED_IN,
    "film.film.produced_by": EdgeKind.PRODUCED,
    "film.film.executive_produced_by": EdgeKind.PRODUCED,
    "film.film.cinematography": EdgeKind.SHOT,
    "film.film.music": EdgeKind.COMPOSED,
    "film.film.genre": EdgeKind.IN_GENRE,
    "film.film.subjects": EdgeKind.TAGGED,
    "film.film.production_companies": EdgeKind.MADE_BY,
    "film.film.country": EdgeKind.FROM_COUNTRY,
    "film.film.language": EdgeKind.IN_LANGUAGE,
}
_INVERSE: dict[str, EdgeKind] = {  # X.film: tail is the film
    "film.director.film": EdgeKind.DIRECTED,
    "film.writer.film": EdgeKind.WROTE,
    "film.film_story_contributor.film_story_credits": EdgeKind.WROTE,
    "film.actor.film": EdgeKind.ACTED_IN,
    "film.producer.film": EdgeKind.PRODUCED,
    "film.producer.films_executive_produced": EdgeKind.PRODUCED,
    "film.cinematographer.film": EdgeKind.SHOT,
    "film.music_contributor.film": EdgeKind.COMPOSED,
    "film.film_genre.films_in_this_genre": EdgeKind.IN_GENRE,
    "film.film_subject.films": EdgeKind.TAGGED,
    "film.production_company.films": EdgeKind.MADE_BY,
    "film.film_country.films": EdgeKind.FROM_COUNTRY,
    "film.film_language.films": EdgeKind.IN_LANGUAGE,
}
_BOTH: dict[str, EdgeKind] = {
    "film.film.sequel": EdgeKind.SIMILAR_TO,
    "film.film.prequel": EdgeKind.SIMILAR_TO,
}
PERFORMANCE_ACTOR = "film.performance.actor"  # performance record -> actor
PERFORMANCE_FILM = "film.performance.film"  # performance record -> film

RELATIONS: dict[str, tuple[EdgeKind, FilmEnd]] = {
    **{r: (k, "head") for r, k in _FORWARD.items()},
    **{r: (k, "tail") for r, k in _INVERSE.items()},
    **{r: (k, "both") for r, k in _BOTH.items()},
}
_URI = re.compile(r"^<?(?:https?://rdf\.freebase\.com/ns/|ns:|fb:)?(?P<rel>[^>]*)>?$")
_REVERSED = re.compile(r"^~(?P<a>.+)$|^(?P<b>.+?)[._](?:reverse|inverse|rev)$")
_MID = re.compile(r"^[mg]\.[0-9a-z_]+$")


def relation_of(name: str) -> tuple[EdgeKind, FilmEnd] | None:
    """The mapping of a relation name (URI-wrapped or reversed forms too), else None."""
    m = _URI.match(name.strip())
    rel = m["rel"] if m else name.strip()
    found = RELATIONS.get(rel)
    if found is not None:
        return found
    r = _REVERSED.match(rel)
    if r is None:
        return None
    base = RELATIONS.get(r["a"] or r["b"])
    if base is None:
        return None
    kind, end = base
    return kind, {"head": "tail", "tail": "head", "both": "both"}[end]  # type: ignore[return-value]


def _plain(name: str) -> str:
    m = _URI.match(name.strip())
    return m["rel"] if m else name.strip()


@dataclass
class KgReport:
    """Per relation, triples mapped; relations not mapped, with counts; triples whose film end
    is no linked item; performance records resolved to actors."""

    mapped: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    unlinked: int = 0
    performances: int = 0


def map_triples(kg: pd.DataFrame, film_of: pd.Series, batch: GraphBatch) -> KgReport:
    """Add the edges and vertices of ``kg`` (columns head, rel, tail) to ``batch``.
    ``film_of`` maps an entity id to the movie key of the item it stands for."""
    report = KgReport()
    rel = kg["rel"].map(_plain)
    cvt_actor = _pairs(kg, rel, PERFORMANCE_ACTOR, "head", "tail")
    cvt_film = _pairs(kg, rel, PERFORMANCE_FILM, "head", "tail")
    mapping = {r: relation_of(r) for r in pd.unique(rel)}
    for r in (PERFORMANCE_ACTOR, PERFORMANCE_FILM):
        mapping[r] = (EdgeKind.ACTED_IN, "head")  # joined below, counted as mapped
    unmapped = rel[rel.map(lambda r: mapping[r] is None)]
    report.unmapped = dict(sorted(Counter(unmapped).items(), key=lambda kv: (-kv[1], kv[0])))
    cvt_actors = cvt_actor.groupby("a")["b"].agg(list)
    per_kind: dict[EdgeKind, list[pd.DataFrame]] = {}
    for name, group in kg.groupby(rel, sort=True):
        found = mapping[str(name)]
        if found is None or name in (PERFORMANCE_ACTOR, PERFORMANCE_FILM):
            continue
        kind, end = found
        film_col, other_col = ("tail", "head") if end == "tail" else ("head", "tail")
        pairs = pd.DataFrame({"film": group[film_col], "other": group[other_col]})
        if kind is EdgeKind.ACTED_IN:
            pairs, resolved = _through_performances(pairs, end, cvt_actors, cvt_film, film_of)
            report.performances += resolved
        films = pairs["film"].map(film_of)
        ok = films.notna()
        if end == "both":
            others = pairs["other"].map(film_of)
            ok &= others.notna()
            pairs = pd.DataFrame({"film": films[ok], "other": others[ok]})
        else:
            pairs = pd.DataFrame({"film": films[ok], "other": pairs["other"][ok]})
        report.unlinked += int((~ok).sum())
        report.mapped[str(name)] = int(ok.sum())
        per_kind.setdefault(kind, []).append(pairs)
    joined = cvt_film.merge(cvt_actor, on="a", suffixes=("_film", "_actor"))
    if len(joined):
        films = joined["b_film"].map(film_of)
        ok = films.notna()
        pairs = pd.DataFrame({"film": films[ok], "other": joined["b_actor"][ok]})
        per_kind.setdefault(EdgeKind.ACTED_IN, []).append(pairs)
        report.mapped[f"{PERFORMANCE_FILM} + {PERFORMANCE_ACTOR}"] = int(ok.sum())
    for kind, frames in per_kind.items():
        _add(batch, kind, pd.concat(frames, ignore_index=True))
    return report


def _pairs(kg: pd.DataFrame, rel: pd.Series, name: str, a: str, b: str) -> pd.DataFrame:
    rows = kg[rel == name]
    return pd.DataFrame({"a": rows[a].to_numpy(), "b": rows[b].to_numpy()})


def _through_performances(
    pairs: pd.DataFrame,
    end: FilmEnd,
    cvt_actors: pd.Series,
    cvt_film: pd.DataFrame,
    film_of: pd.Series,
) -> tuple[pd.DataFrame, int]:
    """Acting pairs (film, other) with performance records replaced: a starring tail that is
    a record becomes its actor(s); an actor.film tail that is a record becomes its film."""
    if end == "head":  # film.film.starring: other may be a performance record
        is_cvt = pairs["other"].isin(cvt_actors.index)
        direct = pairs[~is_cvt]
        via = pairs[is_cvt].assign(other=pairs["other"][is_cvt].map(cvt_actors)).explode("other")
        return pd.concat([direct, via], ignore_index=True), int(is_cvt.sum())
    film_by_cvt = cvt_film.drop_duplicates("a").set_index("a")["b"]
    is_cvt = ~pairs["film"].isin(film_of.index) & pairs["film"].isin(film_by_cvt.index)
    out = pairs.copy()
    out.loc[is_cvt, "film"] = pairs["film"][is_cvt].map(film_by_cvt)
    return out, int(is_cvt.sum())


def _add(batch: GraphBatch, kind: EdgeKind, pairs: pd.DataFrame) -> None:
    """Vertices for the other ends and the edges, oriented as the schema wants."""
    if kind is EdgeKind.SIMILAR_TO:
        batch.add_edges(kind, pd.DataFrame({"src": pairs["film"], "dst": pairs["other"]}))
        return
    spec = EDGE_SPECS[kind]
    other_kind = spec.src if spec.dst is VertexKind.MOVIE else spec.dst
    tokens = pairs["other"].astype(str)
    keys = slugs(tokens)
    names = tokens.where(~tokens.str.match(_MID.pattern), "")
    batch.add_vertices(
        other_kind,
        pd.DataFrame({"key": keys.to_numpy(), "name": names.to_numpy()}).drop_duplicates("key"),
    )
    if other_kind is spec.src:
        edges = pd.DataFrame({"src": keys.to_numpy(), "dst": pairs["film"].to_numpy()})
    else:
        edges = pd.DataFrame({"src": pairs["film"].to_numpy(), "dst": keys.to_numpy()})
    batch.add_edges(kind, edges.drop_duplicates())
