"""k-hop with a hub cap: paths skip content vertices of more than ``hub_cap`` movies, exactly as
if those vertices' edges were not in the graph; the sparse hop equals the full one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.graph.batch import GraphBatch
from features.graph.factory import ENV_HUB_CAP, open_store
from features.graph.hop import incidence_hop
from features.graph.local import LocalGraphStore
from features.graph.schema import CONTENT_EDGES, EDGE_SPECS, VertexKind
from features.importers.synthetic import generate_synthetic
from marquee.home import Home


def _without_hubs(batch: GraphBatch, cap: int) -> GraphBatch:
    """The batch without the content edges of vertices linked to more than ``cap`` movies
    (counted per edge kind, as the hop operator's rows are)."""
    out = GraphBatch()
    for kind, frame in batch.vertices.items():
        out.add_vertices(kind, frame)
    for kind, frame in batch.edges.items():
        if kind in CONTENT_EDGES:
            side = "dst" if EDGE_SPECS[kind].src is VertexKind.MOVIE else "src"
            degree = frame.groupby(side)[side].transform("size")
            frame = frame[degree <= cap]
        out.add_edges(kind, pd.DataFrame(frame))
    return out


@pytest.mark.parametrize("cap", [3, 12, 40])
def test_hub_cap_is_the_graph_without_its_hubs(cap: int) -> None:
    batch = generate_synthetic(movies=400, people=300, users=30, tags=40, seed=5)
    capped = LocalGraphStore(hub_cap=cap)
    capped.upsert(batch)
    pruned = LocalGraphStore()
    pruned.upsert(_without_hubs(batch, cap))
    exact = LocalGraphStore()
    exact.upsert(batch)
    differs = 0
    for user in ("u1", "u2", "u9", "u20"):
        for hops in (1, 2, 3):
            got = capped.khop_scores(user, hops=hops, limit=100)
            assert got == pruned.khop_scores(user, hops=hops, limit=100)
            differs += got != exact.khop_scores(user, hops=hops, limit=100)
    assert differs  # the cap changed something: genres and the commonest tags are hubs here


def test_hub_cap_must_leave_pairs() -> None:
    with pytest.raises(ValueError, match="hub_cap"):
        LocalGraphStore(hub_cap=1)


def test_the_environment_sets_the_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    home = Home(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    monkeypatch.setenv(ENV_HUB_CAP, "250")
    assert getattr(open_store(home), "hub_cap", None) == 250
    monkeypatch.setenv(ENV_HUB_CAP, "")
    assert getattr(open_store(home), "hub_cap", "unset") is None
    monkeypatch.setenv(ENV_HUB_CAP, "many")
    with pytest.raises(ValueError, match=ENV_HUB_CAP):
        open_store(home)


@pytest.mark.parametrize("density", [0.001, 0.01, 0.5])
def test_step_few_equals_step(density: float) -> None:
    rng = np.random.default_rng(0)
    n, cols = 3000, 2500
    c = sp.random(cols, n, density=0.004, random_state=1, format="csr")
    c.data[:] = 1.0
    op = incidence_hop(c, rng.uniform(0.2, 1.0, cols))
    x = np.where(rng.random(n) < density, rng.integers(1, 5, n), 0).astype(np.float64)
    np.testing.assert_allclose(op.step_few(x), op.step(x), rtol=1e-12, atol=1e-9)
