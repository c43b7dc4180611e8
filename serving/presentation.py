"""How a slate is shown: title, year, poster and a reason for each movie, for HTTP and Plex.

The reason is a graph path from a movie the user liked (``GraphStore.explain_many``) when
there is one, else the recommender's own (for example "Popular in Comedy").
"""

from __future__ import annotations

import logging

from features.graph.schema import VertexKind
from features.graph.store import Explanation, GraphStore, UnknownVertexError
from serving.ab import Arm
from serving.interleaved import team_version_key
from serving.recommender import RecommendationResult
from serving.schemas.recommendations import RecommendedMovie

log = logging.getLogger(__name__)


def explanations(store: GraphStore, user: str, movies: list[str]) -> list[Explanation | None]:
    """A path for each movie (None where there is none or the user is unknown)."""
    try:
        return store.explain_many(user, movies)
    except UnknownVertexError:  # unknown user: no graph path to show
        return [None] * len(movies)


def present(
    store: GraphStore, user: str, result: RecommendationResult, rec_id: str, arm: Arm, known: bool
) -> list[RecommendedMovie]:
    """Attach title, year, poster and an explanation (a graph path when there is one)."""
    out: list[RecommendedMovie] = []
    paths = (
        explanations(store, user, [i.movie for i in result.items])
        if known
        else [None] * len(result.items)
    )
    for rank, (item, path) in enumerate(zip(result.items, paths, strict=True), start=1):
        movie = store.vertex(VertexKind.MOVIE, item.movie) or {}
        year = int(movie.get("year") or 0)  # type: ignore[call-overload]
        text = path.text if path is not None else (item.reason or "Recommended for you.")
        out.append(
            RecommendedMovie(
                rank=rank,
                movie=item.movie,
                title=str(movie.get("title") or item.movie),
                year=year or None,
                poster_url=str(movie.get("poster_url") or "") or None,
                score=item.score,
                propensity=item.propensity,
                explanation=text,
                recommendation_id=rec_id,
                policy_version=(
                    result.extra.get(team_version_key(item.team), result.policy_version)
                    if item.team
                    else result.policy_version
                ),
                arm=item.team or arm.name,  # interleaved: the team that put it on the slate
            )
        )
    return out
