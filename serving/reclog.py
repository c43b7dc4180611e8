"""The recommendation log: every served slate, kept in Redis for a while (TTL), so feedback that
names it (or matches it by user and movie) can become a transition (s, a, r, s').

Keys (``<log>:...``, where ``<log>`` is ``{<prefix>:reclog}``, one Redis Cluster hash tag for
all of them, agent.buffers.hash_tag):

- ``rec:{id}``: a hash per slate: user, arm, version, slate (JSON list of movie keys),
  float32 bytes for propensities, state and action, and for an interleaved slate (arm
  "interleave") ``teams``, the JSON list of the arm each position came from;
- ``recs:{user}``: the user's logged ids, newest first;
- ``recidx:{user}``: the (user, movie) index: movie -> "id@created ..." (newest first) for the
  user's slates that show it, so matching an event to its slate is one HGET and one HGETALL
  whatever the number of slates (it used to read up to 50 hashes);
- ``recslates:{user}``: id -> slate JSON, so an evicted slate leaves the index even after
  its own hash expired;
- ``order``: every logged id by creation time, for the total cap.

Bounded by design: a user keeps at most ``user_slates`` slates and the log at most
``max_slates`` in total (the oldest go, with their index entries; a user with none left loses
the keys); everything also expires after the TTL. One Lua script stores the slate, bumps the
live A/B counters (serving.ab_live) and keeps the index, the caps and the per-user keys
consistent. It evicts other users' slates too, which is why the whole log shares one hash tag:
on a Redis Cluster it lives in one slot (one master), not spread across them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np
import redis

from agent.buffers.hash_tag import RECLOG, tag
from serving.ab_live import served_keys
from serving.breaker import BreakerOpen, CircuitBreaker
from serving.recommender import RecommendationResult

log = logging.getLogger(__name__)

DEFAULT_USER_SLATES = 50  # recent slates kept per user (and matched against (user, movie))
DEFAULT_MAX_SLATES = 20_000  # slates kept in total (~2.5-3.5 KB each, bench/slate_log_memory.py)
CLOCK_SKEW_SECONDS = 60.0  # how far a feedback source's clock may run behind the service's


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class LoggedRecommendation:
    """One served slate as logged."""

    id: str
    user: str
    arm: str
    policy_version: str
    slate: list[str]
    propensities: np.ndarray
    state: np.ndarray | None
    action: np.ndarray | None
    created: float
    teams: tuple[str, ...] = ()  # interleaved slates: each position's arm (team)

    def team_of(self, movie: str | None) -> str:
        """The arm credited for ``movie``: its team on an interleaved slate, else the arm."""
        if self.teams and movie in self.slate:
            return self.teams[self.slate.index(movie)]
        return self.arm

    def arms(self) -> list[str]:
        """The arms that served this slate (both teams of an interleaved one)."""
        return sorted(set(self.teams)) if self.teams else [self.arm]


def _vec(value: np.ndarray | None) -> bytes:
    return b"" if value is None else np.asarray(value, dtype=np.float32).reshape(-1).tobytes()


def _unvec(raw: bytes | None) -> np.ndarray | None:
    return None if not raw else np.frombuffer(raw, dtype=np.float32).copy()


# KEYS: the order zset, the slate's hash, the A/B served hash, the user's list, index and
# slates keys, then the users HyperLogLog of each arm counted (all under one hash tag; other
# users' keys are built from the log's base, in the same slot).
# ARGV: base, id, user, ttl (s), user cap, total cap, slate JSON, created (Unix time, as
# text), arm, version, propensities, state, action (float32 bytes), teams JSON ('' for none),
# then the arms that served the slate (both teams of an interleaved one).
_LOG_SCRIPT = """
local order = KEYS[1]
local prefix, id, user = ARGV[1], ARGV[2], ARGV[3]
local ttl, ucap, tcap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local created = ARGV[8]
redis.call('HSET', KEYS[2], 'user', user, 'arm', ARGV[9], 'version', ARGV[10], 'slate', ARGV[7],
  'prop', ARGV[11], 'state', ARGV[12], 'action', ARGV[13], 't', created)
if ARGV[14] ~= '' then redis.call('HSET', KEYS[2], 'teams', ARGV[14]) end
redis.call('EXPIRE', KEYS[2], ttl)
for j = 15, #ARGV do
  redis.call('HINCRBY', KEYS[3], ARGV[j], 1)
  redis.call('PFADD', KEYS[j - 8], user)
end
local function ukeys(u)
  return prefix .. ':recs:' .. u, prefix .. ':recidx:' .. u, prefix .. ':recslates:' .. u
end
local function unindex(u, rid)
  local _, ikey, skey = ukeys(u)
  local raw = redis.call('HGET', skey, rid)
  if not raw then return end
  local mark = rid .. '@'
  for _, m in ipairs(cjson.decode(raw)) do
    local v = redis.call('HGET', ikey, m)
    if v then
      local kept = {}
      for tok in string.gmatch(v, '%S+') do
        if string.sub(tok, 1, #mark) ~= mark then kept[#kept + 1] = tok end
      end
      if #kept == 0 then
        redis.call('HDEL', ikey, m)
      else
        redis.call('HSET', ikey, m, table.concat(kept, ' '))
      end
    end
  end
  redis.call('HDEL', skey, rid)
end
local function evict(u, rid)
  local lkey, ikey, skey = ukeys(u)
  unindex(u, rid)
  redis.call('LREM', lkey, 0, rid)
  redis.call('ZREM', order, rid)
  redis.call('DEL', prefix .. ':rec:' .. rid)
  if redis.call('LLEN', lkey) == 0 then redis.call('DEL', lkey, ikey, skey) end
end
local lkey, ikey, skey = ukeys(user)
redis.call('LPUSH', lkey, id)
while redis.call('LLEN', lkey) > ucap do
  evict(user, redis.call('LINDEX', lkey, -1))
end
redis.call('HSET', skey, id, ARGV[7])
local entry = id .. '@' .. created
for _, m in ipairs(cjson.decode(ARGV[7])) do
  local v = redis.call('HGET', ikey, m)
  if v then v = entry .. ' ' .. v else v = entry end
  redis.call('HSET', ikey, m, v)
end
redis.call('EXPIRE', lkey, ttl)
redis.call('EXPIRE', ikey, ttl)
redis.call('EXPIRE', skey, ttl)
redis.call('ZADD', order, tonumber(created), id)
redis.call('ZREMRANGEBYSCORE', order, '-inf', '(' .. (tonumber(created) - ttl))
local over = redis.call('ZCARD', order) - tcap
if over > 0 then
  local popped = redis.call('ZRANGE', order, 0, over - 1)
  for _, rid in ipairs(popped) do
    local owner = redis.call('HGET', prefix .. ':rec:' .. rid, 'user')
    if owner then
      evict(owner, rid)
    else
      redis.call('ZREM', order, rid)
    end
  end
end
redis.call('EXPIRE', order, ttl)
return over
"""


class RecLog:
    """Writes and reads logged recommendations, capped per user and in total."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        ttl_seconds: int,
        *,
        user_slates: int = DEFAULT_USER_SLATES,
        max_slates: int = DEFAULT_MAX_SLATES,
    ) -> None:
        if user_slates < 1 or max_slates < 1:
            raise ValueError(f"caps must be >= 1, got {user_slates} per user, {max_slates} total")
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.user_slates = user_slates
        self.max_slates = max_slates
        self.base = tag(prefix, RECLOG)
        self.order_key = f"{self.base}:order"
        self._log = client.register_script(_LOG_SCRIPT)

    def _key(self, rec_id: str) -> str:
        return f"{self.base}:rec:{rec_id}"

    def _user_key(self, user: str) -> str:
        return f"{self.base}:recs:{user}"

    def _index_key(self, user: str) -> str:
        return f"{self.base}:recidx:{user}"

    def _slates_key(self, user: str) -> str:
        return f"{self.base}:recslates:{user}"

    def count(self) -> int:
        """Slates in the log (those not yet expired or evicted)."""
        return int(self.client.zcard(self.order_key))  # type: ignore[arg-type]

    def user_ids(self, user: str) -> list[str]:
        """The user's logged ids, newest first."""
        ids: list[bytes] = self.client.lrange(self._user_key(user), 0, -1)  # type: ignore[assignment]
        return [i.decode() for i in ids]

    def log(self, rec: LoggedRecommendation) -> None:
        """Store ``rec`` (atomically, with its TTL), index it by (user, movie) and evict what is
        over the caps. Raises redis errors when Redis is down."""
        slate = json.dumps(rec.slate)
        teams = json.dumps(list(rec.teams)) if rec.teams else ""
        arms = rec.arms()
        served = served_keys(self.prefix, arms[0])[0]
        keys = [self.order_key, self._key(rec.id), served]
        keys += [self._user_key(rec.user), self._index_key(rec.user), self._slates_key(rec.user)]
        keys += [served_keys(self.prefix, arm)[1] for arm in arms]
        args: list[str | int | bytes] = [self.base, rec.id, rec.user, self.ttl]
        args += [self.user_slates, self.max_slates, slate, repr(rec.created)]
        args += [rec.arm, rec.policy_version, _vec(rec.propensities)]
        args += [_vec(rec.state), _vec(rec.action), teams, *arms]
        self._log(keys=keys, args=args)

    def get(self, rec_id: str) -> LoggedRecommendation | None:
        """The logged recommendation, or None when unknown or expired."""
        raw: dict[bytes, bytes] = self.client.hgetall(self._key(rec_id))  # type: ignore[assignment]
        if not raw:
            return None
        f = {k.decode(): v for k, v in raw.items()}
        prop = _unvec(f.get("prop"))
        return LoggedRecommendation(
            id=rec_id,
            user=f["user"].decode(),
            arm=f["arm"].decode(),
            policy_version=f["version"].decode(),
            slate=[str(m) for m in json.loads(f["slate"])],
            propensities=prop if prop is not None else np.zeros(0, np.float32),
            state=_unvec(f.get("state")),
            action=_unvec(f.get("action")),
            created=float(f.get("t", b"0")),
            teams=tuple(str(t) for t in json.loads(f["teams"])) if f.get("teams") else (),
        )

    def find(
        self, user: str, movie: str, before: float | None = None
    ) -> LoggedRecommendation | None:
        """The user's most recent logged slate that contains ``movie``, or None. With
        ``before`` (a Unix time: when the feedback happened), only slates served by then, give
        or take ``CLOCK_SKEW_SECONDS``: an event cannot be a reaction to a later slate. Reads
        the (user, movie) index, then the first slate it names that is still there: O(1)."""
        raw: bytes | None = self.client.hget(self._index_key(user), movie)  # type: ignore[assignment]
        for entry in (raw or b"").decode().split():
            rec_id, _, created = entry.partition("@")
            if before is not None and float(created) > before + CLOCK_SKEW_SECONDS:
                continue
            rec = self.get(rec_id)
            if rec is not None and movie in rec.slate:
                return rec
        return None


def make_record(
    user: str,
    arm: str,
    policy_version: str,
    slate: list[str],
    propensities: list[float],
    state: np.ndarray | None,
    action: np.ndarray | None,
    teams: tuple[str, ...] = (),
) -> LoggedRecommendation:
    """A record with a fresh id and the current time."""
    return LoggedRecommendation(
        id=new_recommendation_id(),
        user=user,
        arm=arm,
        policy_version=policy_version,
        slate=slate,
        propensities=np.asarray(propensities, dtype=np.float32),
        state=state,
        action=action,
        created=time.time(),
        teams=teams,
    )


def log_served(
    reclog: RecLog | None,
    user: str,
    arm: str,
    result: RecommendationResult,
    breaker: CircuitBreaker | None = None,
) -> tuple[LoggedRecommendation, bool]:
    """Record a slate that is about to be shown (HTTP or Plex): returns the record and whether
    Redis took it. A Redis failure is logged and swallowed: the slate is shown anyway, only
    online learning misses it. With ``breaker`` open, Redis is not even tried."""
    record = make_record(
        user,
        arm,
        result.policy_version,
        [i.movie for i in result.items],
        [i.propensity for i in result.items],
        result.state,
        result.action,
        tuple(i.team or arm for i in result.items) if any(i.team for i in result.items) else (),
    )
    if reclog is None or not result.items:
        return record, False
    try:
        if breaker is not None:
            breaker.call(lambda: reclog.log(record))
        else:
            reclog.log(record)
    except BreakerOpen:
        return record, False
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:  # e.g. no slot owner
        log.warning("recommendation %s not logged: %s", record.id, type(exc).__name__)
        return record, False
    return record, True
