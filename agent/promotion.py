"""Guarded promotion: promote, keep or roll back a challenger policy from logged evidence.

First off-policy (an OPE estimate of each policy on the logged traffic, with its interval),
then online (an A/B split or interleaving: the challenger-minus-champion difference with its
CI, a sample-ratio-mismatch check, and the guardrails acceptance, mean rating and catalogue
coverage). The rules, in order:

1. offline: a challenger whose OPE interval lies wholly below the champion's is kept out
   (``keep``, never shown online); an estimate with too small an effective sample size says
   nothing and the online stage decides alone;
2. online: a failed SRM check stops the verdict (``keep``); a guardrail that drops
   significantly by more than its tolerance rolls the challenger back (``rollback``: its
   traffic returns to the champion); a significant win on the primary metric promotes;
   anything else keeps the champion.

Sequential looks (``PromotionRules.looks`` > 1): the online stage may be analysed at equally
spaced fractions of the planned slates. A win counts only past that look's group-sequential
boundary (agent.evaluation.sequential: O'Brien-Fleming spending, so looking early does not
raise the false-promotion rate above ``alpha``); from ``futility_from`` of the plan on, a
challenger that is not ahead stops the test (``keep``: a weak candidate stops taking half the
traffic early; stopping for futility never raises the false-promotion rate); otherwise the
verdict is ``continue`` (no alias moves) and the test goes on to the next look.

After a promotion the new champion is watched (``decide_watch``, stage "watch"): served
beside the previous champion, it is rolled back when a guardrail drops or its primary metric is
significantly lower, and confirmed otherwise.

``decide`` is a pure function of its evidence, so a decision reproduces from its logged JSON;
``log_decision`` records every decision in MLflow (params, metrics, the evidence as JSON);
``apply_decision`` moves the registry aliases.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from agent.evaluation.ab_stats import (
    ALPHA,
    Difference,
    SRMCheck,
    paired_difference,
    srm_check,
    welch,
)
from agent.evaluation.ope import Estimate
from agent.evaluation.sequential import efficacy_boundaries, z_score

log = logging.getLogger(__name__)

Action = Literal["promote", "keep", "rollback", "continue"]
CONTINUE: Action = "continue"  # an interim look that decides nothing yet
GUARDRAILS = ("acceptance", "mean_rating", "coverage")
PREVIOUS_ALIAS = "previous-champion"
WATCH = "watch"  # the stage of a decision on a new champion against the previous one


@dataclass(frozen=True)
class OfflineEvidence:
    """OPE of both policies on the same logged slates (one estimator, e.g. DR or SNIPS)."""

    champion: Estimate
    challenger: Estimate

    def as_dict(self) -> dict[str, object]:
        return {"champion": self.champion.as_dict(), "challenger": self.challenger.as_dict()}


@dataclass(frozen=True)
class ArmOutcome:
    """One arm's online figures: users, acceptance, mean rating of rated picks and catalogue
    coverage (distinct movies shown / catalogue size)."""

    users: int
    acceptance: float
    mean_rating: float
    coverage: float
    mean_reward: float


@dataclass(frozen=True)
class OnlineEvidence:
    """The online comparison, challenger minus champion. ``primary`` is the per-user reward
    difference (A/B, Welch) or the interleaving preference (one-sample); ``srm`` may be None
    for interleaving, where every user sees both."""

    method: str
    primary: Difference
    srm: SRMCheck | None
    champion: ArmOutcome
    challenger: ArmOutcome
    guardrails: dict[str, Difference] = field(default_factory=dict)  # acceptance, mean_rating

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PromotionRules:
    """Thresholds. Tolerances are relative drops of the champion's value that a guardrail may
    show before it counts (acceptance and rating must also be significant at ``alpha``)."""

    alpha: float = ALPHA
    min_ess: float = 30.0
    min_users_per_arm: int = 20
    acceptance_tolerance: float = 0.05
    rating_tolerance: float = 0.05
    coverage_tolerance: float = 0.4
    looks: int = 1
    """Analyses of the online stage, equally spaced over the planned slates (1: one, at the
    end: the fixed-horizon test)."""
    futility_from: float = 0.5
    """From this fraction of the plan on, an interim look stops a challenger that is not
    ahead (only with ``looks`` > 1)."""

    def __post_init__(self) -> None:
        if self.looks < 1:
            raise ValueError(f"looks must be >= 1, got {self.looks}")
        if not 0.0 < self.futility_from <= 1.0:
            raise ValueError(f"futility_from must be in (0, 1], got {self.futility_from}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def boundary(self, look: int) -> float:
        """The z a win must reach at ``look`` (1-based) of ``looks``: 1.96 for one look."""
        return efficacy_boundaries(self.looks, self.alpha / 2.0)[min(max(look, 1), self.looks) - 1]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do with the challenger, at which stage it was decided, why, and on what."""

    action: Action
    stage: str  # "offline" or "online"
    reason: str
    champion_version: int | None
    challenger_version: int | None
    offline: OfflineEvidence | None
    online: OnlineEvidence | None
    rules: PromotionRules
    guardrail_drops: tuple[str, ...] = ()
    look: int = 1
    """Which analysis of ``rules.looks`` this was (the last one is final)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "stage": self.stage,
            "reason": self.reason,
            "look": self.look,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "offline": None if self.offline is None else self.offline.as_dict(),
            "online": None if self.online is None else self.online.as_dict(),
            "rules": self.rules.as_dict(),
            "guardrail_drops": list(self.guardrail_drops),
        }


def _fmt(d: Difference) -> str:
    return f"{d.estimate:+.4f} [{d.ci95_low:+.4f}, {d.ci95_high:+.4f}] (p = {d.p_value:.2g})"


def _drop_detail(online: OnlineEvidence, drops: list[str]) -> str:
    """Each dropped guardrail with the challenger's and the champion's figures."""
    return "; ".join(
        f"{g} {getattr(online.challenger, g):.4f} vs {getattr(online.champion, g):.4f}"
        for g in drops
    )


def guardrail_drops(online: OnlineEvidence, rules: PromotionRules) -> list[str]:
    """The guardrails the challenger breaks: acceptance or mean rating significantly lower by
    more than the tolerance, or coverage lower by more than its tolerance."""
    drops = []
    for name, tol in (
        ("acceptance", rules.acceptance_tolerance),
        ("mean_rating", rules.rating_tolerance),
    ):
        diff = online.guardrails.get(name)
        base = float(getattr(online.champion, name))
        if diff is None or not np.isfinite(base):
            continue
        if diff.ci95_high < 0 and diff.p_value < rules.alpha and diff.estimate < -tol * abs(base):
            drops.append(name)
    champ, chall = online.champion.coverage, online.challenger.coverage
    if np.isfinite(champ) and chall < (1.0 - rules.coverage_tolerance) * champ:
        drops.append("coverage")
    return drops


def decide(
    offline: OfflineEvidence | None,
    online: OnlineEvidence | None,
    *,
    rules: PromotionRules | None = None,
    champion_version: int | None = None,
    challenger_version: int | None = None,
    look: int | None = None,
) -> Decision:
    """Promote, keep or roll back (module doc for the rules, in their order). ``look``: which
    of ``rules.looks`` analyses this is (default: the last, final one); before the last the
    verdict may be ``continue``."""
    rules = rules or PromotionRules()
    look = rules.looks if look is None else look
    if not 1 <= look <= rules.looks:
        raise ValueError(f"look must be in 1..{rules.looks}, got {look}")
    final = look == rules.looks
    at = "" if rules.looks == 1 else f"look {look} of {rules.looks}: "

    def made(action: Action, stage: str, reason: str, drops: Sequence[str] = ()) -> Decision:
        return Decision(
            action,
            stage,
            at + reason,
            champion_version,
            challenger_version,
            offline,
            online,
            rules,
            tuple(drops),
            look,
        )

    offline_note = "no off-policy estimate"
    if offline is not None:
        champ, chall = offline.champion, offline.challenger
        if chall.ess < rules.min_ess or not np.isfinite(chall.value):
            offline_note = (
                f"off-policy estimate inconclusive (effective sample size {chall.ess:.0f} < "
                f"{rules.min_ess:g})"
            )
        elif chall.ci95_high < champ.ci95_low:
            return made(
                "keep",
                "offline",
                f"off-policy: challenger {chall.value:+.4f} [{chall.ci95_low:+.4f}, "
                f"{chall.ci95_high:+.4f}] is below the champion {champ.value:+.4f} "
                f"[{champ.ci95_low:+.4f}, {champ.ci95_high:+.4f}] ({chall.estimator}); "
                "not tried online",
            )
        else:
            offline_note = (
                f"off-policy: challenger {chall.value:+.4f} vs champion {champ.value:+.4f} "
                f"({chall.estimator}, intervals overlap or challenger ahead)"
            )
    if online is None:
        return made("keep", "offline", f"{offline_note}; waiting for online evidence")
    if online.srm is not None and not online.srm.ok:
        return made(
            "keep",
            "online",
            f"sample ratio mismatch (chi-square p = {online.srm.p_value:.2g} < "
            f"{online.srm.alpha}): users per arm {online.srm.observed}; no verdict",
        )
    drops = guardrail_drops(online, rules)
    if drops:
        detail = _drop_detail(online, drops)
        return made("rollback", "online", f"guardrail dropped: {detail}", drops)
    few = min(online.champion.users, online.challenger.users)
    if online.method == "ab" and few < rules.min_users_per_arm:
        return made(
            "keep" if final else CONTINUE,
            "online",
            f"{offline_note}; only {few} users in an arm (need {rules.min_users_per_arm})",
        )
    p = online.primary
    z, bound = z_score(p.estimate, p.p_value), rules.boundary(look)
    beyond = "" if rules.looks == 1 else f", z {z:.2f} vs boundary {bound:.2f}"
    won = p.ci95_low > 0 and p.p_value < rules.alpha if rules.looks == 1 else z >= bound
    if won and p.estimate > 0:
        return made(
            "promote", "online", f"{offline_note}; online {online.method} win {_fmt(p)}{beyond}"
        )
    if p.ci95_high < 0 and p.p_value < rules.alpha:
        return made("keep", "online", f"{offline_note}; online {online.method} loss {_fmt(p)}")
    if not final:
        if look / rules.looks >= rules.futility_from and not z > 0:
            return made(
                "keep",
                "online",
                f"{offline_note}; futility: the challenger is not ahead {_fmt(p)}; stopped early",
            )
        return made(
            CONTINUE, "online", f"{offline_note}; online {online.method} so far {_fmt(p)}{beyond}"
        )
    return made(
        "keep",
        "online",
        f"{offline_note}; online {online.method} inconclusive {_fmt(p)}{beyond}",
    )


def decide_watch(
    online: OnlineEvidence,
    *,
    rules: PromotionRules | None = None,
    previous_version: int | None = None,
    champion_version: int | None = None,
) -> Decision:
    """A promoted champion served beside the previous one (``online.champion`` is the previous
    champion's arm, ``online.challenger`` the new champion's): roll the promotion back when a
    guardrail drops or the primary metric is significantly lower; confirm it ("keep")
    otherwise. A failed SRM check gives no verdict ("keep": the promotion stands)."""
    rules = rules or PromotionRules()

    def made(action: Action, reason: str, drops: Sequence[str] = ()) -> Decision:
        return Decision(
            action,
            WATCH,
            reason,
            previous_version,
            champion_version,
            None,
            online,
            rules,
            tuple(drops),
        )

    if online.srm is not None and not online.srm.ok:
        return made(
            "keep",
            f"watch: sample ratio mismatch (chi-square p = {online.srm.p_value:.2g}): users per "
            f"arm {online.srm.observed}; no verdict, the promotion stands",
        )
    drops = guardrail_drops(online, rules)
    if drops:
        detail = _drop_detail(online, drops)
        return made("rollback", f"watch: guardrail dropped after promotion: {detail}", drops)
    p = online.primary
    if p.ci95_high < 0 and p.p_value < rules.alpha:
        return made("rollback", f"watch: new champion loses to the previous one {_fmt(p)}")
    return made("keep", f"watch: promotion confirmed ({online.method} {_fmt(p)})")


def _floats(values: Iterable[float]) -> npt.NDArray[np.float64]:
    return np.asarray(list(values), dtype=np.float64)


def _diff(a: Sequence[float], b: Sequence[float]) -> Difference | None:
    x, y = _floats(a), _floats(b)
    if x.shape[0] < 2 or y.shape[0] < 2:
        return None
    return welch(x, y)


def _guardrails(champion: ArmSamples, challenger: ArmSamples) -> dict[str, Difference]:
    """Welch's test of acceptance and of the ratings given, challenger minus champion (a
    guardrail with fewer than two values on a side is left out)."""
    return {
        name: d
        for name, d in (
            ("acceptance", _diff(champion.acceptance, challenger.acceptance)),
            ("mean_rating", _diff(champion.ratings, challenger.ratings)),
        )
        if d is not None
    }


@dataclass(frozen=True)
class ArmSamples:
    """Per-user figures of one arm, as an online A/B collects them: each user's mean reward
    per slate and acceptance (share of slates with a positive response), the ratings given,
    and the movies shown."""

    rewards: Sequence[float]
    acceptance: Sequence[float]
    ratings: Sequence[float]
    shown: Iterable[str | int]

    def outcome(self, catalogue_size: int) -> ArmOutcome:
        shown = set(self.shown)
        return ArmOutcome(
            users=len(self.rewards),
            acceptance=float(np.mean(self.acceptance)) if len(self.acceptance) else float("nan"),
            mean_rating=float(np.mean(self.ratings)) if len(self.ratings) else float("nan"),
            coverage=len(shown) / max(catalogue_size, 1),
            mean_reward=float(np.mean(self.rewards)) if len(self.rewards) else float("nan"),
        )


def ab_evidence(
    champion: ArmSamples,
    challenger: ArmSamples,
    *,
    catalogue_size: int,
    shares: Mapping[str, float] | None = None,
) -> OnlineEvidence:
    """OnlineEvidence of an A/B split from per-user samples: Welch's test on reward (primary),
    acceptance and rating, and the SRM check of users per arm against ``shares`` (keys
    "champion" and "challenger"; equal shares by default)."""
    shares = shares or {"champion": 0.5, "challenger": 0.5}
    primary = welch(_floats(champion.rewards), _floats(challenger.rewards))
    guards = _guardrails(champion, challenger)
    srm = srm_check(
        {"champion": len(champion.rewards), "challenger": len(challenger.rewards)}, shares
    )
    return OnlineEvidence(
        method="ab",
        primary=primary,
        srm=srm,
        champion=champion.outcome(catalogue_size),
        challenger=challenger.outcome(catalogue_size),
        guardrails=guards,
    )


def interleaving_evidence(
    champion: ArmSamples,
    challenger: ArmSamples,
    *,
    catalogue_size: int,
    users: Mapping[str, int] | None = None,
    shares: Mapping[str, float] | None = None,
) -> OnlineEvidence:
    """OnlineEvidence of an interleaved test from each team's per-user samples on the same
    slates (serving.promotion_evidence.team_samples; position i is one user in both).

    Primary: the return the challenger's items earned per slate minus the champion's items',
    paired within each user with credited feedback (a paired t): the classic interleaving
    preference counts only whose item was chosen, while the served return also counts how
    the chosen film was rated, which is what a promotion should raise. The guardrails compare
    the teams' acceptance and the ratings of their chosen films (Welch), coverage the films
    each team placed. ``users`` (keys "champion" and "challenger": the users of the plain arm
    and of the interleaved one) with ``shares`` gives the SRM check of the split that sent
    users to the test; without them there is none (every user of an interleave-mode service
    sees both)."""
    ra, rb = _floats(champion.rewards), _floats(challenger.rewards)
    if ra.shape != rb.shape:
        raise ValueError(f"the teams' samples differ in users: {ra.shape[0]} vs {rb.shape[0]}")
    # users with any credited feedback (a team's film picked, liked or not, or dismissed)
    accepted = (_floats(champion.acceptance) + _floats(challenger.acceptance)) > 0
    chose = accepted | (ra != 0) | (rb != 0)
    test = "interleaving paired t (credited return per slate)"
    if int(chose.sum()) >= 2:
        primary = replace(paired_difference(ra[chose], rb[chose]), test=test)
    else:  # nothing to compare yet: no verdict but "inconclusive"
        nan = float("nan")
        primary = Difference(nan, nan, nan, 1.0, int(chose.sum()), test)
    guards = _guardrails(champion, challenger)
    srm = None
    if users is not None:
        srm = srm_check(users, shares or {"champion": 0.5, "challenger": 0.5})
    return OnlineEvidence(
        method="interleaving",
        primary=primary,
        srm=srm,
        champion=champion.outcome(catalogue_size),
        challenger=challenger.outcome(catalogue_size),
        guardrails=guards,
    )


def log_decision(
    decision: Decision,
    *,
    tracking_uri: str,
    experiment: str = "marquee-promotion",
    artifacts_dir: Path | None = None,
    step: int | None = None,
) -> str:
    """One MLflow run per decision: params (action, stage, versions), metrics (the evidence's
    figures), the reason as a tag and the whole evidence as ``decision.json`` (under
    ``artifacts_dir`` when the experiment is new, so nothing lands in the working directory).
    Returns the run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        exp_id = exp.experiment_id
    else:
        location = None
        if artifacts_dir is not None:
            artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = artifacts_dir.resolve().as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=location)
    run = client.create_run(exp_id, run_name=f"promotion-{decision.action}")
    run_id = str(run.info.run_id)
    params = {
        "action": decision.action,
        "stage": decision.stage,
        "champion_version": str(decision.champion_version),
        "challenger_version": str(decision.challenger_version),
        "guardrail_drops": ",".join(decision.guardrail_drops) or "none",
        "look": f"{decision.look}/{decision.rules.looks}",
    }
    metrics: dict[str, float] = {}
    if decision.offline is not None:
        for who in ("champion", "challenger"):
            est: Estimate = getattr(decision.offline, who)
            metrics[f"ope/{who}_value"] = est.value
            metrics[f"ope/{who}_ci95_low"] = est.ci95_low
            metrics[f"ope/{who}_ci95_high"] = est.ci95_high
            metrics[f"ope/{who}_ess"] = est.ess
    if decision.online is not None:
        on = decision.online
        metrics["online/diff"] = on.primary.estimate
        metrics["online/diff_ci95_low"] = on.primary.ci95_low
        metrics["online/diff_ci95_high"] = on.primary.ci95_high
        metrics["online/p_value"] = on.primary.p_value
        if on.srm is not None:
            metrics["online/srm_p_value"] = on.srm.p_value
        for who in ("champion", "challenger"):
            arm: ArmOutcome = getattr(on, who)
            for name in (*GUARDRAILS, "mean_reward", "users"):
                metrics[f"online/{who}_{name}"] = float(getattr(arm, name))
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for name, figure in metrics.items():
        if np.isfinite(figure):
            client.log_metric(run_id, name, float(figure), step=step or 0)
    client.set_tag(run_id, "reason", decision.reason[:5000])
    client.log_text(run_id, json.dumps(decision.as_dict(), indent=2, default=str), "decision.json")
    client.set_terminated(run_id)
    log.info(
        "promotion decision %s (%s): %s [run %s]",
        decision.action,
        decision.stage,
        decision.reason,
        run_id,
    )
    return run_id


def apply_decision(decision: Decision, registry: Any) -> None:
    """Move the aliases of an agent.registry.PolicyRegistry: promote puts ``champion`` on the
    challenger's version (the old one keeps ``previous-champion``); rollback, and keep once
    the online stage has judged, point ``challenger`` back at the champion's version, so a
    rejected version stops taking traffic; a keep that waits for online evidence changes
    nothing. A watch decision (``decide_watch``) rolls back by putting ``champion`` (and
    ``challenger``) back on the previous champion, and confirms by ending the watch
    (``challenger`` onto the new champion)."""
    champ, chall = decision.champion_version, decision.challenger_version
    if decision.action == CONTINUE:
        return  # an interim look: the test goes on
    if decision.stage == WATCH:
        if decision.action == "rollback" and champ is not None:
            registry.set_alias("champion", champ)
            registry.set_alias("challenger", champ)
        elif chall is not None:
            registry.set_alias("challenger", chall)
        return
    if decision.action == "promote" and chall is not None:
        if champ is not None:
            registry.set_alias(PREVIOUS_ALIAS, champ)
        registry.set_alias("champion", chall)
    elif champ is not None and (
        decision.action == "rollback" or (decision.action == "keep" and decision.online)
    ):
        registry.set_alias("challenger", champ)
