"""A/B arms: each names a policy (a version id or registry alias) and a traffic share.

Mode "split" (the default): a user lands in an arm by a salted hash of their key, so the
assignment is stable across requests and restarts and changes only when the salt or the shares
change. Mode "interleave": exactly two arms, and every user gets one slate that team-draft
interleaves both arms' rankings (serving.interleaved); the router then hands every user the
pseudo-arm ``INTERLEAVE`` and shares play no part. Shares left out are equal.

In split mode an arm may name another arm ``against``: its users get a team-draft
interleaving of the other arm's ranking (team A) and its own (team B), while the other arm's
users keep plain slates. So a small share of the traffic compares two versions within each
user while the rest is served, and trained on, as usual (the autopilot's interleaved test).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHARE_TOLERANCE = 1e-6
INTERLEAVE = "interleave"  # the pseudo-arm of interleaved slates (reserved as an arm name)


class Arm(BaseModel):
    """One arm: ``policy`` is what the service loads for it ("popularity" needs no model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    policy: str = Field(min_length=1, max_length=200)
    share: float = Field(gt=0.0, le=1.0)
    against: str | None = Field(default=None, min_length=1, max_length=64)
    """Split mode: the arm whose ranking this arm's slates interleave with its own (module
    doc); None: plain slates of ``policy``."""


class ABConfig(BaseModel):
    """The arms and the salt. Shares must sum to 1; arm names must be distinct."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str = Field(default="marquee", min_length=1)
    mode: Literal["split", "interleave"] = "split"
    arms: tuple[Arm, ...] = (Arm(name="default", policy="popularity", share=1.0),)

    @model_validator(mode="before")
    @classmethod
    def _equal_shares(cls, data: Any) -> Any:
        """Arms given without any share split the traffic equally."""
        if isinstance(data, dict) and isinstance(data.get("arms"), list | tuple):
            arms = data["arms"]
            if arms and all(isinstance(a, dict) and "share" not in a for a in arms):
                data = {**data, "arms": [{**a, "share": 1.0 / len(arms)} for a in arms]}
        return data

    @model_validator(mode="after")
    def _check(self) -> ABConfig:
        if not self.arms:
            raise ValueError("A/B config needs at least one arm")
        names = [a.name for a in self.arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"A/B arm names must be distinct; repeated: {dupes}")
        if self.mode == INTERLEAVE:
            if len(self.arms) != 2:
                raise ValueError(
                    f"interleave mode needs exactly two arms (A and B), got {len(self.arms)}"
                )
            if INTERLEAVE in names:
                raise ValueError(f"{INTERLEAVE!r} is reserved in interleave mode: rename the arm")
            if any(a.against for a in self.arms):
                raise ValueError("'against' is for split mode; interleave mode pairs its two arms")
            return self  # every user sees both arms: shares are not used
        for arm in self.arms:
            if arm.against is None:
                continue
            other = next((a for a in self.arms if a.name == arm.against), None)
            if other is None or other is arm:
                raise ValueError(
                    f"arm {arm.name!r} interleaves against {arm.against!r}, which is not "
                    "another arm of this config"
                )
            if other.against is not None:
                raise ValueError(
                    f"arm {arm.name!r} interleaves against {other.name!r}, which is itself "
                    "interleaved: name a plain arm"
                )
        total = math.fsum(a.share for a in self.arms)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"A/B arm shares must sum to 1, they sum to {total:g}")
        return self


def bucket(salt: str, user: str) -> float:
    """A number in [0, 1) fixed by (salt, user)."""
    digest = hashlib.sha256(f"{salt}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class ABRouter:
    """Assigns users to arms by their hash bucket and the cumulative shares."""

    def __init__(self, config: ABConfig) -> None:
        self.config = config
        self.interleaving = config.mode == INTERLEAVE
        a, b = config.arms[0], config.arms[-1]
        self.interleaved = Arm(name=INTERLEAVE, policy=f"{a.policy}|{b.policy}", share=1.0)
        self._edges: list[tuple[float, Arm]] = []
        acc = 0.0
        for arm in config.arms:
            acc += arm.share
            self._edges.append((acc, arm))

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self.config.arms

    def assign(self, user: str) -> Arm:
        """The user's arm; in interleave mode the ``INTERLEAVE`` pseudo-arm for everyone."""
        if self.interleaving:
            return self.interleaved
        b = bucket(self.config.salt, user)
        for edge, arm in self._edges:
            if b < edge:
                return arm
        return self._edges[-1][1]  # shares summing to 1 - epsilon leave a sliver at the top
