"""A tiny hand-made movie graph, small enough to check every number by brute force."""

from __future__ import annotations

import pandas as pd

from features.catalog import Catalog
from features.graph.schema import EdgeKind

# Movies m1..m8. Genres: a (m1 m2 m3 m4), b (m3 m5 m6), c (m7). m8 has no content edges.
GENRES = {"m1": "a", "m2": "a", "m3": "a|b", "m4": "a", "m5": "b", "m6": "b", "m7": "c", "m8": ""}
DIRECTED = [("p1", "m1"), ("p1", "m5"), ("p2", "m6"), ("p2", "m7")]
TAGGED = [("m2", "t1"), ("m4", "t1"), ("m4", "t1")]  # a duplicate edge counts once
SIMILAR = [("m1", "m7"), ("m7", "m1"), ("m2", "m8")]  # both directions count twice
# (user, movie, rating, timestamp)
RATINGS = [
    ("u1", "m1", 5.0, 1),
    ("u1", "m2", 4.0, 2),
    ("u1", "m5", 2.0, 3),
    ("u2", "m3", 4.5, 1),
    ("u2", "m1", 1.0, 2),
    ("u2", "m6", 4.0, 3),
    ("u3", "m2", 3.0, 1),
    ("u3", "m4", 5.0, 2),
    ("u3", "m7", 4.0, 3),
    ("u3", "m1", 4.0, 4),
    ("u4", "m5", 3.5, 1),
    ("u4", "m6", 4.5, 2),
]


def tiny_frames() -> dict[str, object]:
    movies = pd.DataFrame(
        {
            "key": list(GENRES),
            "title": [f"Movie {k}" for k in GENRES],
            "year": [2000 + i for i in range(len(GENRES))],
            "genres": [
                g.replace("a", "Alpha").replace("b", "Beta").replace("c", "Gamma")
                for g in GENRES.values()
            ],
        }
    )
    in_genre = pd.DataFrame(
        [(m, g) for m, gs in GENRES.items() for g in gs.split("|") if g], columns=["src", "dst"]
    )
    genre_vertices = pd.DataFrame({"key": ["a", "b", "c"], "name": ["Alpha", "Beta", "Gamma"]})
    ratings = pd.DataFrame(RATINGS, columns=["src", "dst", "rating", "timestamp"])
    edges = {
        EdgeKind.IN_GENRE: in_genre,
        EdgeKind.DIRECTED: pd.DataFrame(DIRECTED, columns=["src", "dst"]),
        EdgeKind.TAGGED: pd.DataFrame(TAGGED, columns=["src", "dst"]),
        EdgeKind.SIMILAR_TO: pd.DataFrame(SIMILAR, columns=["src", "dst"]),
    }
    return {"movies": movies, "ratings": ratings, "edges": edges, "genre_vertices": genre_vertices}


def tiny_catalog() -> Catalog:
    return Catalog.from_frames(**tiny_frames())  # type: ignore[arg-type]
