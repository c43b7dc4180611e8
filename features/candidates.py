"""Candidate generation: a retriever's top N, graph traversal from the user's positives, plus
popular fallbacks.

With a retriever (``features.retrieval``), its ``n_retrieved`` best unseen movies come first;
the graph candidates not among them follow, then popular fallbacks, up to ``max_candidates``.

Graph candidates use the store's k-hop path-count semantics (``features.graph.store``):
score = sum_{h=1..hops} H^h s over the Catalog's hop operator, seen movies and zero scores
dropped. The best ``graph_share`` of the slots go to them (score descending, row ascending);
the rest, and any slots the graph cannot fill, go to the most popular unseen movies not
already chosen. The result never holds a seen movie and has at most ``max_candidates`` rows.

On graphs of 2M+ hop entries (500K movies), 2-hop graph candidates are the exact path-count
top over a pool of the few thousand movies of highest reach, not over every movie: no pass over
the graph per user, and 99.99% of the full top (features.graph.reach_pool, where the figures
are); smaller graphs score every movie as before.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from features.catalog import Catalog
from features.graph.reach_pool import reach_pool
from features.retrieval import Retriever, zscores
from features.state import MAX_HOPS, UserHistory

# Graph candidates come from 1-2 hops by default: at 3 hops path counts are dominated by hub
# movies (two users' top-150 overlap by Jaccard ~0.6 vs ~0.33 at 2 hops on ml-latest-small),
# the agent's simulated return on held-out users was 3.17 [2.98, 3.36] with 2 hops against
# 2.80 with 3 (5 seeds x 200 episodes, README "Agent defaults"), and a user's first request
# skips a whole-graph pass.
DEFAULT_CANDIDATE_HOPS = 2

_EMPTY = np.zeros(0, dtype=np.int64)
_SLACK = 64  # extra ranked rows cached so that newly seen movies rarely force a re-rank


def khop_scores(
    catalog: Catalog, history: UserHistory, hops: int = MAX_HOPS
) -> npt.NDArray[np.float64]:
    """Path-count score per movie row (0 for seen movies); the store's ``khop_scores``.
    ``hop_sum`` refuses hops outside 1-3."""
    scores = history.hop_sum(catalog.hop, hops)
    scores[history.seen] = 0.0
    return scores


def top_rows(scores: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """Rows of the n largest positive scores, score descending then row ascending."""
    return _best(_at_least(scores, n), scores, n)


def _sampled_cut(scores: npt.NDArray[np.float64], n: int, share: int) -> float | None:
    """A score that about ``share`` x n rows reach, guessed from a strided sample; None on a
    small catalogue (or n <= 0), where a full search costs little. Rows at or above it hold
    the top n and its ties whenever at least n of those the caller wants reach it, so a
    search among them finds the same rows: one comparison pass instead of a partition of
    every score (~10 ms of a first request at 500K movies)."""
    size = scores.shape[0]
    if n <= 0 or n * 16 >= size:
        return None
    step = max(1, size // (n * 8))
    sample = scores[::step]
    k = min(sample.shape[0], max(1, -(-share * n // step)))
    return float(np.partition(sample, sample.shape[0] - k)[sample.shape[0] - k])


def _best(
    rows: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], n: int
) -> npt.NDArray[np.int64]:
    """The first ``n`` of ``rows`` by score descending then row ascending."""
    if rows.shape[0] > n:
        part = np.argpartition(-scores[rows], n - 1)[:n]
        cut = scores[rows[part]].min()
        rows = rows[scores[rows] >= cut]  # keep boundary ties, trimmed below
    order = np.lexsort((rows, -scores[rows]))
    return rows[order][:n].astype(np.int64)


def _at_least(scores: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """Rows of positive scores; on a large catalogue only those reaching ``_sampled_cut``,
    when at least ``n`` do (``top_rows`` is then unchanged)."""
    guess = _sampled_cut(scores, n, share=2)
    if guess is not None and guess > 0:
        found = np.flatnonzero(scores >= guess)
        if found.shape[0] >= n:
            return found
    return np.flatnonzero(scores > 0)


# The cuts top_unseen tries, each reached by ~share x n rows, before searching every unseen row.
# The first is too high for ~10% of users at 500K movies (a blend's few thousand EASE-covered
# rows stand above the rest, so the sample's best is one of them): they searched all 500K rows
# (~4 ms), where a lower cut costs another comparison pass (~0.3 ms).
_UNSEEN_SHARES = (4, 32, 256)


def top_unseen(
    scores: npt.NDArray[np.float64], seen: npt.NDArray[np.bool_], n: int
) -> npt.NDArray[np.int64]:
    """Rows of the ``n`` best scores whose row is not ``seen``, score descending then row
    ascending (fewer when fewer are unseen); on a large catalogue searched among the unseen
    rows reaching a ``_sampled_cut``, the first of ``_UNSEEN_SHARES`` that at least ``n``
    reach."""
    n = min(n, scores.shape[0] - int(np.count_nonzero(seen)))
    if n <= 0:
        return _EMPTY
    for share in _UNSEEN_SHARES:
        guess = _sampled_cut(scores, n, share)
        if guess is None:
            break
        above = np.flatnonzero(scores >= guess)
        above = above[~seen[above]]
        if above.shape[0] >= n:
            return _best(above, scores, n)
    return _best(np.flatnonzero(~seen), scores, n)


def retriever_scores(retriever: Retriever, history: UserHistory) -> npt.NDArray[np.float64]:
    """The retriever's scores for the history as it is now, cached on the history until it
    changes (any new interaction changes them, not only a positive one)."""
    key = ("retriever", retriever.name)
    size = (len(history.items), int(np.count_nonzero(history.seen)))
    hit = history.derived.get(key)
    if isinstance(hit, tuple) and hit[0] == size:
        return hit[1]  # type: ignore[no-any-return]
    scores = retriever.scores(history)
    history.derived[key] = (size, scores)
    return scores


# The base's weight against the agent's correction e . a. At 1 a trained agent's corrections
# outweighed the retriever and cost protocol (a) P@10 (.1225 -> .1182 with the same agent;
# 4: .1218); at 4 they re-order within a few standard deviations of the base. Worlds record
# the weight they were trained with; those from before it existed used 1.
DEFAULT_BASE_WEIGHT = 4.0
LEGACY_BASE_WEIGHT = 1.0


def base_scores(
    retriever: Retriever | None,
    history: UserHistory,
    candidates: npt.NDArray[np.int64],
    weight: float = LEGACY_BASE_WEIGHT,
) -> npt.NDArray[np.float64] | None:
    """The ranking's base: the retriever's scores at the candidates, standardised over them,
    times ``weight`` (None without a retriever). One function for the simulator and the
    service."""
    if retriever is None:
        return None
    return weight * zscores(retriever_scores(retriever, history)[candidates])


class CandidateGenerator:
    """Fixed-size candidate sets for a user (module doc)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        max_candidates: int = 200,
        graph_share: float = 0.75,
        hops: int = DEFAULT_CANDIDATE_HOPS,
        retriever: Retriever | None = None,
        n_retrieved: int = 100,
    ):
        if max_candidates <= 0:
            raise ValueError(f"max_candidates must be positive, got {max_candidates}")
        if not 0.0 <= graph_share <= 1.0:
            raise ValueError(f"graph_share must be in [0, 1], got {graph_share}")
        if hops not in (1, 2, 3):
            raise ValueError(f"hops must be 1, 2 or 3, got {hops}")
        if n_retrieved < 0:
            raise ValueError(f"n_retrieved must be >= 0, got {n_retrieved}")
        self.retriever = retriever
        prepare = getattr(retriever, "prepare", None)
        if callable(prepare):  # what every user's retrieval shares, not on a first request
            prepare()
        self.n_retrieved = min(n_retrieved, max_candidates) if retriever is not None else 0
        self.catalog = catalog
        self.max_candidates = max_candidates
        self.n_graph = round(max_candidates * graph_share)
        self.hops = hops
        self._popular = catalog.popular_order()
        if hops == 2:
            reach_pool(catalog.hop)  # built now (~1 s at 500K movies), not on a first request

    def generate(
        self, history: UserHistory, retrieved: Future[npt.NDArray[np.int64]] | None = None
    ) -> npt.NDArray[np.int64]:
        """Candidate movie rows: retrieved ones first (best first), then graph ones (best
        first), then popular fallbacks. ``retrieved``: ``self.retrieved(history)`` being
        computed on another thread (features.ranker), awaited after the graph's share."""
        graph = self._graph(history) if history.positives and self.n_graph else _EMPTY
        if self.n_retrieved:
            top = self.retrieved(history) if retrieved is None else retrieved.result()
            taken_top = np.zeros(self.catalog.n_movies, dtype=bool)
            taken_top[top] = True
            extra = graph[~taken_top[graph]]
            graph = np.concatenate([top, extra])[: self.max_candidates]
        need = self.max_candidates - graph.shape[0]
        if need <= 0:
            return graph
        taken = history.seen.copy()
        taken[graph] = True
        pop = self._popular
        # Look only as far down the popularity list as needed (usually a short prefix).
        span = min(pop.shape[0], need + int(np.count_nonzero(history.seen)) + graph.shape[0])
        fallback = pop[:span][~taken[pop[:span]]][:need]
        return np.concatenate([graph, fallback]).astype(np.int64)

    def retrieved(self, history: UserHistory) -> npt.NDArray[np.int64]:
        """The retriever's best ``n_retrieved`` unseen rows, best first (ties by row)."""
        assert self.retriever is not None
        return top_unseen(retriever_scores(self.retriever, history), history.seen, self.n_retrieved)

    def _graph(self, history: UserHistory) -> npt.NDArray[np.int64]:
        """The best n_graph unseen rows by path count. The ranked list (with some slack) is
        cached with the hop levels; as movies become seen they are filtered out of it, which
        keeps the order exact, and it is re-ranked only when the slack runs out."""
        key = ("graph_rank", self.hops, self.n_graph)
        ranked = history.derived.get(key)
        if isinstance(ranked, np.ndarray):
            rows = ranked[~history.seen[ranked]][: self.n_graph]
            if rows.shape[0] == self.n_graph or ranked.shape[0] < self.n_graph + _SLACK:
                return rows
        two = history.two_hops(self.catalog.hop) if self.hops == 2 else None
        if two is None:
            scores = khop_scores(self.catalog, history, self.hops)
            ranked = top_rows(scores, self.n_graph + _SLACK)
        else:  # a large graph: the exact 2-hop top over its pool (features.graph.reach_pool)
            pool = two.pool.rows
            at = np.maximum(two.pool_levels(), 0.0).sum(axis=0)
            at[history.seen[pool]] = 0.0
            ranked = pool[top_rows(at, self.n_graph + _SLACK)]
        history.derived[key] = ranked
        return ranked[: self.n_graph]
