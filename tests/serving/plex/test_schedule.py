"""serving.plex.schedule.repeat: bounded rounds, expected errors retried, others propagate."""

from __future__ import annotations

import threading

import pytest

from serving.plex.schedule import repeat


def test_failed_rounds_are_reported_and_retried() -> None:
    calls: list[int] = []
    seen: list[str] = []

    def round_fn() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ConnectionError("plex down")

    done = repeat(
        round_fn,
        0.001,
        iterations=3,
        errors=(ConnectionError,),
        on_error=lambda e: seen.append(str(e)),
    )
    assert (done, len(calls), seen) == (3, 3, ["plex down"])


def test_unexpected_errors_propagate() -> None:
    def round_fn() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug"):
        repeat(round_fn, 0.001, iterations=3, errors=(ConnectionError,))


def test_a_set_stop_event_ends_the_loop_after_the_round() -> None:
    stop = threading.Event()
    done = repeat(stop.set, 3600.0, stop=stop)  # would wait an hour if stop were ignored
    assert done == 1


@pytest.mark.parametrize(
    ("every", "iterations", "message"),
    [
        (0.0, None, "every must be a positive number of seconds, got 0.0"),
        (-1.0, None, "every must be a positive number of seconds, got -1.0"),
        (1.0, 0, "iterations must be at least 1, got 0"),
    ],
)
def test_bad_arguments(every: float, iterations: int | None, message: str) -> None:
    with pytest.raises(ValueError) as err:
        repeat(lambda: None, every, iterations=iterations)
    assert str(err.value) == message
