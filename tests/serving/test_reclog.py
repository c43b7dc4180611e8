"""The recommendation log: (user, movie) matching through the index, in O(1) Redis reads, and
the caps per user and in total, which keep the log and its index consistent. Real Redis."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import redis

from agent.buffers.hash_tag import RECLOG, tag
from features.graph.local import LocalGraphStore
from serving.reclog import CLOCK_SKEW_SECONDS, LoggedRecommendation, RecLog, make_record
from tests.serving.conftest import make_client


def _slate(log: RecLog, user: str, movies: list[str], created: float | None = None) -> str:
    rec = make_record(user, "a", "v1", movies, [0.5] * len(movies), np.ones(3), np.ones(2))
    if created is not None:
        rec = LoggedRecommendation(**{**rec.__dict__, "created": created})
    log.log(rec)
    return rec.id


def _prefix_keys(client: redis.Redis, prefix: str) -> list[str]:
    match = f"{tag(prefix, RECLOG)}:*"
    return sorted(k.decode() for k in client.scan_iter(match=match, count=1000))


def _index(client: redis.Redis, prefix: str, user: str) -> dict[str, list[str]]:
    raw: dict[bytes, bytes] = client.hgetall(f"{tag(prefix, RECLOG)}:recidx:{user}")  # type: ignore[assignment]
    return {m.decode(): [e.split("@")[0] for e in v.decode().split()] for m, v in raw.items()}


def test_find_returns_the_newest_slate_showing_the_movie(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60)
    first = _slate(log, "u", ["1", "2", "3"])
    second = _slate(log, "u", ["3", "4"])
    _slate(log, "other", ["1"])
    found = log.find("u", "1")
    assert found is not None and found.id == first and found.slate == ["1", "2", "3"]
    found = log.find("u", "3")
    assert found is not None and found.id == second
    assert log.find("u", "9") is None
    assert log.find("nobody", "1") is None


def test_find_skips_slates_served_after_the_event(redis_cp: tuple[redis.Redis, str]) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 3600)
    now = 1_900_000_000.0
    early = _slate(log, "u", ["7", "8"], created=now - 600)
    _slate(log, "u", ["7"], created=now)
    found = log.find("u", "7", before=now - 300)
    assert found is not None and found.id == early
    # within the allowed clock skew the later slate still counts
    found = log.find("u", "7", before=now - CLOCK_SKEW_SECONDS / 2)
    assert found is not None and found.id != early
    assert log.find("u", "7", before=now - 3600) is None


def test_matching_reads_a_constant_number_of_hashes(server_cp: tuple[redis.Redis, str]) -> None:
    """The user has 50 slates and the movie is only in the oldest: one index read and one slate
    read (the old scan read all 50 slate hashes)."""
    client, prefix = server_cp
    log = RecLog(client, prefix, 60)
    oldest = _slate(log, "heavy", ["old"])
    for i in range(49):
        _slate(log, "heavy", [f"m{i}", f"n{i}"])

    def calls(name: str) -> int:
        stats = client.info("commandstats").get(f"cmdstat_{name}", {})
        return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0

    before = {n: calls(n) for n in ("hgetall", "hget", "lrange")}
    found = log.find("heavy", "old")
    assert found is not None and found.id == oldest
    assert log.find("heavy", "never-shown") is None
    after = {n: calls(n) - before[n] for n in before}
    # the INFO calls themselves are not counted under these names
    assert after == {"hgetall": 1, "hget": 2, "lrange": 0}


def test_per_user_cap_evicts_the_oldest_with_their_index_entries(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60, user_slates=3)
    ids = [_slate(log, "u", [f"only{i}", "shared"]) for i in range(7)]
    assert log.user_ids("u") == list(reversed(ids[4:]))
    for gone in ids[:4]:
        assert log.get(gone) is None
    for kept in ids[4:]:
        assert log.get(kept) is not None
    assert log.find("u", "only0") is None
    found = log.find("u", "only5")
    assert found is not None and found.id == ids[5]
    index = _index(client, prefix, "u")
    assert index == {
        "only4": [ids[4]],
        "only5": [ids[5]],
        "only6": [ids[6]],
        "shared": list(reversed(ids[4:])),
    }
    assert set(client.hkeys(f"{tag(prefix, RECLOG)}:recslates:u")) == {i.encode() for i in ids[4:]}  # type: ignore[union-attr]
    assert log.count() == 3


def test_total_cap_evicts_the_oldest_slates_of_any_user(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60, user_slates=10, max_slates=5)
    ids = [_slate(log, f"anon{i}", ["1", "2"], created=1_900_000_000.0 + i) for i in range(20)]
    assert log.count() == 5
    for i, rec_id in enumerate(ids):
        assert (log.get(rec_id) is not None) == (i >= 15)
        # a user left with no slate keeps no keys at all
        has_keys = client.exists(
            f"{tag(prefix, RECLOG)}:recs:anon{i}", f"{tag(prefix, RECLOG)}:recidx:anon{i}"
        )
        assert has_keys == (2 if i >= 15 else 0)
    assert log.find("anon3", "1") is None
    found = log.find("anon19", "1")
    assert found is not None and found.id == ids[19]


def test_index_matches_the_kept_slates_after_random_traffic(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    """Random users, slates and both caps at work: the index always says exactly which kept
    slates show each movie, newest first, and find agrees with a scan of the kept slates."""
    client, prefix = redis_cp
    log = RecLog(client, prefix, 60, user_slates=4, max_slates=25)
    rng = random.Random(3)
    users = [f"u{i}" for i in range(8)]
    for _ in range(150):
        user = rng.choice(users)
        _slate(log, user, rng.sample([str(m) for m in range(12)], rng.randint(1, 5)))
    assert log.count() == 25
    for user in users:
        kept = [log.get(i) for i in log.user_ids(user)]
        assert all(r is not None for r in kept) and len(kept) <= 4
        expected: dict[str, list[str]] = {}
        for rec in kept:
            assert rec is not None
            for movie in rec.slate:
                expected.setdefault(movie, []).append(rec.id)
        assert _index(client, prefix, user) == expected
        for movie in map(str, range(12)):
            found = log.find(user, movie)
            assert (found.id if found else None) == (expected.get(movie) or [None])[0]


def test_anonymous_reads_for_made_up_users_stay_capped(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str]
) -> None:
    """The issue's probe: every anonymous read for a new user stored a slate for 7 days with no
    cap. Now the log keeps at most MARQUEE_RECLOG_MAX_SLATES of them, and no per-user keys of
    the evicted ones."""
    client, prefix = server_cp
    with make_client(tmp_path, store, server_cp, reclog_max_slates=40) as api:
        for i in range(300):
            res = api.get(f"/v1/users/made-up-{i}/recommendations?k=3")
            assert res.status_code == 200 and res.json()["logged"] is True
    keys = _prefix_keys(client, prefix)
    slates = [k for k in keys if k.startswith(f"{tag(prefix, RECLOG)}:rec:")]
    users = [k for k in keys if k.startswith(f"{tag(prefix, RECLOG)}:recs:")]
    assert len(slates) == 40 and len(users) == 40
    # per slate: its hash and the user's three keys; plus the order set and the A/B counters
    assert len(keys) <= 40 * 4 + 10
    kept = {client.hget(k, "user") for k in slates}
    assert kept == {f"made-up-{i}".encode() for i in range(260, 300)}


@pytest.mark.parametrize("caps", [{"user_slates": 0}, {"max_slates": 0}])
def test_caps_must_be_positive(redis_cp: tuple[redis.Redis, str], caps: dict[str, int]) -> None:
    client, prefix = redis_cp
    with pytest.raises(ValueError, match="caps must be"):
        RecLog(client, prefix, 60, **caps)
