"""The evidence a promotion decision reads, taken from the live service's own logs in Redis
(used by the autopilot, serving.autopilot, and so by the online loop).

Online: the served slates (serving.reclog) and the feedback stream joined to them as
``marquee ab report`` joins them (serving.ab_report), per arm and per user: mean reward per
slate, acceptance (share of slates with a positive response), the ratings given, the movies
shown. Off-policy: SNIPS with whole-slate weights of the challenger on the champion arm's
logged slates. The logging propensities are the ones the service logged; the challenger's are
computed by re-preparing each logged user's state, candidates and retriever base with the
service's own Ranker (features.ranker; the graph does not change during the loop, so they are
the ones served) and scoring them as the service does (``features.ranking.candidate_scores``)
with the challenger's action.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from agent.evaluation.ope import SNIPS, Estimate, SlateFeedback
from agent.promotion import ArmSamples
from features.graph.store import GraphStore
from features.ranker import Ranker
from features.ranking import candidate_scores, plackett_luce_log_probs
from serving.ab_report import (
    REWARD_RANGE,
    Served,
    join_feedback,
    read_feedback_stored,
    read_served,
)
from serving.feedback.store import reward as event_reward
from serving.schemas.feedback import FeedbackEvent, FeedbackType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Logs:
    """Served slates of a window with their joined feedback rewards and ratings."""

    served: list[Served]
    rewards: dict[str, float]  # slate id -> clipped reward sum (0 when no feedback)
    accepted: dict[str, bool]
    ratings: dict[str, list[float]]
    picks: dict[str, list[tuple[str, float, float | None]]] = field(default_factory=dict)
    """slate id -> the feedback on it that names a movie, good or bad: (movie, reward, rating
    or None); on an interleaved slate each credits (or debits) the movie's team."""


def read_logs(client: redis.Redis, prefix: str, since: float, ids: set[str] | None = None) -> Logs:
    """Slates served at or after ``since`` (only those in ``ids`` when given: a window named
    by count, not by clock) and the feedback that joins them."""
    served = read_served(client, prefix, since)
    if ids is not None:
        served = [s for s in served if s.id in ids]
    stored = read_feedback_stored(client, prefix)  # joined as of storage: replays agree
    joined = join_feedback(served, [e for e, _ in stored], [t for _, t in stored])
    rewards, accepted, ratings, picks = {}, {}, {}, {}
    for s in served:
        events = joined.get(s.id, [])
        values = [event_reward(e) for e in events]
        picks[s.id] = [
            (e.movie, v, _rating(e)) for e, v in zip(events, values, strict=True) if e.movie
        ]
        rewards[s.id] = float(np.clip(sum(values), *REWARD_RANGE)) if values else 0.0
        accepted[s.id] = any(v > 0 for v in values)
        ratings[s.id] = [r for r in map(_rating, events) if r is not None]
    return Logs(served, rewards, accepted, ratings, picks)


def _rating(event: FeedbackEvent) -> float | None:
    """The stars of a rating event (None for any other event)."""
    if event.type is FeedbackType.RATED and event.rating is not None:
        return float(event.rating)
    return None


def arm_samples(logs: Logs, arm: str, version: str, limit: int | None = None) -> ArmSamples:
    """Per-user figures of the first ``limit`` slates ``arm`` served with ``version`` (both
    arms cut to the same number of slates, so that coverage, which grows with the slates
    shown, compares like with like)."""
    mine = [s for s in logs.served if s.arm == arm and s.version == version][:limit]
    per_user: dict[str, list[Served]] = defaultdict(list)
    for s in mine:
        per_user[s.user].append(s)
    rewards: list[float] = []
    acceptance: list[float] = []
    ratings: list[float] = []
    shown: set[str] = set()
    for slates in per_user.values():
        rewards.append(float(np.mean([logs.rewards[s.id] for s in slates])))
        acceptance.append(float(np.mean([logs.accepted[s.id] for s in slates])))
        for s in slates:
            ratings.extend(logs.ratings[s.id])
            shown.update(s.slate)
    return ArmSamples(rewards, acceptance, ratings, shown)


def slates_served(logs: Logs, arm: str, version: str) -> int:
    return sum(1 for s in logs.served if s.arm == arm and s.version == version)


def team_samples(
    logs: Logs, arm: str, version: str, teams: tuple[str, str]
) -> tuple[ArmSamples, ArmSamples]:
    """Per-user figures of each team on the interleaved slates ``arm`` served with ``version``
    ("A|B"): per slate, the reward of all the feedback on the team's films, good and bad (a
    film picked and rated 1 star, or dismissed, counts against the team that placed it; 0
    when every event named the other team's films or there was none), its acceptance (a
    positive response to one of its films), the ratings its films got, and the films it
    placed. The users are the same for both teams, so ``rewards[i]`` of the two is one
    user's pair.

    Why every event and not only the positive ones: the served return a promotion should
    raise also falls with every disliked pick, and a version that ranks fewer such films
    earns that only here (measured: experiments.online_loop.interleaving_credit; README,
    "The online loop's figures")."""
    mine = [s for s in logs.served if s.arm == arm and s.version == version and s.teams]
    per_user: dict[str, list[Served]] = defaultdict(list)
    for s in mine:
        per_user[s.user].append(s)
    out = []
    for team in teams:
        rewards: list[float] = []
        acceptance: list[float] = []
        ratings: list[float] = []
        shown: set[str] = set()
        for slates in per_user.values():
            got, took = [], []
            for s in slates:
                mine_picks = [p for p in logs.picks.get(s.id, []) if s.team_of(p[0]) == team]
                got.append(float(np.clip(sum(p[1] for p in mine_picks), *REWARD_RANGE)))
                took.append(float(any(p[1] > 0 for p in mine_picks)))
                ratings.extend(p[2] for p in mine_picks if p[2] is not None)
                shown.update(m for m, t in zip(s.slate, s.teams, strict=False) if t == team)
            rewards.append(float(np.mean(got)))
            acceptance.append(float(np.mean(took)))
        out.append(ArmSamples(rewards, acceptance, ratings, shown))
    return out[0], out[1]


def _positions(keys: Sequence[str], slate: Sequence[str], cands: np.ndarray) -> np.ndarray | None:
    where = {int(c): j for j, c in enumerate(cands)}
    rows = {k: i for i, k in enumerate(keys)}
    out = []
    for movie in slate:
        row = rows.get(movie)
        if row is None or row not in where:
            return None
        out.append(where[row])
    return np.asarray(out, dtype=np.int64)


def off_policy(
    client: redis.Redis,
    prefix: str,
    logs: Logs,
    *,
    arm: str,
    version: str,
    ranker: Ranker,
    store: GraphStore,
    challenger_act: Any,
    temperature: float,
    bootstrap: int = 500,
    seed: int = 0,
) -> tuple[Estimate, Estimate] | None:
    """(champion, challenger) SNIPS estimates on ``arm``'s slates served by ``version``; None
    when fewer than two logged slates can be re-scored."""
    from serving.reclog import RecLog

    reclog = RecLog(client, prefix, ttl_seconds=7 * 24 * 3600)  # read only: the TTL is unused
    logging_lp, target_lp, rewards = [], [], []
    keys = [str(k) for k in ranker.keys]
    for s in logs.served:
        if s.arm != arm or s.version != version:
            continue
        rec = reclog.get(s.id)
        prepared = ranker.prepare(store, s.user)
        if rec is None or rec.state is None or prepared is None or rec.propensities.size == 0:
            continue
        _, cands, base, extras, residual = prepared
        pos = _positions(keys, rec.slate, cands)
        if pos is None:
            continue
        _, scores = candidate_scores(
            challenger_act(rec.state), cands, ranker.vectors, base, extras, residual
        )
        target_lp.append(plackett_luce_log_probs(scores, pos, temperature))
        logging_lp.append(np.log(np.clip(rec.propensities.astype(np.float64), 1e-300, 1.0)))
        rewards.append(logs.rewards[s.id])
    if len(rewards) < 2:
        return None
    logged = np.asarray(logging_lp)
    r = np.asarray(rewards)
    snips = SNIPS()
    on_policy = SlateFeedback(rewards=r, logging_log_props=logged, target_log_props=logged)
    target = SlateFeedback(
        rewards=r, logging_log_props=logged, target_log_props=np.asarray(target_lp)
    )
    return (
        snips.estimate_interval(on_policy, n_bootstrap_samples=bootstrap, random_state=seed),
        snips.estimate_interval(target, n_bootstrap_samples=bootstrap, random_state=seed),
    )
