"""The online A/B report: per-arm figures from the service's own Redis logs, an SRM check that
stops the verdict when the split is broken, Welch's test against the control arm, a verdict.

Inputs are what the service already keeps: served slates (serving.reclog, one hash per slate
with its arm, version and time) and the feedback event stream (serving.feedback.store).
Feedback joins its slate by recommendation id, else by the user's latest earlier slate that
holds the movie. The unit of analysis is the user, because users are what the router assigns:
each user's acceptance (share of their slates with positive feedback), mean reward per slate
(feedback rewards summed per slate, features.reward's scale, capped to [-1.25, 1]; 0 when
there was none) and completion rate (share of slates with a watch past WATCHED_POSITIVE).
The same logs and the same --since always give the same report.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import redis

from agent.buffers.hash_tag import RECLOG, tag
from agent.evaluation.ab_stats import (
    ALPHA,
    Difference,
    SRMCheck,
    srm_check,
    users_needed,
    welch,
)
from features.reward import WATCHED_POSITIVE, feedback_reward
from serving.feedback.store import stream_key
from serving.reclog import CLOCK_SKEW_SECONDS
from serving.schemas.feedback import FeedbackEvent, FeedbackType

log = logging.getLogger(__name__)

REWARD_RANGE = (-1.25, 1.0)
MIN_USERS_PER_ARM = 2
VERSION_RE = re.compile(r"-v(\d+)$")


@dataclass(frozen=True)
class Served:
    """One logged slate, as the report needs it."""

    id: str
    user: str
    arm: str
    version: str
    slate: tuple[str, ...]
    created: float
    teams: tuple[str, ...] = ()  # interleaved slates: each position's arm

    def team_of(self, movie: str | None) -> str | None:
        """The team that put ``movie`` on this interleaved slate (None: not on it, or a plain
        slate)."""
        if movie is None or movie not in self.slate[: len(self.teams)]:
            return None
        return self.teams[self.slate.index(movie)]


def read_served(client: redis.Redis, prefix: str, since: float = 0.0) -> list[Served]:
    """Every logged slate still in Redis served at or after ``since``, oldest first. With
    ``since`` > 0 the ids come from the log's creation-time index (serving.reclog's ``order``
    zset, which holds every kept slate), so reading a recent window costs the window, not
    the whole log (the autopilot reads one every step)."""
    base = tag(prefix, RECLOG)
    if since > 0:
        found = client.zrangebyscore(f"{base}:order", since, "+inf")
        ids = (k.decode() if isinstance(k, bytes) else str(k) for k in found)  # type: ignore[union-attr]
        keys = sorted(f"{base}:rec:{i}" for i in ids)
    else:
        keys = sorted(
            k.decode() if isinstance(k, bytes) else str(k)
            for k in client.scan_iter(match=f"{base}:rec:*", count=1000)
        )
    out: list[Served] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hmget(key, ["user", "arm", "version", "slate", "t", "teams"])
        for key, values in zip(chunk, pipe.execute(), strict=True):
            if values is None or values[0] is None:
                continue  # expired between SCAN and HMGET
            user, arm, version, slate, t, teams = (v.decode() if v else "" for v in values)
            created = float(t or 0.0)
            if created < since:
                continue
            out.append(
                Served(
                    id=key.rsplit(":", 1)[1],
                    user=user,
                    arm=arm,
                    version=version,
                    slate=tuple(str(m) for m in json.loads(slate or "[]")),
                    created=created,
                    teams=tuple(str(a) for a in json.loads(teams or "[]")),
                )
            )
    out.sort(key=lambda s: (s.created, s.id))
    return out


def read_feedback(client: redis.Redis, prefix: str, batch: int = 1000) -> list[FeedbackEvent]:
    """Every event in the feedback stream, oldest first (events that do not parse are counted
    and skipped: an old or foreign writer must not stop the report)."""
    return [event for event, _ in read_feedback_stored(client, prefix, batch)]


def read_feedback_stored(
    client: redis.Redis, prefix: str, batch: int = 1000
) -> list[tuple[FeedbackEvent, float]]:
    """``read_feedback`` with the time each event was stored (its stream entry's id, Redis's
    clock in ms): no event can be a reaction to a slate served after it was stored."""
    key, start = stream_key(prefix), "-"
    events: list[tuple[FeedbackEvent, float]] = []
    bad = 0
    while True:
        rows: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            key, min=start, count=batch
        )
        if not rows:
            break
        for entry, fields in rows:
            try:
                event = FeedbackEvent.model_validate_json(fields[b"e"])
            except (KeyError, ValueError):
                bad += 1
                continue
            events.append((event, int(entry.decode().split("-", 1)[0]) / 1000.0))
        start = "(" + rows[-1][0].decode()
    if bad:
        log.warning("%d feedback events in the stream could not be read", bad)
    return events


def _event_reward(event: FeedbackEvent) -> float:
    return feedback_reward(event.type.value, event.rating, event.completion)


def join_feedback(
    served: Sequence[Served],
    events: Iterable[FeedbackEvent],
    stored: Sequence[float] | None = None,
) -> dict[str, list[FeedbackEvent]]:
    """Events per served slate id: by recommendation id, else the user's latest slate served
    before the event (give or take the clock skew) that holds the movie; with ``stored`` (each
    event's storage time, ``read_feedback_stored``) never a slate served after the event was
    stored, so the join does not change as later slates are logged."""
    by_id = {s.id: s for s in served}
    by_user: dict[str, list[Served]] = defaultdict(list)
    for s in served:
        by_user[s.user].append(s)
    joined: dict[str, list[FeedbackEvent]] = defaultdict(list)
    for i, event in enumerate(events):
        if event.recommendation_id is not None:
            if event.recommendation_id in by_id:
                joined[event.recommendation_id].append(event)
            continue
        when = event.timestamp.timestamp() + CLOCK_SKEW_SECONDS
        if stored is not None:
            when = min(when, stored[i])
        for s in reversed(by_user.get(event.user or "", [])):
            if s.created <= when and event.movie in s.slate:
                joined[s.id].append(event)
                break
    return joined


@dataclass(frozen=True)
class ArmFigures:
    """One arm: users, slates, feedback events, and per-user means with 95% intervals."""

    arm: str
    versions: list[str]
    users: int
    slates: int
    feedback_events: int
    acceptance: float
    acceptance_ci95: tuple[float, float]
    mean_reward: float
    mean_reward_ci95: tuple[float, float]
    completion: float
    completion_ci95: tuple[float, float]


def _mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] == 0:
        return float("nan"), (float("nan"), float("nan"))
    if x.shape[0] < 2:
        return float(x.mean()), (float("nan"), float("nan"))
    from scipy import stats

    half = float(stats.t.ppf(0.975, x.shape[0] - 1) * x.std(ddof=1) / np.sqrt(x.shape[0]))
    return float(x.mean()), (float(x.mean() - half), float(x.mean() + half))


@dataclass(frozen=True)
class Comparison:
    """A challenger arm against the control: Welch's test on per-user mean reward."""

    arm: str
    control: str
    reward: Difference
    acceptance: Difference
    users_needed: int


@dataclass(frozen=True)
class ABReport:
    """The whole report; ``verdict`` is "promote", "keep", "inconclusive" or "stopped"."""

    since: float
    arms: list[ArmFigures]
    srm: SRMCheck
    comparisons: list[Comparison]
    verdict: str
    reason: str
    promote_arm: str | None = None
    promote_version: int | None = None
    configured_shares: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _per_user(
    served: Sequence[Served], joined: Mapping[str, list[FeedbackEvent]]
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """arm -> user -> (acceptance, mean reward, completion) over the user's slates."""
    slates: dict[str, dict[str, list[tuple[float, float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for s in served:
        events = joined.get(s.id, [])
        rewards = [_event_reward(e) for e in events]
        reward = float(np.clip(sum(rewards), *REWARD_RANGE)) if rewards else 0.0
        accepted = float(any(r > 0 for r in rewards))
        completed = float(
            any(
                e.type is FeedbackType.WATCHED and (e.completion or 0.0) >= WATCHED_POSITIVE
                for e in events
            )
        )
        slates[s.arm][s.user].append((accepted, reward, completed))
    return {
        arm: {
            user: tuple(float(np.mean([v[i] for v in values])) for i in range(3))  # type: ignore[misc]
            for user, values in users.items()
        }
        for arm, users in slates.items()
    }


def build_report(
    served: Sequence[Served],
    events: Iterable[FeedbackEvent],
    shares: Mapping[str, float],
    *,
    control: str | None = None,
    since: float = 0.0,
    alpha: float = ALPHA,
) -> ABReport:
    """Per-arm figures, the SRM check on users per arm, Welch's test of each arm against the
    control (default: the first configured arm) and the verdict with its reason."""
    served = [s for s in served if s.arm in shares]
    joined = join_feedback(served, events)
    per_user = _per_user(served, joined)
    arms: list[ArmFigures] = []
    for arm in shares:
        users = per_user.get(arm, {})
        mine = [s for s in served if s.arm == arm]
        acc, acc_ci = _mean_ci([u[0] for u in users.values()])
        rew, rew_ci = _mean_ci([u[1] for u in users.values()])
        com, com_ci = _mean_ci([u[2] for u in users.values()])
        arms.append(
            ArmFigures(
                arm=arm,
                versions=sorted({s.version for s in mine}),
                users=len(users),
                slates=len(mine),
                feedback_events=sum(len(joined.get(s.id, [])) for s in mine),
                acceptance=acc,
                acceptance_ci95=acc_ci,
                mean_reward=rew,
                mean_reward_ci95=rew_ci,
                completion=com,
                completion_ci95=com_ci,
            )
        )
    srm = srm_check({a.arm: a.users for a in arms}, shares)
    control = control or next(iter(shares))
    base = ABReport(since, arms, srm, [], "stopped", "", configured_shares=dict(shares))
    if not srm.ok:
        reason = (
            f"sample ratio mismatch: users per arm {srm.observed} against shares "
            f"{dict(shares)} (chi-square p = {srm.p_value:.2g} < {srm.alpha}); the split is "
            "broken, so no verdict: check the router, caching and logging first"
        )
        return _replace(base, verdict="stopped", reason=reason)
    comparisons = []
    for arm in shares:
        if arm == control:
            continue
        a, b = per_user.get(control, {}), per_user.get(arm, {})
        if len(a) < MIN_USERS_PER_ARM or len(b) < MIN_USERS_PER_ARM:
            continue
        ra, rb = [u[1] for u in a.values()], [u[1] for u in b.values()]
        reward = welch(ra, rb)
        acceptance = welch([u[0] for u in a.values()], [u[0] for u in b.values()])
        sd = float(np.sqrt((np.var(ra, ddof=1) + np.var(rb, ddof=1)) / 2))
        comparisons.append(
            Comparison(arm, control, reward, acceptance, users_needed(sd, reward.estimate, arms=2))
        )
    if not comparisons:
        return _replace(
            base,
            verdict="inconclusive",
            reason=f"fewer than {MIN_USERS_PER_ARM} users with slates in an arm to compare",
        )
    winners = [c for c in comparisons if c.reward.p_value < alpha and c.reward.estimate > 0]
    if winners:
        best = max(winners, key=lambda c: c.reward.estimate)
        version = _version_number(next(a for a in arms if a.arm == best.arm).versions)
        reason = (
            f"arm {best.arm!r} beats {control!r} on mean reward per slate by "
            f"{best.reward.estimate:+.3f} [{best.reward.ci95_low:+.3f}, "
            f"{best.reward.ci95_high:+.3f}] (Welch p = {best.reward.p_value:.2g})"
        )
        return _replace(
            base,
            comparisons=comparisons,
            verdict="promote",
            reason=reason,
            promote_arm=best.arm,
            promote_version=version,
        )
    losers = [c for c in comparisons if c.reward.p_value < alpha]
    if len(losers) == len(comparisons):
        reason = f"{control!r} beats every other arm on mean reward (Welch p < {alpha})"
        return _replace(base, comparisons=comparisons, verdict="keep", reason=reason)
    c = min(comparisons, key=lambda c: c.reward.p_value)
    reason = (
        f"no significant difference yet: {c.arm!r} - {control!r} = {c.reward.estimate:+.3f} "
        f"[{c.reward.ci95_low:+.3f}, {c.reward.ci95_high:+.3f}] (Welch p = "
        f"{c.reward.p_value:.2g}); about {c.users_needed:,} users in all would detect a "
        "difference this size"
    )
    return _replace(base, comparisons=comparisons, verdict="inconclusive", reason=reason)


def _replace(report: ABReport, **changes: object) -> ABReport:
    from dataclasses import replace

    return replace(report, **changes)  # type: ignore[arg-type]


def _version_number(versions: Sequence[str]) -> int | None:
    """The registry version an arm served, when it served exactly one."""
    numbers = {int(m.group(1)) for v in versions if (m := VERSION_RE.search(v))}
    return numbers.pop() if len(numbers) == 1 else None
