"""The offline experiment reads any MovieLens layout and reports every model's row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from env.world import BUNDLED_MOVIELENS
from experiments.offline_ranking import Args, main

MODELS = {"ease", "most-popular", "item-bias", "mf-rating", "random", "oracle (test labels)"}
AGENT_MODELS = {"served", "rp3beta", "retriever (a = 0)"}
KEYS = {
    "model",
    "a_precision",
    "a_ndcg",
    "b_precision",
    "b_ndcg",
    "distinct_top10",
    "max_top10_share",
}


def _subset(users: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(BUNDLED_MOVIELENS / "ratings.csv")
    ratings = ratings[ratings["userId"] <= users]
    movies = pd.read_csv(BUNDLED_MOVIELENS / "movies.csv")
    return ratings, movies[movies["movieId"].isin(ratings["movieId"])]


def _write_100k(folder: Path) -> Path:
    ratings, movies = _subset()
    folder.mkdir()
    genres = sorted({g for gs in movies["genres"] for g in gs.split("|")})
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)))
    lines = []
    for m in movies.itertuples():
        flags = "|".join("1" if g in m.genres.split("|") else "0" for g in genres)
        lines.append(f"{m.movieId}|{m.title}|01-Jan-1995||http://x|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1", "replace"))
    (folder / "u.data").write_text(
        "".join(
            f"{r.userId}\t{r.movieId}\t{max(1, round(r.rating))}\t{r.timestamp}\n"
            for r in ratings.itertuples()
        )
    )
    return folder


def _write_1m(folder: Path) -> Path:
    ratings, movies = _subset()
    folder.mkdir()
    (folder / "movies.dat").write_bytes(
        "".join(f"{m.movieId}::{m.title}::{m.genres}\n" for m in movies.itertuples()).encode(
            "latin-1", "replace"
        )
    )
    (folder / "ratings.dat").write_text(
        "".join(
            f"{r.userId}::{r.movieId}::{max(1, round(r.rating))}::{r.timestamp}\n"
            for r in ratings.itertuples()
        )
    )
    return folder


@pytest.mark.parametrize("layout", ["100k", "1m"])
def test_baseline_rows_on_any_layout(tmp_path: Path, layout: str) -> None:
    folder = (_write_100k if layout == "100k" else _write_1m)(tmp_path / layout)
    out = main(Args(data=folder, skip_agent=True, skip_cold=True))
    rows = {r["model"]: r for r in out["rows"]}  # type: ignore[attr-defined]
    assert set(rows) == MODELS
    assert all(set(r) >= KEYS for r in rows.values())
    assert rows["oracle (test labels)"]["a_precision"] >= rows["ease"]["a_precision"]
    assert rows["ease"]["a_precision"] > rows["random"]["a_precision"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # two small worlds and two brief trainings; ~1 min on a quiet machine
def test_served_rows_with_a_briefly_trained_agent(tmp_path: Path) -> None:
    folder = _write_100k(tmp_path / "ml-100k")
    out = main(Args(data=folder, timesteps=200, cold_first_n=5))
    rows = {r["model"]: r for r in out["rows"]}  # type: ignore[attr-defined]
    assert set(rows) == MODELS | AGENT_MODELS
    cold = {r["model"] for r in out["cold"]["rows"]}  # type: ignore[index]
    assert cold == (MODELS - {"oracle (test labels)"}) | AGENT_MODELS
    assert 0 < rows["served"]["distinct_top10"] <= 10 * int(out["users"]["a"])  # type: ignore[index]
