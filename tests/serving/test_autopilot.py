"""The autopilot over the service's Redis logs: a candidate becomes the challenger, a clear win
is promoted and watched, a new champion that drops in the watch is rolled back, a loss or a
broken split promotes nothing, each version is judged once (across restarts), every decision
is in MLflow; bad settings and bad `marquee autopilot` invocations are named."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis
from mlflow import MlflowClient
from typer.testing import CliRunner

from agent.promotion import PREVIOUS_ALIAS, PromotionRules
from serving.autopilot import Autopilot, AutopilotConfig, version_number
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation, RecLog
from serving.schemas.feedback import FeedbackEvent, FeedbackType

MOVIES = [f"m{i}" for i in range(40)]


class FakeRegistry:
    """agent.registry.PolicyRegistry's alias surface, with a real MLflow for the decisions."""

    def __init__(self, tracking_uri: str, versions: int) -> None:
        self.tracking_uri = tracking_uri
        self.numbers = list(range(1, versions + 1))
        self.aliases: dict[str, int] = {}

    def versions(self) -> list[dict[str, object]]:
        return [
            {"version": v, "aliases": [a for a, x in self.aliases.items() if x == v]}
            for v in self.numbers
        ]

    def set_alias(self, alias: str, version: int) -> None:
        self.aliases[alias] = version


class Traffic:
    """Logs slates and their feedback as the service and its users would."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.reclog = RecLog(client, prefix, ttl_seconds=3600)
        self.sink = RedisFeedbackStore(client, prefix, self.reclog)
        self.n = 0
        self.rng = np.random.default_rng(0)

    def serve(
        self,
        champion: tuple[int, int, float],
        challenger: tuple[int, int, float],
        per_user: int = 3,
    ) -> None:
        """Each arm's (version, users, acceptance): its users' slates, interleaved in time as
        a live split serves them, and their feedback (a 5-star rating or a skip)."""
        plan = [
            (arm, version, u, accept)
            for arm, (version, users, accept) in (
                ("champion", champion),
                ("challenger", challenger),
            )
            for u in range(users)
            for _ in range(per_user)
        ]
        events = []
        for j in self.rng.permutation(len(plan)):
            arm, version, u, accept = plan[int(j)]
            self.n += 1
            rec = f"r{self.n}"
            slate = [str(m) for m in self.rng.choice(MOVIES, size=5, replace=False)]
            self.reclog.log(
                LoggedRecommendation(
                    id=rec,
                    user=f"{arm}-u{u}",
                    arm=arm,
                    policy_version=f"ddpg-v{version}",
                    slate=slate,
                    propensities=np.full(5, 0.5, np.float32),
                    state=None,
                    action=None,
                    created=time.time(),
                )
            )
            events.append(self._feedback(rec, slate[0] if self.rng.random() < accept else None))
        self.sink.submit(events)

    def _feedback(self, rec: str, pick: str | None) -> FeedbackEvent:
        """A 5-star rating of ``pick``, or a skip of the slate when it is None."""
        if pick is None:
            return FeedbackEvent(
                event_id=f"e{self.n}", type=FeedbackType.SKIPPED, recommendation_id=rec
            )
        return FeedbackEvent(
            event_id=f"e{self.n}",
            type=FeedbackType.RATED,
            recommendation_id=rec,
            movie=pick,
            rating=5.0,
        )

    def serve_interleaved(
        self,
        champion: tuple[int, int, float],
        test: tuple[int, int, int, float, float],
        per_user: int = 3,
    ) -> None:
        """The champion arm's (version, users, acceptance) plain slates, and the challenger
        arm's (team A version, team B version, users, P(choose A's item), P(choose B's item))
        team-draft slates (teams alternate), with their feedback."""
        version, users, accept = champion
        va, vb, test_users, pa, pb = test
        plan = [("champion", u) for u in range(users) for _ in range(per_user)]
        plan += [("challenger", u) for u in range(test_users) for _ in range(per_user)]
        events = []
        for j in self.rng.permutation(len(plan)):
            arm, u = plan[int(j)]
            self.n += 1
            rec = f"r{self.n}"
            slate = [str(m) for m in self.rng.choice(MOVIES, size=6, replace=False)]
            teams: tuple[str, ...] = ()
            label = f"ddpg-v{version}"
            if arm == "challenger":
                first = int(self.rng.integers(2))
                teams = tuple(("champion", "challenger")[(i + first) % 2] for i in range(6))
                label = f"ddpg-v{va}|ddpg-v{vb}"
            self.reclog.log(
                LoggedRecommendation(
                    id=rec,
                    user=f"{arm}-u{u}",
                    arm=arm,
                    policy_version=label,
                    slate=slate,
                    propensities=np.full(6, 0.5, np.float32),
                    state=None,
                    action=None,
                    created=time.time(),
                    teams=teams,
                )
            )
            draw = self.rng.random()
            pick = None
            if arm == "champion" and draw < accept:
                pick = slate[0]
            elif arm == "challenger" and draw < pa + pb:
                want = "champion" if draw < pa else "challenger"
                pick = slate[teams.index(want)]
            events.append(self._feedback(rec, pick))
        self.sink.submit(events)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow database for the module (creating one takes seconds); each test decides in
    its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def setup(
    server_cp: tuple[redis.Redis, str],
    tmp_path: Path,
    tracking_uri: str,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[FakeRegistry, Traffic, Autopilot]]:
    client, prefix = server_cp
    registry = FakeRegistry(tracking_uri, versions=3)
    registry.aliases.update({"champion": 1, "challenger": 1, "candidate": 2})
    config = AutopilotConfig(
        min_slates_per_arm=100,
        watch_slates_per_arm=100,
        experiment=f"promotion-{request.node.name}",
    )
    pilot = Autopilot(
        registry,
        client,
        prefix,
        catalogue_size=len(MOVIES),
        config=config,
        artifacts_dir=tmp_path / "artifacts",
    )
    yield registry, Traffic(client, prefix), pilot


def _decision_json(registry: FakeRegistry, run_id: str, tmp_path: Path) -> dict[str, object]:
    local = MlflowClient(registry.tracking_uri).download_artifacts(
        run_id, "decision.json", str(tmp_path)
    )
    return json.loads(Path(local).read_text())  # type: ignore[no-any-return]


def test_a_clear_win_is_promoted_watched_and_confirmed(
    setup: tuple[FakeRegistry, Traffic, Autopilot], tmp_path: Path
) -> None:
    registry, traffic, pilot = setup
    first = pilot.step()
    assert first.action == "installed" and registry.aliases["challenger"] == 2
    waiting = pilot.step()
    assert waiting.action == "waiting" and "0 of 100" in waiting.detail
    traffic.serve((1, 40, 0.2), (2, 40, 0.8), per_user=3)
    decided = pilot.step()
    assert decided.action == "decided" and decided.decision is not None
    assert decided.decision.action == "promote", decided.detail
    # promoted, and watched: the challenger arm serves the previous champion
    assert registry.aliases["champion"] == 2 and registry.aliases[PREVIOUS_ALIAS] == 1
    assert registry.aliases["challenger"] == 1
    assert decided.run_id is not None
    logged = _decision_json(registry, decided.run_id, tmp_path)
    assert logged["action"] == "promote" and logged["online"]["srm"]["ok"]  # type: ignore[index]
    assert pilot.step().action == "waiting"  # the watch needs the new champion's own slates
    traffic.serve((2, 40, 0.8), (1, 40, 0.2), per_user=3)
    watched = pilot.step()
    assert watched.decision is not None and watched.decision.stage == "watch"
    assert watched.decision.action == "keep" and "confirmed" in watched.detail
    assert registry.aliases["champion"] == 2 and registry.aliases["challenger"] == 2
    assert pilot.step().action == "idle"  # v2 was judged; no newer candidate


def test_a_new_champion_that_drops_in_the_watch_is_rolled_back(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
) -> None:
    registry, traffic, pilot = setup
    pilot.step()
    traffic.serve((1, 40, 0.2), (2, 40, 0.8), per_user=3)
    assert pilot.step().decision.action == "promote"  # type: ignore[union-attr]
    traffic.serve((2, 40, 0.1), (1, 40, 0.6), per_user=3)  # it got worse live
    watched = pilot.step()
    assert watched.decision is not None and watched.decision.action == "rollback"
    assert registry.aliases["champion"] == 1 and registry.aliases["challenger"] == 1


@pytest.mark.parametrize(
    ("case", "champion", "challenger", "reason"),
    [
        ("a loss", (40, 0.7), (40, 0.2), "guardrail dropped"),
        ("equal arms", (40, 0.5), (40, 0.5), "inconclusive"),
        ("a broken split", (60, 0.2), (20, 0.9), "sample ratio mismatch"),
    ],
)
def test_nothing_but_a_clean_significant_win_is_promoted(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
    case: str,
    champion: tuple[int, float],
    challenger: tuple[int, float],
    reason: str,
) -> None:
    registry, traffic, pilot = setup
    pilot.step()
    traffic.serve((1, champion[0], champion[1]), (2, challenger[0], challenger[1]), per_user=6)
    result = pilot.step()
    assert result.decision is not None and result.decision.action != "promote", case
    assert reason in result.detail, result.detail
    assert registry.aliases["champion"] == 1 and registry.aliases["challenger"] == 1


def test_each_version_is_judged_once_even_after_a_restart(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
) -> None:
    registry, traffic, pilot = setup
    pilot.step()
    traffic.serve((1, 40, 0.5), (2, 40, 0.48), per_user=3)
    assert pilot.step().decision.action == "keep"  # type: ignore[union-attr]
    registry.set_alias("challenger", 2)  # someone puts it back by hand
    again = Autopilot(
        registry, pilot.client, pilot.prefix, catalogue_size=len(MOVIES), config=pilot.config
    )
    assert again.step().action == "idle"  # read back from MLflow: v2 was judged
    registry.set_alias("candidate", 3)  # the learner's next version is taken up
    assert again.step().action == "installed" and registry.aliases["challenger"] == 3


def _sequential(pilot: Autopilot, looks: int = 4, plan: int = 400) -> Autopilot:
    """The same autopilot with ``looks`` analyses over a plan of ``plan`` slates per arm."""
    config = replace(pilot.config, min_slates_per_arm=plan, rules=PromotionRules(looks=looks))
    return Autopilot(
        pilot.registry, pilot.client, pilot.prefix, catalogue_size=len(MOVIES), config=config
    )


def test_a_clear_win_is_promoted_at_an_early_look(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
) -> None:
    registry, traffic, pilot = setup
    pilot = _sequential(pilot)
    assert pilot.step().action == "installed"
    waiting = pilot.step()
    assert waiting.action == "waiting" and "0 of 100 slates per arm (look 1 of 4)" in waiting.detail
    traffic.serve((1, 40, 0.2), (2, 40, 0.8), per_user=3)  # 120 per arm: look 1 of a 400 plan
    decided = pilot.step()
    assert decided.decision is not None and decided.decision.action == "promote", decided.detail
    assert decided.decision.look == 1 and registry.aliases["champion"] == 2


def test_interim_looks_go_on_and_a_challenger_not_ahead_is_stopped_at_half_the_plan(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
) -> None:
    registry, traffic, pilot = setup
    pilot = _sequential(pilot)
    pilot.step()
    traffic.serve((1, 40, 0.5), (2, 40, 0.48), per_user=3)
    looked = pilot.step()
    assert looked.action == "looked" and looked.decision is not None, looked.detail
    assert looked.decision.look == 1 and registry.aliases["challenger"] == 2  # still on test
    assert looked.run_id is not None  # the interim look is in MLflow with its evidence
    assert pilot.step().action == "waiting"  # look 1 was taken
    restarted = _sequential(pilot)
    again = restarted.step()  # read back from MLflow: no second look 1
    assert again.action == "waiting" and "(look 2 of 4)" in again.detail, again.detail
    traffic.serve((1, 40, 0.5), (2, 40, 0.48), per_user=3)  # 240 per arm: look 2
    stopped = restarted.step()
    assert stopped.decision is not None and stopped.decision.action == "keep", stopped.detail
    assert stopped.decision.look == 2 and "futility" in stopped.detail
    assert registry.aliases["challenger"] == 1  # it stopped taking traffic at half the plan
    assert restarted.step().action == "idle"  # and it was judged once


def test_no_champion_means_nothing_to_do(setup: tuple[FakeRegistry, Traffic, Autopilot]) -> None:
    registry, _, pilot = setup
    registry.aliases.clear()
    assert pilot.step().action == "idle"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_slates_per_arm", 1, "min_slates_per_arm must be >= 2"),
        ("watch_slates_per_arm", -1, "watch_slates_per_arm must be >= 0"),
        ("challenger_arm", "champion", "the two arms must differ"),
        ("champion_arm", "", "need names"),
        ("temperature", 0.0, "temperature must be > 0"),
        ("shares", (0.5, 0.0), "shares must be two positive numbers"),
    ],
)
def test_bad_autopilot_settings_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AutopilotConfig(**{field: value})  # type: ignore[arg-type]


def test_version_labels() -> None:
    assert version_number("ddpg-v12") == 12
    assert version_number("td3-v3") == 3
    assert version_number("popularity") is None
    assert version_number("ddpg-vx") is None


AB = {"salt": "s", "arms": [{"name": "champion", "policy": "champion", "share": 0.5}]}


@pytest.mark.parametrize(
    ("ab", "args", "message"),
    [
        (
            {**AB, "arms": [{"name": "champion", "policy": "champion", "share": 1.0}]},
            [],
            "MARQUEE_AB has no arm 'challenger'",
        ),
        (
            {
                "salt": "s",
                "mode": "interleave",
                "arms": [
                    {"name": "champion", "policy": "champion", "share": 0.5},
                    {"name": "challenger", "policy": "challenger", "share": 0.5},
                ],
            },
            [],
            "A/B split",
        ),
        (
            {
                "salt": "s",
                "arms": [
                    {"name": "champion", "policy": "champion", "share": 0.5},
                    {"name": "challenger", "policy": "challenger", "share": 0.5},
                ],
            },
            ["--every", "0"],
            "--every must be > 0",
        ),
        (
            {
                "salt": "s",
                "arms": [
                    {"name": "champion", "policy": "champion", "share": 0.5},
                    {"name": "challenger", "policy": "challenger", "share": 0.5},
                ],
            },
            ["--min-slates-per-arm", "1"],
            "min_slates_per_arm must be >= 2",
        ),
        (
            {
                "salt": "s",
                "arms": [
                    {"name": "champion", "policy": "champion", "share": 0.4},
                    {"name": "other", "policy": "popularity", "share": 0.3},
                    {
                        "name": "challenger",
                        "policy": "challenger",
                        "share": 0.3,
                        "against": "other",
                    },
                ],
            },
            [],
            "interleaves against 'other'",
        ),
        (
            {
                "salt": "s",
                "arms": [
                    {
                        "name": "champion",
                        "policy": "champion",
                        "share": 0.5,
                        "against": "challenger",
                    },
                    {"name": "challenger", "policy": "challenger", "share": 0.5},
                ],
            },
            [],
            "must serve plain slates",
        ),
    ],
)
def test_bad_autopilot_invocations_are_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ab: dict[str, object],
    args: list[str],
    message: str,
) -> None:
    from marquee.cli import app

    monkeypatch.setenv("MARQUEE_AB", json.dumps(ab))
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "autopilot", *args])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output


def _interleaved(pilot: Autopilot, shares: tuple[float, float] = (0.5, 0.5)) -> Autopilot:
    """The same autopilot judging the challenger arm's interleaved slates."""
    config = replace(pilot.config, interleaved=True, shares=shares)
    return Autopilot(
        pilot.registry,
        pilot.client,
        pilot.prefix,
        catalogue_size=len(MOVIES),
        config=config,
        artifacts_dir=pilot.artifacts_dir,
    )


def test_an_interleaved_win_is_promoted_and_watched_by_interleaving(
    setup: tuple[FakeRegistry, Traffic, Autopilot], tmp_path: Path
) -> None:
    """Only the challenger arm's interleaved slates count; users who pick the challenger's
    items promote it; the watch interleaves the new champion with the previous one."""
    registry, traffic, pilot = setup
    pilot = _interleaved(pilot)
    assert pilot.step().action == "installed"
    traffic.serve_interleaved((1, 40, 0.4), (1, 2, 20, 0.2, 0.6), per_user=3)  # 60 of 100
    waiting = pilot.step()
    assert waiting.action == "waiting" and "60 of 100" in waiting.detail, waiting.detail
    traffic.serve_interleaved((1, 20, 0.4), (1, 2, 20, 0.2, 0.6), per_user=3)
    decided = pilot.step()
    assert decided.decision is not None and decided.decision.action == "promote", decided.detail
    online = decided.decision.online
    assert online is not None and online.method == "interleaving"
    assert online.srm is not None and online.srm.ok
    assert online.challenger.acceptance > online.champion.acceptance  # per team, same slates
    assert decided.slates == {"per_arm": 120}
    assert registry.aliases["champion"] == 2 and registry.aliases["challenger"] == 1
    assert decided.run_id is not None
    logged = _decision_json(registry, decided.run_id, tmp_path)
    assert logged["online"]["method"] == "interleaving"  # type: ignore[index]
    # the watch: the challenger arm now interleaves v2 (team champion) with v1 (challenger)
    traffic.serve_interleaved((2, 40, 0.4), (2, 1, 40, 0.55, 0.25), per_user=3)
    watched = pilot.step()
    assert watched.decision is not None and watched.decision.stage == "watch", watched.detail
    assert watched.decision.action == "keep" and "confirmed" in watched.detail
    assert registry.aliases["champion"] == 2


@pytest.mark.parametrize(
    ("case", "test", "shares", "reason"),
    [
        ("users prefer the champion's items", (1, 2, 40, 0.6, 0.2), (0.5, 0.5), "dropped"),
        ("no preference", (1, 2, 40, 0.4, 0.4), (0.5, 0.5), "inconclusive"),
        ("a broken split", (1, 2, 40, 0.2, 0.6), (0.9, 0.1), "sample ratio mismatch"),
        ("plain slates on the test arm", (1, 2, 40, 0.0, 0.0), (0.5, 0.5), "0 slates"),
    ],
)
def test_nothing_but_a_clean_interleaved_win_is_promoted(
    setup: tuple[FakeRegistry, Traffic, Autopilot],
    case: str,
    test: tuple[int, int, int, float, float],
    shares: tuple[float, float],
    reason: str,
) -> None:
    registry, traffic, pilot = setup
    pilot = _interleaved(pilot, shares)
    pilot.step()
    if case.startswith("plain"):  # an A/B split's slates are not an interleaved test
        traffic.serve((1, 40, 0.2), (2, 40, 0.8), per_user=3)
    else:
        traffic.serve_interleaved((1, 40, 0.4), test, per_user=3)
    result = pilot.step()
    assert result.action != "decided" or result.decision.action != "promote", case  # type: ignore[union-attr]
    assert reason in result.detail, result.detail
    assert registry.aliases["champion"] == 1
