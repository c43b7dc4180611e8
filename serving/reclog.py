"""The recommendation log: every served slate, kept in Redis for a while (TTL), so feedback that
names it (or matches it by user and movie) can become a transition (s, a, r, s').

Keys (``<log>:...``, where ``<log>`` is ``{<prefix>:reclog}``, one Redis Cluster hash tag for
all of them, agent.buffers.hash_tag):

- ``rec:{id}``: a hash per slate: user, arm, version, slate (JSON list of movie keys),
  float32 bytes for propensities, state and action, and for an interleaved slate (arm
  "interleave") ``teams``, the JSON list of the arm each position came from;
- ``recs:{user}``: the user's logged ids, newest first;
- ``recmovies:{user}``: the (user, movie) index, a sorted set with one entry per (slate,
  movie), ``<movie> NUL <created> NUL <id>`` at score 0, so that one movie's entries are one
  lexicographic range in creation order: matching an event to its slate is one range read
  and one HGETALL whatever the number of slates, and logging a slate adds (evicting one
  removes) one short entry per movie. An older version kept a hash, ``recidx:{user}`` (movie
  -> "id@created ..."), whose values its script rewrote whole for every slate; Redis records a
  script's writes in the append-only file, so that was ~36 KB of AOF per slate for a user with
  many slates (experiments/bench/embedded_aof.py). The script moves such a hash into the
  sorted set the first time it touches the user, and ``find`` still reads one not yet moved;
- ``recslates:{user}``: id -> "<created> <slate JSON>", so an evicted slate leaves the index
  even after its own hash expired;
- ``order``: every logged id by creation time, for the total cap.

Bounded by design: a user keeps at most ``user_slates`` slates and the log at most
``max_slates`` in total (the oldest go, with their index entries; a user with none left loses
the keys); everything also expires after the TTL. One Lua script stores the slate, bumps the
live A/B counters (serving.ab_live) and keeps the index, the caps and the per-user keys
consistent. It evicts other users' slates too, which is why the whole log shares one hash tag:
on a Redis Cluster it lives in one slot (one master), not spread across them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import redis

from agent.buffers.hash_tag import RECLOG, tag
from serving.ab_live import served_keys
from serving.breaker import BreakerOpen, CircuitBreaker
from serving.recommender import RecommendationResult

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from serving.redis_async import AsyncClient

log = logging.getLogger(__name__)

# Slate logs awaited at once through the asyncio client (RecLog.use_async): within its pool's
# connections (100 by default), as many as a worker keeps waiting on Redis under load.
ASYNC_CONCURRENCY = 64
DEFAULT_USER_SLATES = 50  # recent slates kept per user (and matched against (user, movie))
DEFAULT_MAX_SLATES = 20_000  # slates kept in total (~3-3.7 KB each, bench/slate_log_memory.py)
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


# Separates movie, creation time (fixed width, '%017.6f': it sorts as it compares until the
# year 2286) and id in an entry of a user's movie index (module doc; the script writes them).
SEP = b"\x00"


# KEYS: the order zset, the slate's hash, the A/B served hash, the user's list, movie index
# and slates keys, the user's old hash index, then the users HyperLogLog of each arm counted
# (all under one hash tag; other users' keys are built from the log's base, in the same slot).
# ARGV: base, id, user, ttl (s), user cap, total cap, slate JSON, created (Unix time, as
# text), arm, version, propensities, state, action (float32 bytes), teams JSON ('' for none),
# then the arms that served the slate (both teams of an interleaved one).
#
# Every call below is what the append-only file records (Redis replicates a script by its
# effects), so each write is kept to what changed: index entries are added and removed one
# member each, never rewritten whole.
_LOG_SCRIPT = r"""
local order = KEYS[1]
local prefix, id, user = ARGV[1], ARGV[2], ARGV[3]
local ttl, ucap, tcap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local created = ARGV[8]
local SEP = '\0'
local function stamp(t) return string.format('%017.6f', tonumber(t) or 0) end
local function entry(m, at, rid) return m .. SEP .. at .. SEP .. rid end
redis.call('HSET', KEYS[2], 'user', user, 'arm', ARGV[9], 'version', ARGV[10], 'slate', ARGV[7],
  'prop', ARGV[11], 'state', ARGV[12], 'action', ARGV[13], 't', created)
if ARGV[14] ~= '' then redis.call('HSET', KEYS[2], 'teams', ARGV[14]) end
redis.call('EXPIRE', KEYS[2], ttl)
for j = 15, #ARGV do
  redis.call('HINCRBY', KEYS[3], ARGV[j], 1)
  redis.call('PFADD', KEYS[j - 7], user)
end
local function ukeys(u)
  return prefix .. ':recs:' .. u, prefix .. ':recmovies:' .. u, prefix .. ':recslates:' .. u,
    prefix .. ':recidx:' .. u
end
local function zadd(key, members)
  for i = 1, #members, 500 do
    local args = {}
    for j = i, math.min(i + 499, #members) do
      args[#args + 1] = 0
      args[#args + 1] = members[j]
    end
    redis.call('ZADD', key, unpack(args))
  end
end
-- a user indexed by an older version (hash: movie -> "id@created ..."): move the index into
-- the sorted set once, and stamp the user's slates with their creation time
local function upgrade(u)
  local _, mkey, skey, old = ukeys(u)
  if redis.call('EXISTS', old) == 0 then return end
  local raw = redis.call('HGETALL', old)
  local at, members = {}, {}
  for i = 1, #raw, 2 do
    for tok in string.gmatch(raw[i + 1], '%S+') do
      local rid, t = string.match(tok, '^(.*)@([^@]*)$')
      if rid then
        at[rid] = stamp(t)
        members[#members + 1] = entry(raw[i], at[rid], rid)
      end
    end
  end
  zadd(mkey, members)
  local slates = redis.call('HGETALL', skey)
  for i = 1, #slates, 2 do
    if string.sub(slates[i + 1], 1, 1) == '[' then
      redis.call('HSET', skey, slates[i], (at[slates[i]] or stamp(0)) .. ' ' .. slates[i + 1])
    end
  end
  local left = redis.call('PTTL', old)
  redis.call('DEL', old)
  if left > 0 then redis.call('PEXPIRE', mkey, left) end
end
local function unindex(u, rid)
  local _, mkey, skey = ukeys(u)
  local raw = redis.call('HGET', skey, rid)
  if not raw then return end
  local at, slate = string.match(raw, '^([^ %[]+) (.*)$')
  local gone = {}
  if at then
    for _, m in ipairs(cjson.decode(slate)) do gone[#gone + 1] = entry(m, at, rid) end
  else  -- no creation time kept: find the slate's entries by id
    local tail = SEP .. rid
    for _, m in ipairs(cjson.decode(raw)) do
      local head = '[' .. m .. SEP
      for _, e in ipairs(redis.call('ZRANGEBYLEX', mkey, head, head .. '\255')) do
        if string.sub(e, -#tail) == tail then gone[#gone + 1] = e end
      end
    end
  end
  if #gone > 0 then redis.call('ZREM', mkey, unpack(gone)) end
  redis.call('HDEL', skey, rid)
end
local function evict(u, rid)
  upgrade(u)
  local lkey, mkey, skey = ukeys(u)
  unindex(u, rid)
  redis.call('LREM', lkey, 0, rid)
  redis.call('ZREM', order, rid)
  redis.call('DEL', prefix .. ':rec:' .. rid)
  if redis.call('LLEN', lkey) == 0 then redis.call('DEL', lkey, mkey, skey) end
end
upgrade(user)
local lkey, mkey, skey = ukeys(user)
redis.call('LPUSH', lkey, id)
while redis.call('LLEN', lkey) > ucap do
  evict(user, redis.call('LINDEX', lkey, -1))
end
local at = stamp(created)
redis.call('HSET', skey, id, at .. ' ' .. ARGV[7])
local added = {}
for _, m in ipairs(cjson.decode(ARGV[7])) do added[#added + 1] = entry(m, at, id) end
zadd(mkey, added)
redis.call('EXPIRE', lkey, ttl)
redis.call('EXPIRE', mkey, ttl)
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


class _AsyncLog(NamedTuple):
    """What ``RecLog.use_async`` sets up together: the script on the asyncio client, the
    slots bounding concurrent calls, and the event loop both belong to."""

    script: AsyncScript
    slots: asyncio.Semaphore
    loop: asyncio.AbstractEventLoop


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
        self._async: _AsyncLog | None = None

    def use_async(self, client: AsyncClient | None, concurrency: int = ASYNC_CONCURRENCY) -> None:
        """Log through ``client`` (serving.redis_async's twin of this log's client) in
        ``alog``, at most ``concurrency`` calls at a time (the others wait their turn: a
        client's pool refuses connections beyond its size, 100 by default, which one worker
        at concurrency 128 exceeded); None: ``alog`` is unavailable again (its client was
        closed). Call it on the event loop that will await ``alog``: its connections belong to
        that loop, and ``can_await`` is false on any other."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._async = (
            None
            if client is None
            else _AsyncLog(
                client.register_script(_LOG_SCRIPT),
                asyncio.Semaphore(concurrency),
                asyncio.get_running_loop(),
            )
        )

    async def load_async(self) -> None:
        """Load the script through the asyncio client (``use_async``), so that the first
        slates neither open its first connection nor find the script missing (NOSCRIPT).
        Raises redis errors when Redis is down."""
        if self._async is not None:
            await self._async.script.registered_client.script_load(_LOG_SCRIPT)

    @property
    def can_await(self) -> bool:
        """Whether ``alog`` can be awaited here: it has an asyncio client, made on the running
        event loop (an app served from another loop too, as a second test client does, logs
        through the threaded client there)."""
        if self._async is None:
            return False
        try:
            return asyncio.get_running_loop() is self._async.loop
        except RuntimeError:  # no loop running: a thread
            return False

    def _key(self, rec_id: str) -> str:
        return f"{self.base}:rec:{rec_id}"

    def _user_key(self, user: str) -> str:
        return f"{self.base}:recs:{user}"

    def _index_key(self, user: str) -> str:
        return f"{self.base}:recmovies:{user}"

    def _old_index_key(self, user: str) -> str:
        """The hash index an older version kept (module doc)."""
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
        keys, args = self._call(rec)
        self._log(keys=keys, args=args)

    async def alog(self, rec: LoggedRecommendation) -> None:
        """``log`` awaited on the event loop through the asyncio client (``use_async``): the
        same script, keys and arguments, so the same writes."""
        if self._async is None or not self.can_await:
            raise RuntimeError(
                "RecLog.alog needs an asyncio client made on this event loop: use_async"
            )
        keys, args = self._call(rec)
        async with self._async.slots:
            await self._async.script(keys=keys, args=args)

    def _call(self, rec: LoggedRecommendation) -> tuple[list[str], list[str | int | bytes]]:
        """The log script's keys and arguments for ``rec``."""
        slate = json.dumps(rec.slate)
        teams = json.dumps(list(rec.teams)) if rec.teams else ""
        arms = rec.arms()
        served = served_keys(self.prefix, arms[0])[0]
        keys = [self.order_key, self._key(rec.id), served]
        keys += [self._user_key(rec.user), self._index_key(rec.user), self._slates_key(rec.user)]
        keys.append(self._old_index_key(rec.user))
        keys += [served_keys(self.prefix, arm)[1] for arm in arms]
        args: list[str | int | bytes] = [self.base, rec.id, rec.user, self.ttl]
        args += [self.user_slates, self.max_slates, slate, repr(rec.created)]
        args += [rec.arm, rec.policy_version, _vec(rec.propensities)]
        args += [_vec(rec.state), _vec(rec.action), teams, *arms]
        return keys, args

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
        the user's movie index, then the first slate it names that is still there: two Redis
        round trips whatever the number of slates."""
        head = b"[" + movie.encode() + SEP
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebylex(self._index_key(user), head, head + b"\xff")
        pipe.hget(self._old_index_key(user), movie)
        members, old = pipe.execute()
        entries: list[tuple[float, str]] = []
        for member in members:
            _, created, rec_id = member.rsplit(SEP, 2)
            entries.append((float(created), rec_id.decode()))
        for token in (old or b"").decode().split():
            rec_id, _, created = token.partition("@")
            entries.append((float(created), rec_id))
        for created, rec_id in sorted(entries, reverse=True):
            if before is not None and created > before + CLOCK_SKEW_SECONDS:
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


def served_record(user: str, arm: str, result: RecommendationResult) -> LoggedRecommendation:
    """The record of a slate about to be shown (a fresh id, now)."""
    return make_record(
        user,
        arm,
        result.policy_version,
        [i.movie for i in result.items],
        [i.propensity for i in result.items],
        result.state,
        result.action,
        tuple(i.team or arm for i in result.items) if any(i.team for i in result.items) else (),
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
    record = served_record(user, arm, result)
    if reclog is None or not result.items:
        return record, False
    try:
        if breaker is not None:
            breaker.call(lambda: reclog.log(record))
        else:
            reclog.log(record)
    except BreakerOpen:
        return record, False
    except _LOG_ERRORS as exc:
        _not_logged(record, exc)
        return record, False
    return record, True


async def alog_served(
    reclog: RecLog | None,
    user: str,
    arm: str,
    result: RecommendationResult,
    breaker: CircuitBreaker | None = None,
) -> tuple[LoggedRecommendation, bool]:
    """``log_served`` awaited on the event loop (``RecLog.alog``; the log must ``can_await``):
    the same record, the same outcome for each Redis failure, the same breaker."""
    record = served_record(user, arm, result)
    if reclog is None or not result.items:
        return record, False
    try:
        if breaker is not None:
            await breaker.acall(lambda: reclog.alog(record))
        else:
            await reclog.alog(record)
    except BreakerOpen:
        return record, False
    except _LOG_ERRORS as exc:
        _not_logged(record, exc)
        return record, False
    return record, True


# A Redis that is down, and a Redis Cluster with no owner for the log's slot
_LOG_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)


def _not_logged(record: LoggedRecommendation, exc: BaseException) -> None:
    log.warning("recommendation %s not logged: %s", record.id, type(exc).__name__)
