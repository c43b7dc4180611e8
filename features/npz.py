"""Writing numpy archives whole or not at all: to a temporary name beside the target, then
renamed over it, so a crash mid-write never leaves a half-written model file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def save_npz(path: str | Path, **arrays: npt.ArrayLike | Any) -> Path:
    """Write ``arrays`` to ``path`` (an .npz) atomically; returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return path
