"""A warm-up's (state, candidates) per user saved to one .npz file and loaded at the next start.

Warming 10K users at 100K movies takes minutes of CPU; a restart (or a second worker) loads the
file instead. Loaded entries are adopted by the Ranker as unchecked (features.ranker.adopt):
each is served only once the user's history in the store has the digest it was computed from,
so a file from an older graph is never served stale, only recomputed where users changed. The
file must come from the same ranking bundle and candidate settings: the caller names it by them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from features.ranker import Prepared, Ranker

log = logging.getLogger(__name__)


def save_entries(ranker: Ranker, path: Path) -> int:
    """Write the ranker's cached entries to ``path`` atomically; the number written."""
    entries = ranker.entries()
    users = np.array([u for u, _, _ in entries], dtype=object).astype(str)
    digests = np.array([np.frombuffer(d, dtype=np.uint8) for _, d, _ in entries], np.uint8)
    digests = digests.reshape(len(entries), -1)
    valued = [v for _, _, v in entries if v is not None]
    has_value = np.array([v is not None for _, _, v in entries], dtype=bool)
    obs = ranker.observation_size
    states = np.stack([v.state for v in valued]) if valued else np.zeros((0, obs), np.float32)
    lengths = np.array([v.candidates.shape[0] for v in valued], dtype=np.int64)
    flat = np.concatenate([v.candidates for v in valued]) if valued else np.zeros(0, np.int64)
    with_base = bool(valued) and all(v.base is not None for v in valued)
    base = (
        np.concatenate([v.base for v in valued if v.base is not None])
        if with_base
        else np.zeros(0, np.float64)
    )
    width = 0 if ranker.slate_features is None else ranker.slate_features.dim
    extras = (
        np.concatenate([v.extras for v in valued if v.extras is not None])
        if valued and width
        else np.zeros((0, width), np.float64)
    )
    residuals = np.array([v.residual for v in valued], dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            users=users,
            digests=digests,
            has_value=has_value,
            states=states,
            lengths=lengths,
            candidates=flat,
            base=base,
            with_base=np.array(with_base),
            extras=extras,
            residuals=residuals,
        )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    log.info("saved %d users' precomputed states to %s", len(entries), path)
    return len(entries)


def load_entries(ranker: Ranker, path: Path) -> int:
    """Adopt the entries saved in ``path`` (none when it is missing or unreadable, logged);
    the number adopted."""
    try:
        with np.load(path, allow_pickle=False) as z:
            users, digests, has_value = z["users"], z["digests"], z["has_value"]
            states, lengths, flat, base = z["states"], z["lengths"], z["candidates"], z["base"]
            with_base = bool(z["with_base"])
            extras = z["extras"] if "extras" in z.files else np.zeros((0, 0))
            residuals = z["residuals"] if "residuals" in z.files else None
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError) as exc:
        log.warning("precomputed states in %s not used: %s", path, exc)
        return 0
    if states.ndim != 2 or (states.shape[0] and states.shape[1] != ranker.observation_size):
        log.warning("precomputed states in %s are of another size: not used", path)
        return 0
    width = 0 if ranker.slate_features is None else ranker.slate_features.dim
    if width and (extras.ndim != 2 or extras.shape != (flat.shape[0], width)):
        log.warning("precomputed states in %s have no slate features: not used", path)
        return 0
    if residuals is None and ranker.bundle.residual_ramp > 0:
        log.warning("precomputed states in %s have no residual weights: not used", path)
        return 0
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    row = 0
    for user, digest, valued in zip(users, digests, has_value, strict=True):
        value = None
        if valued:
            a, b = int(offsets[row]), int(offsets[row + 1])
            value = Prepared(
                states[row],
                flat[a:b],
                base[a:b] if with_base else None,
                extras[a:b] if width else None,
                1.0 if residuals is None else float(residuals[row]),
            )
            row += 1
        ranker.adopt(str(user), digest.tobytes(), value)
    log.info("loaded %d users' precomputed states from %s (checked before use)", len(users), path)
    return len(users)
