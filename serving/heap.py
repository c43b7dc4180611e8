"""The garbage collector in a long-lived worker: what the load and the warm-up built lives as
long as the process, so it is moved out of the collector's sight (``gc.freeze``).

Without it, CPython's full collections walk every object alive: the graph's key indexes, the
policy, the precomputed users. Timed with ``gc.callbacks`` in the two workers of
experiments/bench/serving_load.py on a 100K-movie home, each full collection stopped a worker
for 0.2-0.37 s (ten or more in a worker's life, some under load); after the freeze they took
3-13 ms. Frozen objects are never scanned, so a full collection then costs what requests
allocated since. A frozen object that becomes cyclic garbage is never collected: freeze once
after the load (collecting first) and once after the warm-up (not collecting: that would stop
requests already being served), not per change.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze(collect: bool = False) -> int:
    """Move every object tracked now to the permanent generation, after a full collection with
    ``collect`` (so that no garbage is frozen); how many are frozen in all."""
    if collect:
        gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d objects frozen", frozen)
    return frozen
