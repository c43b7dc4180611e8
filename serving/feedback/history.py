"""What a feedback event does to the user's history, and so to the next state s'.

The state (features.state) is built from ratings (each weighted by (rating - 3) / 2, positives
from 4 stars) and from the set of seen movies (never candidates again, and left out of the
graph pool). A transition's s' must differ with the event, the way the simulator's does: there
a chosen movie joins the history with its rating. So:

- ``rated``: the movie joins the history with that rating (a 1-star and a 5-star rating give
  different s');
- ``watched``, ``not_interested``, ``click``, ``play``, ``skipped`` on a movie: it is marked
  seen. The state has no completion or "watched" term: the graph keeps watched and dismissed
  movies as seen-only edges, and s' must look like the state the service builds once the
  event reaches the graph. A watch's completion shows in the reward only.
- an event on the slate as a whole (no movie): the history is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.schemas.feedback import FeedbackEvent, FeedbackType


@dataclass(frozen=True)
class HistoryChange:
    """``movie`` joins the history rated ``rating``, or only seen when ``rating`` is None;
    ``movie`` None: no change."""

    movie: str | None
    rating: float | None = None


def history_change(event: FeedbackEvent) -> HistoryChange:
    """The history change one event makes (module doc)."""
    if event.movie is None:
        return HistoryChange(None)
    if event.type is FeedbackType.RATED:
        return HistoryChange(event.movie, event.rating)
    return HistoryChange(event.movie)
