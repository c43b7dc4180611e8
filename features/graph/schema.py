"""The movie knowledge graph's model: vertex kinds, edge kinds and their attributes.

Every store (embedded or ArangoDB) holds exactly this model, so that importers, traversals and
the state builder never depend on which store is behind them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class VertexKind(StrEnum):
    """Vertex collections. The value is the collection name in every store."""

    MOVIE = "movies"
    PERSON = "people"
    GENRE = "genres"
    TAG = "tags"
    USER = "users"


class EdgeKind(StrEnum):
    """Edge collections. The value is the collection name in every store."""

    ACTED_IN = "acted_in"
    DIRECTED = "directed"
    WROTE = "wrote"
    PRODUCED = "produced"
    SHOT = "shot"  # the cinematographer
    COMPOSED = "composed"  # the composer (of the score)
    IN_GENRE = "in_genre"
    TAGGED = "tagged"
    FROM_COUNTRY = "from_country"  # movie -> tag vertex naming the country
    IN_LANGUAGE = "in_language"  # movie -> tag vertex naming the language
    MADE_BY = "made_by"  # movie -> tag vertex naming the production company
    RATED = "rated"
    WATCHED = "watched"
    NOT_INTERESTED = "not_interested"
    SIMILAR_TO = "similar_to"


@dataclass(frozen=True)
class Column:
    """One typed attribute column. ``dtype`` is a numpy dtype string; ``default`` fills gaps."""

    name: str
    dtype: str
    default: object


@dataclass(frozen=True)
class EdgeSpec:
    """Which vertex kinds an edge kind joins, and the attributes it carries."""

    src: VertexKind
    dst: VertexKind
    columns: tuple[Column, ...] = ()


# Attribute columns per vertex kind. Every vertex also has a string ``key`` (unique per kind).
# Strings are stored as str ("" when unknown), integers as int64 (0 when unknown), floats as
# float32/float64 (NaN when unknown). ``genres`` and ``countries`` are "|"-joined strings.
VERTEX_COLUMNS: dict[VertexKind, tuple[Column, ...]] = {
    VertexKind.MOVIE: (
        Column("title", "str", ""),
        Column("year", "int64", 0),
        Column("imdb_id", "str", ""),  # "tt0114709"
        Column("tmdb_id", "int64", 0),
        Column("genres", "str", ""),  # "Adventure|Animation"
        Column("poster_url", "str", ""),
        Column("countries", "str", ""),
        Column("summary", "str", ""),
        Column("studio", "str", ""),
        Column("runtime", "int64", 0),  # minutes
        Column("original_language", "str", ""),  # ISO 639-1, "en"
    ),
    VertexKind.PERSON: (Column("name", "str", ""),),
    VertexKind.GENRE: (Column("name", "str", ""),),
    VertexKind.TAG: (Column("name", "str", ""),),
    VertexKind.USER: (Column("name", "str", ""),),
}

_TS = Column("timestamp", "int64", 0)  # seconds since the epoch

EDGE_SPECS: dict[EdgeKind, EdgeSpec] = {
    EdgeKind.ACTED_IN: EdgeSpec(
        VertexKind.PERSON, VertexKind.MOVIE, (Column("order", "int64", 0),)
    ),
    EdgeKind.DIRECTED: EdgeSpec(VertexKind.PERSON, VertexKind.MOVIE),
    EdgeKind.WROTE: EdgeSpec(VertexKind.PERSON, VertexKind.MOVIE),
    EdgeKind.PRODUCED: EdgeSpec(VertexKind.PERSON, VertexKind.MOVIE),
    EdgeKind.SHOT: EdgeSpec(VertexKind.PERSON, VertexKind.MOVIE),
    EdgeKind.COMPOSED: EdgeSpec(VertexKind.PERSON, VertexKind.MOVIE),
    EdgeKind.IN_GENRE: EdgeSpec(VertexKind.MOVIE, VertexKind.GENRE),
    EdgeKind.TAGGED: EdgeSpec(
        VertexKind.MOVIE, VertexKind.TAG, (Column("weight", "float32", 1.0),)
    ),
    EdgeKind.FROM_COUNTRY: EdgeSpec(VertexKind.MOVIE, VertexKind.TAG),
    EdgeKind.IN_LANGUAGE: EdgeSpec(VertexKind.MOVIE, VertexKind.TAG),
    EdgeKind.MADE_BY: EdgeSpec(VertexKind.MOVIE, VertexKind.TAG),
    EdgeKind.RATED: EdgeSpec(
        VertexKind.USER, VertexKind.MOVIE, (Column("rating", "float32", float("nan")), _TS)
    ),
    EdgeKind.WATCHED: EdgeSpec(
        VertexKind.USER, VertexKind.MOVIE, (_TS, Column("completion", "float32", 100.0))
    ),
    EdgeKind.NOT_INTERESTED: EdgeSpec(VertexKind.USER, VertexKind.MOVIE, (_TS,)),
    EdgeKind.SIMILAR_TO: EdgeSpec(
        VertexKind.MOVIE, VertexKind.MOVIE, (Column("score", "float32", 1.0),)
    ),
}

# Edge kinds that link a movie to a non-user vertex ("content" edges): the ones a traversal
# may follow from movie to movie through a shared neighbour.
CONTENT_EDGES: tuple[EdgeKind, ...] = (
    EdgeKind.ACTED_IN,
    EdgeKind.DIRECTED,
    EdgeKind.WROTE,
    EdgeKind.PRODUCED,
    EdgeKind.SHOT,
    EdgeKind.COMPOSED,
    EdgeKind.IN_GENRE,
    EdgeKind.TAGGED,
    EdgeKind.FROM_COUNTRY,
    EdgeKind.IN_LANGUAGE,
    EdgeKind.MADE_BY,
)
PEOPLE_EDGES: tuple[EdgeKind, ...] = (
    EdgeKind.ACTED_IN,
    EdgeKind.DIRECTED,
    EdgeKind.WROTE,
    EdgeKind.PRODUCED,
    EdgeKind.SHOT,
    EdgeKind.COMPOSED,
)
USER_EDGES: tuple[EdgeKind, ...] = (EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)

# Default weight per edge kind for k-hop path counts: sharing a director says more than
# sharing a genre. Callers may pass their own.
DEFAULT_HOP_WEIGHTS: dict[EdgeKind, float] = {
    EdgeKind.DIRECTED: 1.0,
    EdgeKind.WROTE: 0.8,
    EdgeKind.ACTED_IN: 0.5,
    EdgeKind.COMPOSED: 0.4,
    EdgeKind.SHOT: 0.4,
    EdgeKind.PRODUCED: 0.3,
    EdgeKind.TAGGED: 0.3,
    EdgeKind.MADE_BY: 0.1,
    EdgeKind.IN_GENRE: 0.05,
    EdgeKind.FROM_COUNTRY: 0.02,
    EdgeKind.IN_LANGUAGE: 0.02,
    EdgeKind.SIMILAR_TO: 1.0,
}

# A rating at or above this counts as a positive signal ("the user liked it").
POSITIVE_RATING = 4.0


def movie_key(movielens_id: int | str) -> str:
    """The vertex key of a movie known by its MovieLens id (MovieLens ids are one global space)."""
    return str(int(movielens_id))


def slug(text: str) -> str:
    """A stable vertex key for a name: lower case, runs of non-alphanumerics become '_'.

    ArangoDB keys allow only a restricted alphabet, so every key built from free text goes
    through here.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    out: list[str] = []
    prev_us = False
    for ch in folded.strip().lower():
        if ch.isascii() and ch.isalnum():
            out.append(ch)
            prev_us = False
        elif not prev_us:
            out.append("_")
            prev_us = True
    s = "".join(out).strip("_")
    return s or "_"
