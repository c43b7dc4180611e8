"""The feedback spool: append-only file while Redis is down, replayed once it is back."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from serving.feedback.spool import SpoolingFeedbackSink
from serving.feedback.store import RedisFeedbackStore
from serving.reclog import RecLog
from serving.schemas.feedback import FeedbackEvent, FeedbackType
from tests.serving.redis_server import redis_server


def _events(start: int, n: int) -> list[FeedbackEvent]:
    return [
        FeedbackEvent(event_id=f"s{i}", type=FeedbackType.CLICK, user="u", movie="1")
        for i in range(start, start + n)
    ]


def _sink(client: redis.Redis, path: Path) -> SpoolingFeedbackSink:
    return SpoolingFeedbackSink(RedisFeedbackStore(client, "sp", RecLog(client, "sp", 60)), path)


def test_spool_survives_a_torn_line_and_a_replay_cut_short(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "feedback.spool"
    with redis_server(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        sink = _sink(client, spool)
        server.stop()
        assert sink.submit(_events(0, 5)) == 5  # spooled
        assert sink.pending() == 5
        with pytest.raises(redis.ConnectionError):
            sink.replay()  # still down: the spool is left as it was
        assert sink.pending() == 5
        with open(spool, "ab") as fh:  # a crash in the middle of an append
            fh.write(b'{"event_id": "torn", "type": "cl')
        server.start()
        # a replay that stored everything but died before emptying the spool ...
        sink.store.submit(_events(0, 5))
        # ... is simply run again: nothing doubled, the torn line skipped
        assert sink.replay() == 0
        assert sink.pending() == 0 and spool.stat().st_size == 0
        assert sink.submit(_events(3, 4)) == 2  # s3, s4 already stored; s5, s6 new
        assert client.zcard("{sp:feedback}:seen") == 7
        assert client.xlen("{sp:feedback}:events") == 7
        client.close()
