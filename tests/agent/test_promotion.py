"""Guarded promotion: the rules on hand-made evidence, the MLflow record, the registry aliases,
and in the simulator a sabotaged (negated) challenger that is never promoted while a better
one is."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from agent.evaluation.ab_stats import Difference, srm_check
from agent.evaluation.ope import DoublyRobust, Estimate
from agent.evaluation.ope_simulation import (
    Context,
    SimResponse,
    feedback_for,
    first_contexts,
    log_policy,
    target_tables,
)
from agent.evaluation.scored_policies import ScoredPolicy
from agent.promotion import (
    CONTINUE,
    PREVIOUS_ALIAS,
    ArmOutcome,
    ArmSamples,
    OfflineEvidence,
    OnlineEvidence,
    PromotionRules,
    ab_evidence,
    apply_decision,
    decide,
    decide_watch,
    interleaving_evidence,
    log_decision,
)
from env.world import SimulationWorld

K = 5


def _est(value: float, half: float = 0.02, ess: float = 500.0) -> Estimate:
    return Estimate("dr", value, value - half, value + half, ess, 1000)


def _arm(users: int = 100, acc: float = 0.5, rating: float = 3.8, cov: float = 0.1) -> ArmOutcome:
    return ArmOutcome(users, acc, rating, cov, 0.1)


def _online(
    diff: float,
    half: float = 0.01,
    *,
    counts: tuple[int, int] = (100, 100),
    challenger: ArmOutcome | None = None,
    guards: dict[str, Difference] | None = None,
) -> OnlineEvidence:
    p = 0.001 if abs(diff) > half else 0.5
    return OnlineEvidence(
        method="ab",
        primary=Difference(diff, diff - half, diff + half, p, sum(counts), "welch"),
        srm=srm_check({"a": counts[0], "b": counts[1]}, {"a": 0.5, "b": 0.5}),
        champion=_arm(counts[0]),
        challenger=challenger or _arm(counts[1]),
        guardrails=guards or {},
    )


def test_a_significant_online_win_with_a_sound_split_promotes() -> None:
    d = decide(OfflineEvidence(_est(0.1), _est(0.12)), _online(0.05), challenger_version=3)
    assert (d.action, d.stage) == ("promote", "online")
    assert "win" in d.reason


def test_no_online_evidence_or_an_inconclusive_one_keeps_the_champion() -> None:
    assert decide(OfflineEvidence(_est(0.1), _est(0.12)), None).action == "keep"
    assert decide(None, _online(0.005)).action == "keep"
    assert decide(None, _online(-0.05)).action == "keep"


def test_a_sample_ratio_mismatch_stops_even_a_clear_win() -> None:
    d = decide(None, _online(0.05, counts=(100, 160)))
    assert d.action == "keep" and "sample ratio mismatch" in d.reason


def test_an_offline_loss_is_never_tried_online() -> None:
    d = decide(OfflineEvidence(_est(0.2), _est(0.05)), _online(0.05))
    assert (d.action, d.stage) == ("keep", "offline")


def test_a_tiny_effective_sample_size_leaves_the_verdict_to_the_online_stage() -> None:
    d = decide(OfflineEvidence(_est(0.2), _est(0.05, ess=3.0)), _online(0.05))
    assert d.action == "promote" and "inconclusive" in d.reason


@pytest.mark.parametrize(
    ("challenger", "guards", "dropped"),
    [
        (
            _arm(acc=0.40),
            {"acceptance": Difference(-0.1, -0.15, -0.05, 1e-4, 200, "welch")},
            "acceptance",
        ),
        (
            _arm(rating=3.2),
            {"mean_rating": Difference(-0.6, -0.8, -0.4, 1e-6, 200, "welch")},
            "mean_rating",
        ),
        (_arm(cov=0.05), {}, "coverage"),
    ],
)
def test_a_guardrail_drop_rolls_back_even_with_a_primary_win(
    challenger: ArmOutcome, guards: dict[str, Difference], dropped: str
) -> None:
    d = decide(None, _online(0.05, challenger=challenger, guards=guards))
    assert d.action == "rollback" and d.guardrail_drops == (dropped,)


def test_a_small_insignificant_guardrail_dip_does_not_roll_back() -> None:
    guards = {"acceptance": Difference(-0.01, -0.05, 0.03, 0.6, 200, "welch")}
    assert decide(None, _online(0.05, guards=guards)).action == "promote"


@pytest.mark.parametrize(
    ("case", "online", "action"),
    [
        ("as good", _online(0.0), "keep"),
        ("better", _online(0.05), "keep"),
        ("significantly worse", _online(-0.05), "rollback"),
        ("coverage collapsed", _online(0.0, challenger=_arm(cov=0.01)), "rollback"),
        (
            "acceptance dropped",
            _online(0.0, guards={"acceptance": Difference(-0.1, -0.15, -0.05, 0.001, 200, "w")}),
            "rollback",
        ),
        ("broken split, even if worse", _online(-0.05, counts=(130, 70)), "keep"),
    ],
)
def test_a_new_champion_is_watched_beside_the_previous_one(
    case: str, online: OnlineEvidence, action: str
) -> None:
    """After a promotion: rolled back when it loses or a guardrail drops, else confirmed."""
    d = decide_watch(online, previous_version=1, champion_version=2)
    assert (d.action, d.stage) == (action, "watch"), case
    reg = _Aliases()
    apply_decision(d, reg)
    if action == "rollback":  # the previous champion serves both arms again
        assert reg.aliases == {"champion": 1, "challenger": 1}
    else:  # the watch ends: both arms serve the new champion
        assert reg.aliases == {"challenger": 2}


def test_every_decision_is_logged_to_mlflow_with_its_evidence(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    d = decide(
        OfflineEvidence(_est(0.1), _est(0.12)),
        _online(0.05),
        champion_version=1,
        challenger_version=2,
    )
    run_id = log_decision(d, tracking_uri=uri, artifacts_dir=tmp_path / "artifacts", step=7)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["action"] == "promote"
    assert run.data.params["challenger_version"] == "2"
    assert run.data.metrics["online/diff"] == pytest.approx(0.05)
    assert run.data.metrics["ope/challenger_value"] == pytest.approx(0.12)
    assert "win" in run.data.tags["reason"]
    local = client.download_artifacts(run_id, "decision.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == json.loads(json.dumps(d.as_dict(), default=str))


class _Aliases:
    def __init__(self) -> None:
        self.aliases: dict[str, int] = {}

    def set_alias(self, alias: str, version: int) -> None:
        self.aliases[alias] = version


def test_apply_moves_the_aliases() -> None:
    reg = _Aliases()
    apply_decision(decide(None, _online(0.05), champion_version=1, challenger_version=2), reg)
    assert reg.aliases == {"champion": 2, PREVIOUS_ALIAS: 1}
    reg = _Aliases()
    rollback = decide(
        None, _online(0.05, challenger=_arm(cov=0.01)), champion_version=1, challenger_version=2
    )
    apply_decision(rollback, reg)
    assert reg.aliases == {"challenger": 1}
    reg = _Aliases()  # judged online and kept: the challenger stops taking traffic
    apply_decision(decide(None, _online(0.0), champion_version=1, challenger_version=2), reg)
    assert reg.aliases == {"challenger": 1}
    reg = _Aliases()  # still waiting for online evidence: nothing moves
    apply_decision(decide(OfflineEvidence(_est(0.1), _est(0.12)), None, champion_version=1), reg)
    assert reg.aliases == {}


def _at_z(z: float) -> OnlineEvidence:
    """Online evidence whose primary difference has test statistic ``z`` (se 0.01)."""
    from scipy import stats

    est, se = 0.01 * z, 0.01
    diff = Difference(est, est - 1.96 * se, est + 1.96 * se, 2 * stats.norm.sf(abs(z)), 200, "w")
    return replace(_online(0.0), primary=diff)


@pytest.mark.parametrize(
    ("z", "look", "action", "why"),
    [
        (3.0, 1, CONTINUE, "so far"),  # a win at 1.96, but below the first look's 4.33
        (4.5, 1, "promote", "win"),
        (3.0, 2, "promote", "win"),  # 2.96 at half the plan
        (2.2, 3, CONTINUE, "so far"),  # 2.36 at three quarters
        (2.2, 4, "promote", "win"),  # 2.01 at the end
        (1.98, 4, "keep", "inconclusive"),  # a fixed test's win, not past the last boundary
        (-0.5, 1, CONTINUE, "so far"),  # behind, but before futility_from
        (-0.5, 2, "keep", "futility"),  # behind from half the plan on: stopped early
        (0.0, 3, "keep", "futility"),
        (0.5, 3, CONTINUE, "so far"),
        (-2.5, 1, "keep", "loss"),
    ],
)
def test_sequential_looks_promote_early_only_past_the_boundary(
    z: float, look: int, action: str, why: str
) -> None:
    rules = PromotionRules(looks=4)
    d = decide(None, _at_z(z), rules=rules, look=look, champion_version=1, challenger_version=2)
    assert d.action == action and why in d.reason, d.reason
    assert d.look == look and d.reason.startswith(f"look {look} of 4")
    reg = _Aliases()
    apply_decision(d, reg)
    if action == CONTINUE:
        assert reg.aliases == {}  # an interim look moves nothing


def test_one_look_is_the_fixed_test() -> None:
    rules = PromotionRules(looks=1)
    assert decide(None, _at_z(1.98), rules=rules).action == "promote"
    assert decide(None, _at_z(1.9), rules=rules).action == "keep"
    assert rules.boundary(1) == pytest.approx(1.96, abs=1e-3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PromotionRules(looks=0), "looks must be >= 1"),
        (lambda: PromotionRules(futility_from=0.0), "futility_from"),
        (lambda: PromotionRules(alpha=1.5), "alpha"),
        (lambda: decide(None, _at_z(1.0), rules=PromotionRules(looks=3), look=4), "look must"),
        (lambda: decide(None, _at_z(1.0), look=0), "look must"),
    ],
)
def test_bad_sequential_settings_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# --- in the simulator ---------------------------------------------------------------------

CHAMPION = ScoredPolicy("champion", {"popularity": 0.6, "mf": 0.4})
SABOTAGED = ScoredPolicy("sabotaged", {"popularity": -0.6, "mf": -0.4})  # actions negated
BETTER = ScoredPolicy("better", {"popularity": 0.6, "mf": 0.4, "utility": 1.5})


@pytest.fixture(scope="module")
def contexts(ml_world: SimulationWorld) -> tuple[list[Context], SimResponse]:
    return first_contexts(ml_world, slate_size=K)


def _samples(
    policy: ScoredPolicy, ctxs: list[Context], response: SimResponse, seed: int
) -> ArmSamples:
    logged = log_policy(policy, ctxs, response, K, 12 * len(ctxs), seed)
    rewards, acceptance, ratings = [], [], []
    for c in range(len(ctxs)):
        rows = np.flatnonzero(logged.context == c)
        if rows.shape[0] == 0:
            continue
        rewards.append(float(logged.rewards[rows].mean()))
        acceptance.append(float((logged.picks[rows] >= 0).mean()))
        picked = rows[logged.picks[rows] >= 0]
        ratings.extend((2.0 * logged.rewards[picked] + 3.0).tolist())  # reward = (r - 3) / 2
    shown = {
        int(ctxs[c].candidates[p])
        for c, row in zip(logged.context, logged.positions, strict=True)
        for p in row
    }
    return ArmSamples(rewards, acceptance, ratings, shown)


def _evidence(
    challenger: ScoredPolicy,
    contexts: tuple[list[Context], SimResponse],
    n_movies: int,
    seed: int,
) -> tuple[OfflineEvidence, OnlineEvidence]:
    ctxs, response = contexts
    logged = log_policy(CHAMPION, ctxs, response, K, 1500, seed)
    dr = DoublyRobust()
    estimates = []
    for j, policy in enumerate((CHAMPION, challenger)):
        tables = target_tables(
            policy, ctxs, response, K, draws=16, dm_draws=256, seed=seed + 17 * j
        )
        estimates.append(
            dr.estimate_interval(
                feedback_for(policy, tables, logged, ctxs),
                n_bootstrap_samples=300,
                random_state=seed,
            )
        )
    order = np.random.default_rng(seed).permutation(len(ctxs))
    half = len(ctxs) // 2
    online = ab_evidence(
        _samples(CHAMPION, [ctxs[i] for i in order[:half]], response, seed + 1),
        _samples(challenger, [ctxs[i] for i in order[half:]], response, seed + 2),
        catalogue_size=n_movies,
    )
    return OfflineEvidence(*estimates), online


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sabotaged_challenger_is_never_promoted(
    contexts: tuple[list[Context], SimResponse], ml_world: SimulationWorld, seed: int
) -> None:
    offline, online = _evidence(SABOTAGED, contexts, ml_world.catalog.n_movies, seed)
    d = decide(offline, online, rules=PromotionRules(min_users_per_arm=20))
    assert d.action != "promote", d.reason
    # and the evidence says why: the negated policy really is worse, online and off-policy
    assert online.primary.estimate < 0
    assert offline.challenger.value < offline.champion.value


def test_a_better_challenger_is_promoted_by_the_same_rules(
    contexts: tuple[list[Context], SimResponse], ml_world: SimulationWorld
) -> None:
    offline, online = _evidence(BETTER, contexts, ml_world.catalog.n_movies, 0)
    d = decide(offline, online, rules=PromotionRules(min_users_per_arm=20))
    assert d.action == "promote", d.reason


def _teams(
    rng: np.random.Generator, users: int, p: tuple[float, float], rating: tuple[float, float]
) -> tuple[ArmSamples, ArmSamples]:
    """Two teams on the same users' interleaved slates (4 each): per slate one choice, of
    team t's film with probability p[t], rated ``rating[t]`` +- 0.5 (return (r - 3) / 2)."""
    picks: list[list[list[float]]] = [[[], []] for _ in range(users)]  # per user and team: ratings
    slates = 4
    for u in range(users):
        for _ in range(slates):
            draw = rng.random()
            team = 0 if draw < p[0] else 1 if draw < p[0] + p[1] else None
            if team is not None:
                picks[u][team].append(rating[team] + rng.uniform(-0.5, 0.5))
    out = []
    for t in (0, 1):
        out.append(
            ArmSamples(
                rewards=[sum((r - 3) / 2 for r in pu[t]) / slates for pu in picks],
                acceptance=[len(pu[t]) / slates for pu in picks],
                ratings=[r for pu in picks for r in pu[t]],
                shown=[f"m{t}-{i}" for i in range(20)],
            )
        )
    return out[0], out[1]


def test_interleaving_judges_the_return_each_teams_films_earn() -> None:
    """Films chosen as often but rated higher win the interleaved test (the primary is the
    paired per-user return, not only whose film was chosen); equal teams do not."""
    rng = np.random.default_rng(0)
    champion, challenger = _teams(rng, 300, (0.4, 0.4), (3.5, 4.3))
    users = {"champion": 700, "challenger": 300}
    shares = {"champion": 0.7, "challenger": 0.3}
    online = interleaving_evidence(
        champion, challenger, catalogue_size=100, users=users, shares=shares
    )
    assert online.method == "interleaving" and online.srm is not None and online.srm.ok
    assert online.primary.test.startswith("interleaving paired t")
    assert online.primary.ci95_low > 0
    assert decide(None, online).action == "promote"
    same = interleaving_evidence(*_teams(rng, 300, (0.4, 0.4), (4.0, 4.0)), catalogue_size=100)
    assert same.srm is None  # no split given: nothing to check
    assert decide(None, same).action == "keep"


def test_interleaving_pairs_every_user_whose_feedback_credited_a_team() -> None:
    """A user whose only pick was one of the champion's films, rated 1 star, is a pair in the
    test (their credit is negative, not "no choice"); a user with no feedback is not."""
    champion = ArmSamples(
        rewards=[-1.0, 0.0, 0.0], acceptance=[0.0, 0.0, 0.0], ratings=[1.0], shown=[]
    )
    challenger = ArmSamples(
        rewards=[0.0, 1.0, 0.0], acceptance=[0.0, 1.0, 0.0], ratings=[5.0], shown=[]
    )
    online = interleaving_evidence(champion, challenger, catalogue_size=10)
    assert online.primary.n == 2
    assert online.primary.estimate == pytest.approx(1.0)


def test_an_interleaved_test_with_a_broken_split_or_no_choices_promotes_nothing() -> None:
    rng = np.random.default_rng(1)
    champion, challenger = _teams(rng, 300, (0.2, 0.6), (4.0, 4.0))
    broken = interleaving_evidence(
        champion,
        challenger,
        catalogue_size=100,
        users={"champion": 500, "challenger": 500},
        shares={"champion": 0.9, "challenger": 0.1},
    )
    assert "sample ratio mismatch" in decide(None, broken).reason
    silent = interleaving_evidence(*_teams(rng, 50, (0.0, 0.0), (4.0, 4.0)), catalogue_size=100)
    assert silent.primary.n == 0 and decide(None, silent).action == "keep"


def test_interleaved_teams_must_cover_the_same_users() -> None:
    rng = np.random.default_rng(2)
    champion, _ = _teams(rng, 30, (0.4, 0.4), (4.0, 4.0))
    _, challenger = _teams(rng, 31, (0.4, 0.4), (4.0, 4.0))
    with pytest.raises(ValueError, match="differ in users: 30 vs 31"):
        interleaving_evidence(champion, challenger, catalogue_size=100)
