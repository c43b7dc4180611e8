"""The Plex webhook ``payload`` JSON as pydantic models: every field we read is typed, finite
and in range before it is used, so a hostile delivery is a 400 naming the field, never a 500.

Only the fields serving.plex.webhook reads are declared; Plex sends many more (Server,
Player, ...), which are allowed and ignored. Types are strict (no "7" for 7, no true for 1),
as Plex sends numbers as JSON numbers.
"""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

log = logging.getLogger(__name__)

# Epoch seconds Plex may send: from 1970 to 2100 (a datetime cannot hold much more).
LATEST_EPOCH = 4_102_444_800
# Milliseconds of a movie or a position in it: up to ~115 days, far beyond any real film.
MAX_MILLIS = 10_000_000_000

Epoch = Annotated[float, Field(ge=0, le=LATEST_EPOCH, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0, le=MAX_MILLIS, allow_inf_nan=False)]
PlexRating = Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class PlexGuid(_Strict):
    """One external id of an item, e.g. ``{"id": "imdb://tt0114709"}``."""

    id: Text


class PlexAccount(_Strict):
    """The Plex account that did it."""

    id: StrictInt | StrictStr | None = None
    title: Text | None = None


class PlexMetadata(_Strict):
    """The item the event is about."""

    type: Text | None = None
    ratingKey: Annotated[str, Field(max_length=100)] | StrictInt | None = None
    title: Text | None = None
    year: Annotated[int, Field(ge=0, le=3000)] | None = None
    guid: Text | None = None
    Guid: Annotated[list[PlexGuid], Field(max_length=100)] | None = None
    viewOffset: Millis | None = None
    duration: Millis | None = None
    lastViewedAt: Epoch | None = None
    lastRatedAt: Epoch | None = None
    userRating: PlexRating | None = None


class PlexPayload(_Strict):
    """One webhook delivery's ``payload``."""

    event: Annotated[str, Field(min_length=1, max_length=100)]
    rating: PlexRating | None = None
    Account: PlexAccount | None = None
    Metadata: PlexMetadata | None = None


def field_errors(exc: ValidationError) -> str:
    """``Metadata.year: Input should be ...; ...``: each problem with the field it is in."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
