"""The autopilot: guarded promotion over the live service's logged traffic, one step at a time.

Each ``step`` reads the registry's aliases and the Redis logs of the two A/B arms ("champion"
and "challenger" by default) and does at most one thing:

- **watch**: after a promotion the challenger arm serves the previous champion
  (``previous-champion``) beside the new one; once both arms served ``watch_slates_per_arm``
  slates since the new champion's first, agent.promotion.decide_watch confirms the promotion
  or rolls it back (champion alias back on the previous version);
- **install**: with no challenger under test (its alias missing, on the champion, or on a
  version already judged), the ``candidate_alias`` version (what ``marquee learn --alias
  candidate`` registers) becomes the challenger when it is newer than the champion and was
  never judged;
- **decide**: a challenger that served ``min_slates_per_arm`` slates since its first (and the
  champion arm as many in the same window) is judged once: off-policy (SNIPS of the challenger
  on the champion arm's logged slates, when the Ranker and store are given) then the online
  A/B (Welch on per-user reward, SRM, guardrails), all built by serving.promotion_evidence from
  the same logs ``marquee ab report`` reads; agent.promotion.decide, logged to MLflow
  (agent.promotion.log_decision) and applied to the aliases (agent.promotion.apply_decision).
  A promotion starts the watch. With ``rules.looks`` > 1 the online stage is analysed at
  each of ``looks`` equal steps of ``min_slates_per_arm`` (group-sequential, see
  agent.promotion): a clear win promotes early, a challenger not ahead from half the plan on
  is stopped early, and an interim look that settles nothing ("continue", logged like a
  decision) lets the test go on.

Interleaved (``AutopilotConfig.interleaved``: MARQUEE_AB's challenger arm names the champion
arm ``against``, serving.ab): the challenger arm's users get team-draft slates of both versions
while the champion arm serves the rest plainly. A test then counts the interleaved slates
alone, its primary metric is the return each team's films earned, paired within users, and
its guardrails compare the two teams on the same slates (agent.promotion.interleaving_evidence);
the watch interleaves the new champion with the previous one the same way. Only the challenger
arm's users see a candidate, and only in half of each slate, so a test costs the live traffic
less than a split; it needs no fewer slates when a candidate mostly reorders the champion's
films (README, "The online loop's figures").

Which versions were judged or watched is read back from the decisions' MLflow experiment, so a
one-shot run (cron), a loop and a restarted loop all decide each version once: a version is
never tested again and again until it happens to win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from agent.promotion import (
    CONTINUE,
    PREVIOUS_ALIAS,
    WATCH,
    Decision,
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
from features.graph.store import GraphStore
from features.ranker import Actor, Ranker
from serving.interleaved import VERSION_SEPARATOR
from serving.promotion_evidence import (
    Logs,
    arm_samples,
    off_policy,
    read_logs,
    slates_served,
    team_samples,
)

log = logging.getLogger(__name__)

EXPERIMENT = "marquee-promotion"
SKEW_SECONDS = 60.0  # read the logs from this long before an alias change (clock skew)


def version_number(label: str) -> int | None:
    """The registry version in a served version label ("ddpg-v12" -> 12), None if none."""
    tail = label.rsplit("-v", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def served_versions(label: str) -> tuple[int | None, ...]:
    """The versions in a slate's version label: one for a plain slate, (team A, team B) for an
    interleaved one ("ddpg-v3|ddpg-v5" -> (3, 5))."""
    return tuple(version_number(part) for part in label.split(VERSION_SEPARATOR))


def aliases(registry: Any) -> dict[str, int]:
    """Alias -> version of an agent.registry.PolicyRegistry."""
    found: dict[str, int] = {}
    for row in registry.versions():
        for alias in row["aliases"]:
            found[str(alias)] = int(row["version"])
    return found


@dataclass(frozen=True)
class AutopilotConfig:
    """Which arms, how much evidence, and the promotion rules."""

    champion_arm: str = "champion"
    challenger_arm: str = "challenger"
    candidate_alias: str | None = "candidate"
    """The learner's alias; None: judge only what the challenger alias names."""
    min_slates_per_arm: int = 300
    watch_slates_per_arm: int = 300
    """Slates per arm a new champion is watched for beside the previous one; 0: no watch."""
    temperature: float = 0.5
    """The service's sampling temperature (MARQUEE_TEMPERATURE), for the off-policy stage."""
    interleaved: bool = False
    """The challenger arm interleaves against the champion arm (module doc): tests count its
    interleaved slates (``min_slates_per_arm`` of them) and compare the teams."""
    shares: tuple[float, float] = (0.5, 0.5)
    """The champion and challenger arms' traffic shares (MARQUEE_AB), for the SRM check."""
    seed: int = 0
    experiment: str = EXPERIMENT
    rules: PromotionRules = field(default_factory=PromotionRules)

    def __post_init__(self) -> None:
        if self.min_slates_per_arm < 2:
            raise ValueError(f"min_slates_per_arm must be >= 2, got {self.min_slates_per_arm}")
        if self.watch_slates_per_arm < 0:
            raise ValueError(f"watch_slates_per_arm must be >= 0, got {self.watch_slates_per_arm}")
        if not self.champion_arm or not self.challenger_arm:
            raise ValueError("the champion and challenger arms need names")
        if self.champion_arm == self.challenger_arm:
            raise ValueError(f"the two arms must differ, both are {self.champion_arm!r}")
        if len(self.shares) != 2 or min(self.shares) <= 0:
            raise ValueError(f"shares must be two positive numbers, got {self.shares}")
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 (off-policy needs sampled slates), got {self.temperature}"
            )


@dataclass(frozen=True)
class OffPolicyParts:
    """What the off-policy stage needs: the service's Ranker and graph store (to re-score the
    logged slates) and a loader of a version's actor."""

    ranker: Ranker
    store: GraphStore
    actor_of: Callable[[int], Actor]


@dataclass(frozen=True)
class StepResult:
    """What one step did: "decided", "looked" (an interim look that settled nothing),
    "installed", "waiting" (not enough slates yet) or "idle" (nothing under test and no new
    candidate)."""

    action: str
    detail: str
    decision: Decision | None = None
    run_id: str | None = None
    slates: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decision"] = None if self.decision is None else self.decision.as_dict()
        return out


class Autopilot:
    """Guarded promotion over the live logs (module doc). ``since`` is a lower bound of the
    slates read (advanced by this instance on each alias change; 0 reads every kept slate)."""

    def __init__(
        self,
        registry: Any,
        client: redis.Redis,
        prefix: str,
        *,
        catalogue_size: int,
        config: AutopilotConfig | None = None,
        off_policy_parts: OffPolicyParts | None = None,
        artifacts_dir: Path | None = None,
        since: float = 0.0,
    ) -> None:
        self.registry = registry
        self.client = client
        self.prefix = prefix
        self.catalogue_size = catalogue_size
        self.config = config or AutopilotConfig()
        self.ope = off_policy_parts
        self.artifacts_dir = artifacts_dir
        self.since = since

    def history(self) -> tuple[set[int], set[int], dict[int, int]]:
        """(versions judged as challengers, new champions watched, the last interim look taken
        of each challenger still under test), from MLflow."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.registry.tracking_uri)
        exp = client.get_experiment_by_name(self.config.experiment)
        judged: set[int] = set()
        watched: set[int] = set()
        looked: dict[int, int] = {}
        if exp is None:
            return judged, watched, looked
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            for run in page:
                params = run.data.params
                version = params.get("challenger_version", "")
                if not version.isdigit():
                    continue
                if params.get("action") == CONTINUE:
                    look = params.get("look", "1/1").split("/")[0]
                    if look.isdigit():
                        looked[int(version)] = max(looked.get(int(version), 0), int(look))
                elif params.get("stage") == WATCH:
                    watched.add(int(version))
                else:
                    judged.add(int(version))
            token = page.token
            if not token:
                return judged, watched, looked

    def step(self, *, final: bool = False) -> StepResult:
        """At most one install or decision (module doc). ``final``: judge on whatever there is
        (two slates per arm), e.g. at the end of a simulated run."""
        cfg = self.config
        found = aliases(self.registry)
        champ, chall = found.get("champion"), found.get("challenger")
        prev = found.get(PREVIOUS_ALIAS)
        if champ is None:
            return StepResult("idle", "no champion alias: nothing to compare against")
        judged, watched, looked = self.history()
        need = 2 if final else cfg.min_slates_per_arm
        if chall is not None and chall == prev and chall != champ and champ not in watched:
            return self._watch(champ, chall, 2 if final else cfg.watch_slates_per_arm)
        if chall is None or chall == champ or chall in judged:
            cand = found.get(cfg.candidate_alias) if cfg.candidate_alias else None
            if cand is not None and cand > champ and cand not in judged and cand != chall:
                self._moved()
                self.registry.set_alias("challenger", cand)
                log.info("autopilot: candidate v%d is now the challenger", cand)
                return StepResult("installed", f"candidate v{cand} is now the challenger")
            return StepResult("idle", "no challenger under test and no new candidate")
        return self._decide(champ, chall, need, None if final else looked.get(chall, 0))

    def _moved(self) -> None:
        self.since = max(self.since, time.time() - SKEW_SECONDS)

    def _window(
        self, champ: int, chall: int, start_arm: str, start_version: int
    ) -> tuple[Logs, str, str, int]:
        """The logs from the first slate ``start_arm`` served with ``start_version``; the two
        arms' version labels (interleaved: the challenger arm's "champion|challenger" label)
        and the slates each served there (the smaller count; interleaved: the challenger
        arm's)."""
        logs = read_logs(self.client, self.prefix, self.since)
        cfg = self.config
        first = next(
            (
                i
                for i, s in enumerate(logs.served)
                if s.arm == start_arm and served_versions(s.version)[-1] == start_version
            ),
            None,
        )
        if first is None:
            return logs, "", "", 0
        window = logs.served[first:]
        logs = Logs(window, logs.rewards, logs.accepted, logs.ratings, logs.picks)

        def label(arm: str, *versions: int) -> str:
            return next(
                (
                    s.version
                    for s in window
                    if s.arm == arm and served_versions(s.version) == versions
                ),
                "",
            )

        champ_label = label(cfg.champion_arm, champ)
        if cfg.interleaved:
            chall_label = label(cfg.challenger_arm, champ, chall)
            return (
                logs,
                champ_label,
                chall_label,
                slates_served(logs, cfg.challenger_arm, chall_label),
            )
        chall_label = label(cfg.challenger_arm, chall)
        n = min(
            slates_served(logs, cfg.champion_arm, champ_label),
            slates_served(logs, cfg.challenger_arm, chall_label),
        )
        return logs, champ_label, chall_label, n

    def _decide(self, champ: int, chall: int, need: int, looked: int | None) -> StepResult:
        """Judge the challenger at the look its slates reach (``looked``: the last interim look
        already taken; None: the final look now, on whatever there is)."""
        cfg = self.config
        looks = cfg.rules.looks
        logs, champ_label, chall_label, n = self._window(champ, chall, cfg.challenger_arm, chall)
        look = looks if looked is None else min(looks, n * looks // need)
        if looked is not None and (look < 1 or look <= looked):
            nxt = -(-(looked + 1) * need // looks)  # ceil: the slates per arm of the next look
            at = "" if looks == 1 else f" (look {looked + 1} of {looks})"
            return StepResult(
                "waiting",
                f"challenger v{chall}: {n} of {nxt} slates per arm{at}",
                slates={"per_arm": n},
            )
        if n < 2:
            return StepResult(
                "waiting", f"challenger v{chall}: {n} slates per arm", slates={"per_arm": n}
            )
        if cfg.interleaved:
            online = self._interleaved(logs, champ_label, chall_label, control=cfg.champion_arm)
        else:
            online = self._evidence(
                logs, (cfg.champion_arm, champ_label), (cfg.challenger_arm, chall_label), n
            )
        offline = None
        if self.ope is not None:
            estimates = off_policy(
                self.client,
                self.prefix,
                logs,
                arm=cfg.champion_arm,
                version=champ_label,
                ranker=self.ope.ranker,
                store=self.ope.store,
                challenger_act=self.ope.actor_of(chall),
                temperature=cfg.temperature,
                seed=cfg.seed,
            )
            offline = None if estimates is None else OfflineEvidence(*estimates)
        decision = decide(
            offline,
            online,
            rules=cfg.rules,
            champion_version=champ,
            challenger_version=chall,
            look=look,
        )
        result = self._record(decision, n)
        if decision.action == "promote" and cfg.watch_slates_per_arm > 0:
            self.registry.set_alias("challenger", champ)  # the watch: the previous champion
            log.info("autopilot: watching v%d beside the previous champion v%d", chall, champ)
        return result

    def _watch(self, champ: int, prev: int, need: int) -> StepResult:
        cfg = self.config
        # the window opens with the new champion's first slate on the champion arm
        logs, champ_label, prev_label = self._watch_window(champ, prev)
        if cfg.interleaved:  # the challenger arm interleaves the new champion with the previous
            n = slates_served(logs, cfg.challenger_arm, prev_label)
        else:
            n = min(
                slates_served(logs, cfg.champion_arm, champ_label),
                slates_served(logs, cfg.challenger_arm, prev_label),
            )
        if n < need:
            return StepResult(
                "waiting",
                f"watching champion v{champ}: {n} of {need} slates per arm",
                slates={"per_arm": n},
            )
        if cfg.interleaved:
            online = self._interleaved(logs, champ_label, prev_label, control=cfg.challenger_arm)
        else:
            online = self._evidence(
                logs, (cfg.challenger_arm, prev_label), (cfg.champion_arm, champ_label), n
            )
        decision = decide_watch(
            online, rules=cfg.rules, previous_version=prev, champion_version=champ
        )
        return self._record(decision, n)

    def _evidence(
        self, logs: Logs, control: tuple[str, str], treatment: tuple[str, str], n: int
    ) -> OnlineEvidence:
        """The A/B evidence of (arm, version label) ``treatment`` against ``control`` over every
        slate of the window (Welch on per-user figures, SRM on the users each arm served);
        coverage alone compares the first ``n`` slates of each, as it grows with slates shown."""
        full = [arm_samples(logs, arm, label) for arm, label in (control, treatment)]
        shares = self._shares()
        if control[0] != self.config.champion_arm:  # a watch: the arms' roles are swapped
            shares = {"champion": shares["challenger"], "challenger": shares["champion"]}
        online = ab_evidence(*full, catalogue_size=self.catalogue_size, shares=shares)
        cut = [
            arm_samples(logs, arm, label, n).outcome(self.catalogue_size).coverage
            for arm, label in (control, treatment)
        ]
        return replace(
            online,
            champion=replace(online.champion, coverage=cut[0]),
            challenger=replace(online.challenger, coverage=cut[1]),
        )

    def _interleaved(
        self, logs: Logs, champ_label: str, test_label: str, control: str
    ) -> OnlineEvidence:
        """The interleaving evidence of the challenger arm's slates labelled ``test_label``:
        the other team against the ``control`` team (the champion arm's team when judging a
        challenger, the previous champion's in a watch), with the SRM check of the users each
        arm served."""
        cfg = self.config
        teams = (cfg.champion_arm, cfg.challenger_arm)
        if control != teams[0]:
            teams = (teams[1], teams[0])
        a, b = team_samples(logs, cfg.challenger_arm, test_label, teams)
        plain = {
            s.user for s in logs.served if s.arm == cfg.champion_arm and s.version == champ_label
        }
        users = {"champion": len(plain), "challenger": len(a.rewards)}
        return interleaving_evidence(
            a, b, catalogue_size=self.catalogue_size, users=users, shares=self._shares()
        )

    def _shares(self) -> dict[str, float]:
        """The champion and challenger arms' configured shares, keyed as the SRM check reads."""
        return {"champion": self.config.shares[0], "challenger": self.config.shares[1]}

    def _watch_window(self, champ: int, prev: int) -> tuple[Logs, str, str]:
        cfg = self.config
        logs, champ_label, _, _ = self._window(champ, champ, cfg.champion_arm, champ)
        want = (champ, prev) if cfg.interleaved else (prev,)
        prev_label = next(
            (
                s.version
                for s in logs.served
                if s.arm == cfg.challenger_arm and served_versions(s.version) == want
            ),
            "",
        )
        return logs, champ_label, prev_label

    def _record(self, decision: Decision, n: int) -> StepResult:
        run_id = log_decision(
            decision,
            tracking_uri=self.registry.tracking_uri,
            experiment=self.config.experiment,
            artifacts_dir=self.artifacts_dir,
            step=n,
        )
        if decision.action == CONTINUE:  # nothing moves: the window stays as it is
            return StepResult(
                "looked", decision.reason, decision=decision, run_id=run_id, slates={"per_arm": n}
            )
        self._moved()
        apply_decision(decision, self.registry)
        return StepResult(
            "decided", decision.reason, decision=decision, run_id=run_id, slates={"per_arm": n}
        )
