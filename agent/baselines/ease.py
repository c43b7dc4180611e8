"""EASE (Steck, 2019): a closed-form item-item model, the strong baseline for offline ranking.

B = I - P * diag(1 / diag(P)) with P = (X^T X + lambda I)^-1 on the binary user x item matrix X.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class EASE:
    """Fit on a user x item interaction matrix; score a user's history row against all items."""

    def __init__(self, l2: float = 500.0) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = l2
        self.weights: np.ndarray | None = None

    def fit(self, interactions: sp.csr_matrix) -> EASE:
        x = interactions.astype(np.float64)
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def scores(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores of every item for each row of ``history`` (users x items)."""
        if self.weights is None:
            raise RuntimeError("EASE.scores called before fit")
        return np.asarray(history.astype(np.float32) @ self.weights)
