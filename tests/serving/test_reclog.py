"""The recommendation log: (user, movie) matching through the index, in O(1) Redis reads, and
the caps per user and in total, which keep the log and its index consistent. Real Redis."""

from __future__ import annotations

import json
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
    """The user's movie index as movie -> ids, newest first."""
    raw: list[bytes] = client.zrange(f"{tag(prefix, RECLOG)}:recmovies:{user}", 0, -1)  # type: ignore[assignment]
    out: dict[str, list[str]] = {}
    for entry in reversed(raw):  # lexicographic: by movie, then oldest first
        movie, _, rec_id = entry.decode().split("\0")
        out.setdefault(movie, []).append(rec_id)
    return out


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

    names = ("hgetall", "hget", "lrange", "zrangebylex")
    before = {n: calls(n) for n in names}
    found = log.find("heavy", "old")
    assert found is not None and found.id == oldest
    assert log.find("heavy", "never-shown") is None
    after = {n: calls(n) - before[n] for n in before}
    # the INFO calls themselves are not counted under these names
    # per find: one range of the movie index and one read of an older version's hash index
    assert after == {"hgetall": 1, "hget": 2, "lrange": 0, "zrangebylex": 2}


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
            f"{tag(prefix, RECLOG)}:recs:anon{i}", f"{tag(prefix, RECLOG)}:recmovies:anon{i}"
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


def _old_version_slates(
    client: redis.Redis, log: RecLog, user: str, slates: list[list[str]], t0: float
) -> list[str]:
    """What an older version logged for ``user``: the slates' hashes, the user's list and
    slates keys (slate JSON without a creation time) and its hash index."""
    base, ids = tag(log.prefix, RECLOG), []
    index: dict[str, list[str]] = {}
    for i, movies in enumerate(slates):
        rec = make_record(user, "a", "v1", movies, [0.5] * len(movies), np.ones(3), np.ones(2))
        rec_id, created = rec.id, t0 + i
        client.hset(
            f"{base}:rec:{rec_id}",
            mapping={
                "user": user,
                "arm": "a",
                "version": "v1",
                "t": repr(created),
                "slate": json.dumps(movies),
                "prop": b"",
                "state": b"",
                "action": b"",
            },
        )
        client.lpush(f"{base}:recs:{user}", rec_id)
        client.hset(f"{base}:recslates:{user}", rec_id, json.dumps(movies))
        client.zadd(log.order_key, {rec_id: created})
        for m in movies:
            index.setdefault(m, []).insert(0, f"{rec_id}@{created!r}")
        ids.append(rec_id)
    client.hset(f"{base}:recidx:{user}", mapping={m: " ".join(v) for m, v in index.items()})
    for kind in ("recs", "recslates", "recidx"):
        client.expire(f"{base}:{kind}:{user}", 600)
    return ids


def test_an_older_versions_hash_index_is_read_then_moved_into_the_sorted_set(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    client, prefix = redis_cp
    log = RecLog(client, prefix, 3600, user_slates=4)
    now = 1_900_000_000.0
    old = _old_version_slates(client, log, "u", [["1", "2"], ["2", "3"], ["3"]], now)
    other = _old_version_slates(client, log, "v", [["1"]], now)
    # before anything is logged for them, find reads the old index
    found = log.find("u", "2")
    assert found is not None and found.id == old[1]
    assert log.find("u", "1", before=now - 3600) is None
    new = _slate(log, "u", ["1", "4"], created=now + 10)
    base = tag(prefix, RECLOG)
    assert not client.exists(f"{base}:recidx:u") and client.exists(f"{base}:recidx:v")
    assert _index(client, prefix, "u") == {
        "1": [new, old[0]],
        "2": [old[1], old[0]],
        "3": [old[2], old[1]],
        "4": [new],
    }
    assert 0 < client.pttl(f"{base}:recmovies:u") <= 3600 * 1000  # type: ignore[operator]
    # the moved entries are evicted with their slates (user cap 4: two more slates push out
    # the two oldest)
    _slate(log, "u", ["5"], created=now + 11)
    _slate(log, "u", ["5"], created=now + 12)
    assert log.get(old[0]) is None and log.get(old[1]) is None
    newest = log.user_ids("u")[:2]
    assert _index(client, prefix, "u") == {"1": [new], "3": [old[2]], "4": [new], "5": newest}
    found = log.find("u", "3")
    assert found is not None and found.id == old[2]
    # another user's old index is moved when the total cap evicts their slate
    tight = RecLog(client, prefix, 3600, user_slates=4, max_slates=log.count())
    _slate(tight, "w", ["9"], created=now + 13)
    assert log.get(other[0]) is None
    assert not client.exists(f"{base}:recidx:v", f"{base}:recmovies:v", f"{base}:recs:v")


def test_a_slate_kept_without_its_creation_time_still_leaves_the_index(
    redis_cp: tuple[redis.Redis, str],
) -> None:
    """A slate whose slates-key value has no creation time (an older version's, whose hash
    index is gone) is found in the movie index by its id when it is evicted."""
    client, prefix = redis_cp
    log = RecLog(client, prefix, 3600, user_slates=1)
    first = _slate(log, "u", ["1", "2"], created=1_900_000_000.0)
    client.hset(f"{tag(prefix, RECLOG)}:recslates:u", first, '["1", "2"]')
    second = _slate(log, "u", ["2"], created=1_900_000_001.0)
    assert _index(client, prefix, "u") == {"2": [second]}


def test_a_slate_adds_a_few_hundred_bytes_to_the_aof_not_its_users_whole_index(
    tmp_path: Path,
) -> None:
    """The embedded Redis records a script's writes in its append-only file. The old index
    rewrote each shown movie's whole entry list ("id@created" per slate that showed it) for
    every slate, and again to evict one: ~50 KB of AOF per slate for a user shown the same
    movies 50 times. Now a slate adds one entry per movie and evicting one removes them."""
    from serving.redis_conn import connect

    handle = connect(None, tmp_path / "buffer", aof_fsync="everysec")
    try:
        client = handle.client
        log = RecLog(client, "aof", 3600)  # 50 slates per user
        movies = [str(m) for m in range(10)]
        for _ in range(60):  # past the user cap: every slate now also evicts one
            _slate(log, "heavy", movies)
        before = int(client.info("persistence")["aof_current_size"])
        for _ in range(20):
            _slate(log, "heavy", movies)
        per_slate = (int(client.info("persistence")["aof_current_size"]) - before) / 20
        # the slate's own hash, list, index entries and expiries, the eviction: ~2.5 KB
        assert per_slate < 4_000, per_slate
        assert len(_index(client, "aof", "heavy")["3"]) == 50
    finally:
        handle.close()
