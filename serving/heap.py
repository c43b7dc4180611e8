"""The garbage collector in a long-lived worker: what the load and the warm-up built lives as
long as the process, so it is moved out of the collector's sight (``gc.freeze``).

Without it, CPython's full collections walk every object alive: the graph's key indexes, the
policy, the precomputed users. Measured on a 100K-movie worker (experiments/bench/
serving_load.py, ``gc_pauses``), each full collection under load stopped the worker for
~0.2-0.4 s, and one came every few thousand requests. Frozen objects are never scanned, so a
full collection then costs what requests allocated since. Objects frozen stay until exit even
if they become garbage: freeze once after the load and once after the warm-up, not per
change.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze() -> int:
    """Move every object tracked now to the permanent generation; how many are frozen in all."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("gc: %d objects frozen", frozen)
    return frozen
