"""Row-block mat-vecs on two threads give exactly the single product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from features.graph.matvec import matvec, row_blocks


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_blocks_stack_to_the_matrix_and_the_product_is_bit_identical(parts: int) -> None:
    rng = np.random.default_rng(0)
    m = sp.random(500, 300, density=0.05, format="csr", random_state=1)
    m.data = rng.random(m.nnz) * 1e3  # sums whose rounding depends on the order
    blocks = row_blocks(m, parts)
    assert len(blocks) == parts
    assert (sp.vstack(blocks) != m).nnz == 0
    x = rng.random(300)
    assert np.array_equal(matvec(blocks, x), m @ x)


def test_small_matrices_stay_in_one_block() -> None:
    m = sp.identity(10, format="csr")
    assert len(row_blocks(m)) == 1


def test_blocks_share_the_matrix_arrays() -> None:
    """Blocks are views of the matrix's data and indices, not copies: a worker's mapped hop
    operator stays shared (features.npz) when its mat-vecs are split."""
    m = sp.random(400, 200, density=0.05, format="csr", random_state=2)
    for block in row_blocks(m, 3):
        assert np.shares_memory(block.data, m.data)
        assert np.shares_memory(block.indices, m.indices)
