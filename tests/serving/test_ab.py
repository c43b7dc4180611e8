"""A/B arms: validation of shares and names, and stable salted-hash assignment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from serving.ab import INTERLEAVE, ABConfig, ABRouter, Arm, bucket
from serving.settings import Settings


def _arms(*shares: float) -> list[dict[str, Any]]:
    return [{"name": f"a{i}", "policy": "popularity", "share": s} for i, s in enumerate(shares)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"arms": _arms(0.5, 0.4)}, "shares must sum to 1, they sum to 0.9"),
        ({"arms": _arms(0.7, 0.7)}, "shares must sum to 1, they sum to 1.4"),
        ({"arms": []}, "needs at least one arm"),
        ({"arms": _arms(1.0, 0.0)}, "greater than 0"),
        (
            {"arms": [{"name": "x", "policy": "p", "share": 0.5}] * 2},
            r"arm names must be distinct; repeated: \['x'\]",
        ),
        ({"arms": [{"name": "x", "policy": "p", "share": 1, "oops": 1}]}, "Extra inputs"),
    ],
)
def test_bad_configs_are_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ABConfig.model_validate(config)


def test_assignment_is_stable_and_follows_shares() -> None:
    config = ABConfig(
        salt="s1",
        arms=(Arm(name="a", policy="p1", share=0.2), Arm(name="b", policy="p2", share=0.8)),
    )
    router = ABRouter(config)
    users = [f"user{i}" for i in range(20_000)]
    first = [router.assign(u).name for u in users]
    assert first == [ABRouter(config).assign(u).name for u in users]  # stable across instances
    share_a = first.count("a") / len(users)
    assert share_a == pytest.approx(0.2, abs=0.015)  # binomial sd is 0.003
    resalted = ABRouter(config.model_copy(update={"salt": "s2"}))
    moved = sum(resalted.assign(u).name != a for u, a in zip(users, first, strict=True))
    assert moved > 0.2 * len(users)  # a new salt reshuffles users


def test_bucket_is_in_unit_interval() -> None:
    values = [bucket("salt", str(i)) for i in range(1000)]
    assert min(values) >= 0.0 and max(values) < 1.0


def test_settings_read_ab_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MARQUEE_AB",
        '{"salt": "x", "arms": [{"name": "ctl", "policy": "popularity", "share": 0.5},'
        ' {"name": "new", "policy": "models:/marquee@champion", "share": 0.5}]}',
    )
    monkeypatch.setenv("MARQUEE_API_TOKEN", "zq-secret-7")
    settings = Settings()
    assert [a.name for a in settings.ab.arms] == ["ctl", "new"]
    assert settings.api_token is not None and "zq-secret-7" not in repr(settings)
    monkeypatch.setenv("MARQUEE_AB", '{"arms": [{"name": "a", "policy": "p", "share": 0.3}]}')
    with pytest.raises(ValidationError, match="shares must sum to 1"):
        Settings()


def test_interleave_mode_needs_two_arms_leaves_shares_out_and_serves_everyone_both() -> None:
    two = [{"name": "a", "policy": "p1"}, {"name": "b", "policy": "p2"}]
    config = ABConfig.model_validate({"mode": "interleave", "arms": two})
    assert [a.share for a in config.arms] == [0.5, 0.5]  # shares left out: equal
    router = ABRouter(config)
    assert {router.assign(f"u{i}").name for i in range(200)} == {INTERLEAVE}
    assert router.assign("u1").policy == "p1|p2"
    assert ABRouter(ABConfig.model_validate({"arms": two})).assign("u1").name in {"a", "b"}
    with pytest.raises(ValidationError, match="interleave mode needs exactly two arms"):
        three = [*two, {"name": "c", "policy": "x"}]
        ABConfig.model_validate({"mode": "interleave", "arms": three})
    with pytest.raises(ValidationError, match="'interleave' is reserved"):
        ABConfig.model_validate(
            {"mode": "interleave", "arms": [two[0], {"name": INTERLEAVE, "policy": "x"}]}
        )
    with pytest.raises(ValidationError, match="mode"):
        ABConfig.model_validate({"mode": "shuffle", "arms": two})


def _against(*arms: tuple[str, str | None], mode: str = "split") -> dict[str, Any]:
    return {
        "mode": mode,
        "arms": [{"name": n, "policy": n, "against": a} for n, a in arms],
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_against(("a", None), ("b", "c")), "interleaves against 'c', which is not another arm"),
        (_against(("a", None), ("b", "b")), "interleaves against 'b', which is not another arm"),
        (_against(("a", "b"), ("b", "a")), "which is itself interleaved: name a plain arm"),
        (_against(("a", None), ("b", "a"), mode="interleave"), "'against' is for split mode"),
        (_against(("a", None), ("b", "")), "at least 1 character"),
    ],
)
def test_bad_interleaved_arms_are_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ABConfig.model_validate(config)


def test_an_arm_against_another_is_a_split_arm_of_its_own() -> None:
    """Its users are routed to it by share like any arm's; the other arms stay plain."""
    config = ABConfig.model_validate(
        {
            "arms": [
                {"name": "champion", "policy": "champion", "share": 0.7},
                {"name": "challenger", "policy": "challenger", "share": 0.3, "against": "champion"},
            ]
        }
    )
    router = ABRouter(config)
    names = [router.assign(f"u{i}").name for i in range(2000)]
    assert 0.25 < names.count("challenger") / len(names) < 0.35
    assert router.assign("u1").against in (None, "champion")
    assert not router.interleaving
