"""What the Plex adapters remember between runs: watermarks and ratingKey -> graph key.

Kept as JSON under the home folder (``<home>/plex/state.json``), written atomically (a temporary
file renamed over the old one) and only after what it describes was stored, so that a failed
sync leaves the previous watermarks in place and the next sync retries the same window.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from marquee.home import Home

log = logging.getLogger(__name__)


class PlexStateError(ValueError):
    """The state file cannot be read. The message names the file."""


@dataclass
class PlexState:
    """Watermarks are Unix seconds; 0 means "never synced"."""

    library_updated_at: dict[str, int] = field(default_factory=dict)  # section key -> updatedAt
    history_viewed_at: int = 0  # newest viewedAt stored by `plex sync`
    poll_viewed_at: int = 0  # newest viewedAt emitted by the history poller
    rated_at: int = 0  # newest lastRatedAt stored
    movie_keys: dict[str, str] = field(default_factory=dict)  # ratingKey -> graph movie key

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "library_updated_at": self.library_updated_at,
                "history_viewed_at": self.history_viewed_at,
                "poll_viewed_at": self.poll_viewed_at,
                "rated_at": self.rated_at,
                "movie_keys": self.movie_keys,
            },
            indent=2,
            sort_keys=True,
        )


def state_path(home: Home) -> Path:
    return home.root / "plex" / "state.json"


def load_state(path: Path) -> PlexState:
    """The saved state, or a fresh one when the file does not exist yet."""
    if not path.exists():
        return PlexState()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return PlexState(
            library_updated_at={
                str(k): int(v) for k, v in raw.get("library_updated_at", {}).items()
            },
            history_viewed_at=int(raw.get("history_viewed_at", 0)),
            poll_viewed_at=int(raw.get("poll_viewed_at", 0)),
            rated_at=int(raw.get("rated_at", 0)),
            movie_keys={str(k): str(v) for k, v in raw.get("movie_keys", {}).items()},
        )
    except json.JSONDecodeError as exc:
        raise PlexStateError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except (AttributeError, TypeError, ValueError) as exc:
        raise PlexStateError(f"{path}: unexpected content: {exc}") from exc


def save_state(path: Path, state: PlexState) -> None:
    """Write the state atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(state.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("saved Plex state to %s", path)
