"""Redis Cluster hash tags for Marquee's keys.

A Lua script or a MULTI may only touch keys of one hash slot on a Redis Cluster, and Redis
hashes only the first ``{...}`` of a key when it has one. So every group of keys that one script
or transaction touches together starts with the same tag, ``{prefix:group}``:

- ``feedback``: the feedback store's id set and event stream, and the replay ring (one script
  stores an event and pushes its transition);
- ``reclog``: the served-slate log (its script evicts any user's slates to keep the total cap)
  and the live A/B counters it bumps in the same script.

Each group lives in one slot, so on a cluster it lives on one master: the cluster gives
Marquee a shared, replicated, failover-capable Redis, not a group split across masters.
"""

from __future__ import annotations

FEEDBACK = "feedback"
RECLOG = "reclog"


def check_prefix(prefix: str) -> str:
    """``prefix`` when it can carry a tag: not empty, and no braces of its own (they would
    move the tag)."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(f"redis key prefix {prefix!r} must be non-empty and have no braces")
    return prefix


def tag(prefix: str, group: str) -> str:
    """``{prefix:group}``: how every key of ``group`` under ``prefix`` starts."""
    return "{" + check_prefix(prefix) + ":" + group + "}"


def has_tag(key: str) -> bool:
    """Whether Redis hashes only part of ``key``: a ``{`` followed later by a ``}`` with at
    least one character between (Redis Cluster's rule)."""
    start = key.find("{")
    if start < 0:
        return False
    end = key.find("}", start + 1)
    return end > start + 1


def ensure_tag(prefix: str) -> str:
    """``prefix`` when it already carries a tag, else ``{prefix}``, so that keys made by
    appending to it share one slot."""
    return prefix if has_tag(prefix) else "{" + prefix + "}"
