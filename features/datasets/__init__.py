"""Data sets that ship with Marquee (see README.md here for their terms of use)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def bundled_movielens() -> Path:
    """The folder of the bundled MovieLens latest-small CSV files (research, non-commercial)."""
    path = _HERE / "ml-latest-small"
    if not (path / "ratings.csv").is_file():
        raise FileNotFoundError(f"bundled MovieLens sample missing: {path}")
    return path
