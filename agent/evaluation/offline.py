"""Offline ranking evaluation on real logged ratings, no simulator, under two protocols.

(a) Full ranking: each user's ratings split 80/20 in time order; every item the user did not
    rate in the train part is ranked; relevant = the user's test items (any rating).
    Precision@k, Recall@k, NDCG@k.
(b) DRR protocol (Liu et al., 2018): only the user's own test items are ranked; relevant =
    rating >= 4. Precision@k, NDCG@k over users with at least k test ratings.
Cold start (``cold_split``): a seeded share of the users keep only their first n interactions
    in the train part; everything after them is their test part, ranked as in (a).

Protocol (a) also reports how personal the top k lists are: the number of distinct movies
across all users' lists (``distinct_topk``) and the largest share of lists that one movie
appears in (``max_topk_share``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from agent.evaluation.ranking_metrics import ndcg_at_k, precision_at_k, recall_at_k

# Scores every item for a batch of users (rows of the train matrix): (n_batch, n_items).
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TimeSplit:
    """Per-user time-ordered split of a ratings frame (columns src, dst, rating, timestamp)."""

    user_keys: np.ndarray
    item_keys: np.ndarray
    train: pd.DataFrame  # columns: user, item (indices), rating, timestamp
    test: pd.DataFrame

    @property
    def n_users(self) -> int:
        return len(self.user_keys)

    @property
    def n_items(self) -> int:
        return len(self.item_keys)

    def train_matrix(self, binary: bool = True) -> sp.csr_matrix:
        values = np.ones(len(self.train)) if binary else self.train["rating"].to_numpy()
        return sp.csr_matrix(
            (values, (self.train["user"].to_numpy(), self.train["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )


def time_split(ratings: pd.DataFrame, train_fraction: float = 0.8) -> TimeSplit:
    """Split each user's ratings by time: the first ``train_fraction`` go to train."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    missing = {"src", "dst", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings frame lacks columns {sorted(missing)}")
    user_keys, users = np.unique(ratings["src"].astype(str).to_numpy(), return_inverse=True)
    item_keys, items = np.unique(ratings["dst"].astype(str).to_numpy(), return_inverse=True)
    frame = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": ratings["rating"].to_numpy(dtype=np.float32),
            "timestamp": ratings["timestamp"].to_numpy(dtype=np.int64),
        }
    ).sort_values(["user", "timestamp", "item"], kind="stable")
    rank = frame.groupby("user").cumcount().to_numpy()
    size = frame.groupby("user")["item"].transform("size").to_numpy()
    in_train = rank < np.ceil(size * train_fraction)
    return TimeSplit(
        user_keys=user_keys,
        item_keys=item_keys,
        train=frame[in_train].reset_index(drop=True),
        test=frame[~in_train].reset_index(drop=True),
    )


def cold_split(
    ratings: pd.DataFrame, first_n: int = 10, cold_fraction: float = 0.2, seed: int = 0
) -> TimeSplit:
    """A seeded ``cold_fraction`` of the users with more than ``first_n`` ratings keep only
    their first ``first_n`` (in time) in the train part; the rest of theirs is the test part.
    Every other user is wholly in the train part."""
    if first_n <= 0 or not 0.0 < cold_fraction < 1.0:
        raise ValueError(
            f"need first_n > 0 and cold_fraction in (0, 1), got {first_n}, {cold_fraction}"
        )
    full = time_split(ratings, 0.5)  # only for its indexing; parts rebuilt below
    frame = pd.concat([full.train, full.test]).sort_values(
        ["user", "timestamp", "item"], kind="stable"
    )
    rank = frame.groupby("user").cumcount().to_numpy()
    size = frame.groupby("user")["item"].transform("size").to_numpy()
    rng = np.random.default_rng(seed)
    cold_users = rng.random(full.n_users) < cold_fraction
    cold = cold_users[frame["user"].to_numpy()] & (size > first_n)
    in_test = cold & (rank >= first_n)
    return TimeSplit(
        user_keys=full.user_keys,
        item_keys=full.item_keys,
        train=frame[~in_test].reset_index(drop=True),
        test=frame[in_test].reset_index(drop=True),
    )


def popularity_scorer(split: TimeSplit) -> Scorer:
    """Most-popular: every user gets the train interaction counts."""
    counts = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items).astype(float)
    return lambda users: np.tile(counts, (len(users), 1))


def random_scorer(split: TimeSplit, seed: int = 0) -> Scorer:
    """Uniform random scores (a fresh draw per call, from one seeded generator): the floor."""
    rng = np.random.default_rng(seed)
    return lambda users: rng.random((len(users), split.n_items))


def oracle_scorer(split: TimeSplit) -> Scorer:
    """Scores each user's test items by their test rating (+1, so every test item outranks
    every other item). It READS THE TEST LABELS: it is the ceiling of each protocol (what a
    perfect ranker would score), printed to show which targets are feasible, never a model."""
    test = split.test
    table = sp.csr_matrix(
        (test["rating"].to_numpy() + 1.0, (test["user"].to_numpy(), test["item"].to_numpy())),
        shape=(split.n_users, split.n_items),
    )
    return lambda users: table[users].toarray()


def evaluate_full_ranking(
    scorer: Scorer, split: TimeSplit, k: int = 10, batch: int = 256
) -> dict[str, float]:
    """Protocol (a): mean Precision@k, Recall@k, NDCG@k over users with test items."""
    train = split.train_matrix()
    test_items = split.test.groupby("user")["item"].apply(set)
    users = test_items.index.to_numpy()
    p, r, n = [], [], []
    shown = np.zeros(split.n_items, dtype=np.int64)
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        scores = np.asarray(scorer(chunk), dtype=np.float64).copy()
        seen = train[chunk]
        scores[seen.nonzero()] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        for row, u in enumerate(chunk):
            ranked = top[row][np.argsort(-scores[row, top[row]], kind="stable")].tolist()
            shown[ranked] += 1
            rel = test_items[u]
            p.append(precision_at_k(ranked, rel, k))
            r.append(recall_at_k(ranked, rel, k))
            n.append(ndcg_at_k(ranked, rel, k))
    return {
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "ndcg": float(np.mean(n)),
        "users": float(len(users)),
        "distinct_topk": float(np.count_nonzero(shown)),
        "max_topk_share": float(shown.max() / max(len(users), 1)),
    }


def evaluate_drr(
    scorer: Scorer, split: TimeSplit, k: int = 10, relevant_min: float = 4.0
) -> dict[str, float]:
    """Protocol (b): rank each user's own test items; relevant = rating >= ``relevant_min``."""
    groups = split.test.groupby("user")
    users = np.array([u for u, g in groups if len(g) >= k])
    p, n = [], []
    for start in range(0, len(users), 256):
        chunk = users[start : start + 256]
        scores = np.asarray(scorer(chunk), dtype=np.float64)
        for row, u in enumerate(chunk):
            g = groups.get_group(u)
            items = g["item"].to_numpy()
            order = np.argsort(-scores[row, items], kind="stable")
            ranked = items[order].tolist()
            rel = set(items[g["rating"].to_numpy() >= relevant_min].tolist())
            p.append(precision_at_k(ranked, rel, k))
            n.append(ndcg_at_k(ranked, rel, k))
    return {"precision": float(np.mean(p)), "ndcg": float(np.mean(n)), "users": float(len(users))}
