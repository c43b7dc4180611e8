"""The interleaving report: which of two arms users prefer, from interleaved slates' logs.

Input is what the service keeps in interleave mode: served slates whose positions carry their
team (serving.reclog ``teams``) and the feedback stream. An event joins its slate as in the A/B
report (serving.ab_report.join_feedback) and, when it is a choice (positive reward,
features.reward's scale), credits the team whose item it names. Per user: B's credits against
A's; the user counts as a win for B, a win for A or a tie; users with no credited choice say
nothing and are left out. The preference is the mean of +1/-1/0 over users with a t interval
(agent.evaluation.interleaving.preference, the statistic the simulator study measured).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from agent.evaluation.ab_stats import ALPHA, users_needed
from agent.evaluation.interleaving import Preference, preference
from serving.ab import INTERLEAVE
from serving.ab_report import Served, _event_reward, _version_number, join_feedback
from serving.interleaved import VERSION_SEPARATOR
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)

MIN_USERS = 2


@dataclass(frozen=True)
class TeamFigures:
    """One arm as a team: the versions it served, and the choices credited to it."""

    arm: str
    versions: list[str]
    credited_choices: int
    users_won: int


@dataclass(frozen=True)
class InterleavingReport:
    """``verdict``: "promote" (B preferred), "keep" (A preferred) or "inconclusive"."""

    since: float
    arms: tuple[str, str]
    slates: int
    users: int  # users with an interleaved slate
    users_with_choices: int  # users with a credited choice: the unit of the preference
    uncredited_events: int  # events on interleaved slates naming no movie of the slate
    teams: list[TeamFigures]
    preference: Preference | None
    users_needed: int | None
    verdict: str
    reason: str
    promote_arm: str | None = None
    promote_version: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_interleaving_report(
    served: Sequence[Served],
    events: Iterable[FeedbackEvent],
    arms: tuple[str, str],
    *,
    since: float = 0.0,
    alpha: float = ALPHA,
    arm: str = INTERLEAVE,
) -> InterleavingReport:
    """Credits per user and team, the preference for B over A with its CI, and a verdict, from
    the interleaved slates of ``arm`` (the pseudo-arm of interleave mode, or in split mode
    the arm that interleaves against another: serving.ab)."""
    a, b = arms
    mine = [s for s in served if s.arm == arm and s.teams]
    joined = join_feedback(mine, events)
    credits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    uncredited = 0
    versions: dict[str, set[str]] = {a: set(), b: set()}
    for s in mine:
        parts = s.version.split(VERSION_SEPARATOR)
        if len(parts) == 2:
            versions[a].add(parts[0])
            versions[b].add(parts[1])
        for event in joined.get(s.id, []):
            if event.movie not in s.slate:
                uncredited += 1
                continue
            if _event_reward(event) <= 0:
                continue  # not a choice: skips and dislikes credit no team
            team = s.team_of(event.movie)
            if team in arms:
                credits[s.user][arms.index(team)] += 1
    users = {s.user for s in mine}
    chose = sorted(u for u in users if sum(credits[u]) > 0)
    ca = np.asarray([credits[u][0] for u in chose], dtype=np.int64)
    cb = np.asarray([credits[u][1] for u in chose], dtype=np.int64)
    teams = [
        TeamFigures(a, sorted(versions[a]), int(ca.sum()), int((ca > cb).sum())),
        TeamFigures(b, sorted(versions[b]), int(cb.sum()), int((cb > ca).sum())),
    ]
    base = dict(
        since=since,
        arms=arms,
        slates=len(mine),
        users=len(users),
        users_with_choices=len(chose),
        uncredited_events=uncredited,
        teams=teams,
    )
    if len(chose) < MIN_USERS:
        return InterleavingReport(
            **base,  # type: ignore[arg-type]
            preference=None,
            users_needed=None,
            verdict="inconclusive",
            reason=f"fewer than {MIN_USERS} users with a credited choice",
        )
    pref = preference(ca, cb)
    d = pref.preference
    score = np.sign(cb - ca).astype(np.float64)
    needed = users_needed(float(score.std(ddof=1)), d.estimate) if d.estimate else None
    figures = (
        f"preference for {b!r} over {a!r} {d.estimate:+.3f} [{d.ci95_low:+.3f}, "
        f"{d.ci95_high:+.3f}] (t p = {d.p_value:.2g}; {pref.wins_b} users won by {b!r}, "
        f"{pref.wins_a} by {a!r}, {pref.ties} ties)"
    )
    if d.p_value < alpha and d.estimate > 0:
        return InterleavingReport(
            **base,  # type: ignore[arg-type]
            preference=pref,
            users_needed=needed,
            verdict="promote",
            reason=f"users prefer {b!r}: {figures}",
            promote_arm=b,
            promote_version=_version_number(sorted(versions[b])),
        )
    if d.p_value < alpha:
        return InterleavingReport(
            **base,  # type: ignore[arg-type]
            preference=pref,
            users_needed=needed,
            verdict="keep",
            reason=f"users prefer {a!r}: {figures}",
        )
    more = f"; about {needed:,} users with choices would detect it" if needed else ""
    return InterleavingReport(
        **base,  # type: ignore[arg-type]
        preference=pref,
        users_needed=needed,
        verdict="inconclusive",
        reason=f"no significant preference yet: {figures}{more}",
    )
