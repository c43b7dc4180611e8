"""Pieces shared by the importers: genre and tag vertices and edges."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.graph.schema import slug

NO_GENRES = {"(no genres listed)", "unknown", ""}


def slugs(names: pd.Series) -> pd.Series:
    """``schema.slug`` of each name, computed once per distinct name."""
    table = {n: slug(n) for n in pd.unique(names)}
    return names.map(table)


def clean_genres(genres: pd.Series) -> pd.Series:
    """'|'-joined genre strings without the "(no genres listed)" / "unknown" markers."""
    lists = genres.fillna("").astype(str).str.split("|")
    return lists.map(lambda gs: "|".join(g.strip() for g in gs if g.strip() not in NO_GENRES))


def genre_links(movie_keys: pd.Series, genres: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genre vertices (key slug(name), name) and movie->genre ``in_genre`` edges from
    '|'-joined genre strings aligned with ``movie_keys``."""
    pairs = pd.DataFrame({"src": movie_keys.to_numpy(), "name": genres.to_numpy()})
    pairs["name"] = pairs["name"].astype(str).str.split("|")
    pairs = pairs.explode("name")
    pairs["name"] = pairs["name"].astype(str).str.strip()
    pairs = pairs[~pairs["name"].isin(NO_GENRES)]
    pairs["dst"] = slugs(pairs["name"])
    vertices = (
        pairs.drop_duplicates("dst")[["dst", "name"]]
        .rename(columns={"dst": "key"})
        .reset_index(drop=True)
    )
    edges = pairs.drop_duplicates(["src", "dst"])[["src", "dst"]].reset_index(drop=True)
    return vertices, edges


def tag_links(
    movie_keys: pd.Series, tags: pd.Series, weights: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tag vertices (key slug(text), name: first spelling met) and movie->tag ``tagged`` edges
    whose weight sums ``weights`` (1 per row by default: the number of applications)."""
    frame = pd.DataFrame(
        {
            "src": movie_keys.to_numpy(),
            "name": tags.astype(str).str.strip().to_numpy(),
            "weight": np.ones(len(tags)) if weights is None else np.asarray(weights, "float64"),
        }
    )
    frame["dst"] = slugs(frame["name"])
    vertices = (
        frame.drop_duplicates("dst")[["dst", "name"]]
        .rename(columns={"dst": "key"})
        .reset_index(drop=True)
    )
    edges = frame.groupby(["src", "dst"], sort=True)["weight"].sum().reset_index()
    return vertices, edges
