"""The Redis-backed FeedbackSink: stores each event once and turns it into a transition.

``submit`` runs one Lua script per batch that, for each event whose id is new, remembers the id
in the sorted set ``{<prefix>:feedback}:seen`` (score: first-seen time, Redis server clock, in
ms), appends the event to the stream ``{<prefix>:feedback}:events`` and, when it joins a logged
recommendation, pushes (s, a, r, s') into the replay ring ``{<prefix>:feedback}:buffer``.
Storing the event and its transition in one script means a crash never keeps one without the
other, and a repeated event id changes nothing. The keys share the hash tag
``{<prefix>:feedback}`` so the script runs on a Redis Cluster (agent.buffers.hash_tag).

Everything stays bounded on a long-running service:

- ids are remembered for ``dedup_window_seconds`` (``MARQUEE_FEEDBACK_DEDUP_DAYS``): each
  script call first drops ids older than the window, so an id sent again within the window is
  stored once, and one sent again after it counts as new (choose a window longer than any
  source redelivers over; ``marquee plex sync --full`` resends all history);
- the stream keeps about the newest ``stream_max_events`` events (``XADD MAXLEN ~``: Redis
  trims whole stream nodes, so the length can exceed the cap by up to one node, 100 entries
  by default);
- the replay ring holds at most its capacity (agent.buffers.redis_ring, which owns its keys
  and push script).

Ids that older versions kept in the set ``{<prefix>:feedback}:ids`` (never trimmed) still count
as seen, and each script call moves up to ``LEGACY_CHUNK`` of them into the sorted set (first
seen "now"), so that set drains away.

Joining: the event's recommendation_id names the logged slate (else the user's latest slate
that holds the movie). A transition is made when that slate logged a state and an action, the
event's movie is on the slate (or the event names no movie), and ``next_state`` gives s' from
what the event does to the user's history (serving.feedback.history: a rating joins it as that
rating, other feedback marks the movie seen). Reward: ``reward`` (features.reward's scale,
the simulator's).
Transitions are not terminal (done = False).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import redis

from agent.buffers.hash_tag import FEEDBACK, tag
from agent.buffers.redis_ring import (
    RING_PUSH_LUA,
    RedisRing,
    RingConfigError,
    RingKeys,
    ring_prefix,
)
from features.reward import feedback_reward
from serving.ab_live import count_feedback
from serving.feedback.history import history_change
from serving.reclog import LoggedRecommendation, RecLog
from serving.schemas.feedback import FeedbackEvent

log = logging.getLogger(__name__)

# (logged recommendation, movie or None, its rating or None) -> next state, or None for "no
# transition"
NextStateFn = Callable[[LoggedRecommendation, str | None, float | None], np.ndarray | None]

DEFAULT_DEDUP_WINDOW_SECONDS = 30 * 24 * 3600.0
DEFAULT_STREAM_MAX_EVENTS = 200_000
LEGACY_CHUNK = 1000  # legacy ids moved into the sorted set per script call

# KEYS: seen zset, event stream, ring count, ring data, legacy id set.
# ARGV: ring capacity, dedup window (ms), stream cap, legacy chunk, then (id, event, blob)*.
_SUBMIT_SCRIPT = (
    RING_PUSH_LUA
    + """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxlen = ARGV[3]
local chunk = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
if redis.call('EXISTS', KEYS[5]) == 1 then
  for _, old in ipairs(redis.call('SPOP', KEYS[5], chunk)) do
    redis.call('ZADD', KEYS[1], 'NX', now, old)
  end
end
local flags = {}
for j = 5, #ARGV, 3 do
  local id, ev, blob = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  local known = redis.call('ZSCORE', KEYS[1], id)
  if not known and redis.call('SISMEMBER', KEYS[5], id) == 0 then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'id', id, 'e', ev)
    if blob ~= '' then ring_push(KEYS[3], KEYS[4], capacity, blob) end
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
return flags
"""
)


def stream_key(prefix: str) -> str:
    """The event stream's key under a service's Redis prefix."""
    return f"{tag(prefix, FEEDBACK)}:events"


def reward(event: FeedbackEvent) -> float:
    """The event's reward on the simulator's scale (features.reward.feedback_reward)."""
    return feedback_reward(event.type.value, event.rating, event.completion)


class RedisFeedbackStore:
    """Implements serving.feedback.sink.FeedbackSink on Redis."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reclog: RecLog,
        *,
        next_state: NextStateFn | None = None,
        buffer_capacity: int = 100_000,
        dedup_window_seconds: float = DEFAULT_DEDUP_WINDOW_SECONDS,
        stream_max_events: int = DEFAULT_STREAM_MAX_EVENTS,
    ) -> None:
        if dedup_window_seconds <= 0:
            raise ValueError(f"dedup_window_seconds must be > 0, got {dedup_window_seconds}")
        if stream_max_events < 1:
            raise ValueError(f"stream_max_events must be >= 1, got {stream_max_events}")
        self.client = client
        self.reclog = reclog
        self.next_state = next_state
        self.buffer_prefix = ring_prefix(prefix)
        self.ring_keys = RingKeys(self.buffer_prefix)
        self.buffer_capacity = buffer_capacity
        self.dedup_window_ms = max(1, round(dedup_window_seconds * 1000))
        self.stream_max_events = stream_max_events
        keys = tag(prefix, FEEDBACK)
        self.seen_key = f"{keys}:seen"
        self.legacy_ids_key = f"{keys}:ids"
        self.stream_key = stream_key(prefix)
        self._script = client.register_script(_SUBMIT_SCRIPT)
        self._ring: RedisRing | None = None

    def ring(self, obs_dim: int, action_dim: int) -> RedisRing:
        """The shared replay ring (made on first use; an existing ring keeps its capacity)."""
        ring = self._ring
        if ring is None or (ring.obs_dim, ring.action_dim) != (obs_dim, action_dim):
            ring = RedisRing(
                self.client,
                self.buffer_prefix,
                obs_dim=obs_dim,
                action_dim=action_dim,
                capacity=self.buffer_capacity,
                adopt_capacity=True,
            )
            self._ring = ring
        return ring

    def buffer_size(self) -> int:
        """Transitions in the replay ring (0 before the first one)."""
        return self.ring_keys.size(self.client)

    def _transition(self, event: FeedbackEvent) -> bytes:
        if self.next_state is None:
            return b""
        rec: LoggedRecommendation | None = None
        if event.recommendation_id is not None:
            rec = self.reclog.get(event.recommendation_id)
        elif event.user is not None and event.movie is not None:
            rec = self.reclog.find(event.user, event.movie, before=event.timestamp.timestamp())
        if rec is None or rec.state is None or rec.action is None:
            return b""
        if event.movie is not None and event.movie not in rec.slate:
            return b""  # feedback on a movie this slate did not show says nothing of its action
        change = history_change(event)
        nxt = self.next_state(rec, change.movie, change.rating)
        if nxt is None:
            return b""
        try:
            ring = self.ring(rec.state.size, rec.action.size)
            return ring.pack(rec.state, nxt, rec.action, reward(event), False)
        except RingConfigError as exc:
            log.warning("event %s: no transition: %s", event.event_id, exc)
            return b""

    def submit_flags(self, events: Sequence[FeedbackEvent]) -> list[bool]:
        """Store the events; per event, whether it was new. Raises redis errors if Redis is down
        (then nothing of this batch is stored: the script runs whole or not at all)."""
        if not events:
            return []
        args: list[str | bytes | int] = [
            self.buffer_capacity,
            self.dedup_window_ms,
            self.stream_max_events,
            LEGACY_CHUNK,
        ]
        for event in events:
            args += [event.event_id, event.model_dump_json(), self._transition(event)]
        ring = self._ring
        if ring is not None:
            args[0] = ring.capacity
        # without a ring (no transition in this batch) its keys are named but never touched
        keys = [self.seen_key, self.stream_key, self.ring_keys.count, self.ring_keys.data]
        keys.append(self.legacy_ids_key)
        flags = [bool(f) for f in self._script(keys=keys, args=args)]
        new = [e for e, f in zip(events, flags, strict=True) if f]
        if new:
            count_feedback(self.client, self.reclog.prefix, self.reclog, new)
        return flags

    def submit(self, events: Sequence[FeedbackEvent]) -> int:
        return sum(self.submit_flags(events))

    def count(self) -> int:
        """Distinct event ids remembered: those first seen within the dedup window (as of the
        last submit, which drops older ones), plus any legacy ids not yet moved."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zcard(self.seen_key)
        pipe.scard(self.legacy_ids_key)
        seen, legacy = pipe.execute()
        return int(seen) + int(legacy)

    def stream_length(self) -> int:
        """Events in the stream now (about the newest ``stream_max_events``)."""
        return int(self.client.xlen(self.stream_key))

    def events(self, batch: int = 1000) -> Iterator[FeedbackEvent]:
        """Every stored event, oldest first."""
        start = "-"
        while True:
            rows: list[tuple[bytes, dict[bytes, bytes]]] = self.client.xrange(  # type: ignore[assignment]
                self.stream_key, min=start, count=batch
            )
            if not rows:
                return
            for _, fields in rows:
                yield FeedbackEvent.model_validate_json(fields[b"e"])
            start = "(" + rows[-1][0].decode()
