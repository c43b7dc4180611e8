"""Run a round of work every N seconds until stopped: by SIGTERM, Ctrl-C, or a round count.

A signal lets the round in progress finish (nothing is left half-pushed) and ends the loop; a
second Ctrl-C interrupts at once. A round that fails with one of the expected errors is
reported and retried at the next tick.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop`` (a second SIGINT raises KeyboardInterrupt).
    Off the main thread signals cannot be caught; then only ``stop`` itself ends the loop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        log.info("signal %d: stopping after the current round", signum)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def repeat(
    round_fn: Callable[[], None],
    every: float,
    *,
    iterations: int | None = None,
    errors: tuple[type[BaseException], ...] = (),
    on_error: Callable[[BaseException], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Call ``round_fn`` now and then every ``every`` seconds until a signal, ``stop`` or
    ``iterations`` rounds. ``errors`` raised by a round go to ``on_error`` (else the log) and
    the loop goes on; anything else propagates. Returns the number of rounds run."""
    if every <= 0:
        raise ValueError(f"every must be a positive number of seconds, got {every}")
    if iterations is not None and iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    stop = stop if stop is not None else threading.Event()
    done = 0
    with stop_on_signals(stop):
        try:
            while not stop.is_set():
                try:
                    round_fn()
                except errors as exc:
                    if on_error is not None:
                        on_error(exc)
                    else:
                        log.warning("round failed: %s", exc)
                done += 1
                if iterations is not None and done >= iterations:
                    break
                stop.wait(every)
        except KeyboardInterrupt:
            log.info("interrupted")
    return done
