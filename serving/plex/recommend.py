"""Recommendations for Plex accounts from the service's recommenders, ready for PlexPusher.

Each account's graph user (``plex-<slug(name)>``) gets the top ``k`` of the recommender of its
A/B arm, explained as the service explains them (a graph path when there is one, else the
recommender's reason). Each slate is logged in the service's recommendation log when one is
given, so a later watch of a pushed movie (webhook, poll or sync) joins it, as feedback on a
slate served over HTTP does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from plexapi.server import PlexServer

from features.graph.schema import VertexKind
from features.graph.store import GraphStore
from serving.plex.client import plex_errors, safe_url
from serving.plex.ids import user_key
from serving.plex.push import Recommendation
from serving.presentation import present
from serving.reclog import RecLog, log_served, new_recommendation_id
from serving.wiring import ServiceRecommenders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountSlate:
    """What one Plex account was recommended, and by which arm and policy version."""

    account: str
    user: str
    arm: str
    policy_version: str
    recommendations: list[Recommendation]
    logged: bool


def plex_accounts(server: PlexServer) -> list[str]:
    """The names of the server's accounts (the ones history and webhooks name), sorted."""
    with plex_errors(safe_url(server._baseurl), "listing accounts"):
        names = {a.name for a in server.systemAccounts() if a.name}
    return sorted(names)


def _score(value: float) -> float:
    """Scores shown as "NN% match" must lie in [0, 1]; a policy's ranking scores may not."""
    return min(1.0, max(0.0, float(value)))


def recommend_accounts(
    store: GraphStore,
    recommenders: ServiceRecommenders,
    accounts: Iterable[str],
    k: int,
    *,
    reclog: RecLog | None = None,
) -> list[AccountSlate]:
    """The top ``k`` for each account, best first, with the service's explanations."""
    slates: list[AccountSlate] = []
    for account in accounts:
        user = user_key(account)
        arm, recommender = recommenders.assign(user)
        result = recommender.recommend(user, k)
        record, logged = log_served(reclog, user, arm.name, result)
        rec_id = record.id if logged else new_recommendation_id()
        known = store.vertex(VertexKind.USER, user) is not None
        shown = present(store, user, result, rec_id, arm, known)
        slates.append(
            AccountSlate(
                account=account,
                user=user,
                arm=arm.name,
                policy_version=result.policy_version,
                recommendations=[
                    Recommendation(
                        movie=m.movie,
                        score=_score(m.score),
                        reason=m.explanation,
                        title=m.title,
                        year=m.year or 0,
                    )
                    for m in shown
                ],
                logged=logged,
            )
        )
        log.info(
            "%s (%s, arm %s): %d recommendations",
            user,
            result.policy_version,
            arm.name,
            len(result.items),
        )
    return slates
