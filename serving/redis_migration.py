"""Moves Marquee's Redis data from the key names used before Redis Cluster support (no hash
tags: ``marquee:feedback:seen``, ``marquee:rec:<id>``, ...) to the tagged names
(``{marquee:feedback}:seen``, ``{marquee:reclog}:rec:<id>``, agent.buffers.hash_tag).

It runs when the service or the learner opens Redis, on a single server only (the old names
never worked on a cluster: their scripts crossed slots). RENAMENX keeps each key's value and
TTL and never overwrites: a key whose new name already holds data (a newer process wrote there
first) stays under its old name, counted and logged, not merged. Stop processes of the old
version before starting the new one: an old process would keep writing the old names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from agent.buffers.hash_tag import FEEDBACK, RECLOG, tag
from agent.buffers.redis_client import is_cluster_client

log = logging.getLogger(__name__)

# old suffix under the prefix -> (group, new suffix under the group's tag)
FIXED = {
    "feedback:seen": (FEEDBACK, "seen"),
    "feedback:ids": (FEEDBACK, "ids"),
    "feedback:events": (FEEDBACK, "events"),
    "buffer:meta": (FEEDBACK, "buffer:meta"),
    "buffer:count": (FEEDBACK, "buffer:count"),
    "buffer:data": (FEEDBACK, "buffer:data"),
    "reclog:order": (RECLOG, "order"),
}
# old per-slate, per-user and per-arm keys, "<prefix>:<kind>:<rest>", move to
# "{<prefix>:reclog}:<kind>:<rest>"
PATTERNS = ("rec", "recs", "recidx", "recslates", "ab")
# any of these existing means an old version wrote here (the A/B served hash outlives the log)
MARKERS = (*FIXED, "ab:served")


@dataclass(frozen=True)
class Migration:
    """What one run did: keys renamed, and keys left under the old name (new name taken)."""

    moved: int = 0
    kept: int = 0


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def legacy_pairs(client: redis.Redis, prefix: str) -> Iterator[tuple[str, str]]:
    """(old name, new name) for every old-style key under ``prefix`` that exists now."""
    for old, (group, new) in FIXED.items():
        if client.exists(f"{prefix}:{old}"):
            yield f"{prefix}:{old}", f"{tag(prefix, group)}:{new}"
    reclog = tag(prefix, RECLOG)
    for kind in PATTERNS:
        head = f"{prefix}:{kind}:"
        for raw in client.scan_iter(match=_glob_escape(head) + "*", count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            yield key, f"{reclog}:{kind}:{key[len(head) :]}"


def migrate_legacy_keys(client: redis.Redis, prefix: str) -> Migration:
    """Rename old-style keys under ``prefix`` to their tagged names (module doc). Cheap when
    there is nothing to do: one EXISTS."""
    if is_cluster_client(client):
        return Migration()
    if not client.exists(*(f"{prefix}:{m}" for m in MARKERS)):
        return Migration()
    moved = kept = 0
    for old, new in legacy_pairs(client, prefix):
        try:
            if client.renamenx(old, new):
                moved += 1
            else:
                kept += 1
        except redis.ResponseError:
            continue  # expired between SCAN and RENAMENX
    if kept:
        log.warning(
            "redis keys: %d old-style keys under %r not moved (their new names already hold "
            "data); they are left as they are and no longer read",
            kept,
            prefix,
        )
    log.info("redis keys: moved %d old-style keys under %r to hash-tagged names", moved, prefix)
    return Migration(moved=moved, kept=kept)
