"""World model: recovers a known low-rank world, beats the bias baseline, saves and loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from env.world_model import WorldModel, fit_biases, rmse


def synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    n_u, n_i, k = 80, 50, 2
    p, q = rng.normal(0, 0.8, (n_u, k)), rng.normal(0, 0.8, (n_i, k))
    bu, bi = rng.normal(0, 0.3, n_u), rng.normal(0, 0.3, n_i)
    grid_u, grid_i = np.meshgrid(np.arange(n_u), np.arange(n_i), indexing="ij")
    uu, ii = grid_u.ravel(), grid_i.ravel()
    truth = 3.2 + bu[uu] + bi[ii] + np.einsum("nk,nk->n", p[uu], q[ii])
    r = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0.5, 5.0)
    keep = rng.random(r.shape) < 0.6
    return np.array([f"u{u}" for u in uu]), ii, r, keep, n_i


def test_factors_beat_biases_on_held_out_ratings() -> None:
    users, items, r, keep, n_i = synthetic()
    mf = WorldModel.fit(users[keep], items[keep], r[keep], n_i, factors=2, reg=0.02, iterations=20)
    bias = fit_biases(users[keep], items[keep], r[keep], n_i)
    rows = np.searchsorted(mf.user_keys, users[~keep])
    mf_rmse = rmse(mf.predict(rows, items[~keep]), r[~keep])
    bias_rmse = rmse(
        bias.predict(np.searchsorted(bias.user_keys, users[~keep]), items[~keep]), r[~keep]
    )
    assert mf_rmse < 0.3 < bias_rmse


def test_predict_user_agrees_with_predict() -> None:
    users, items, r, _, n_i = synthetic(1)
    m = WorldModel.fit(users, items, r, n_i, factors=3, iterations=5)
    row = m.user_index("u7")
    assert np.allclose(m.predict_user(row), m.predict(np.full(n_i, row), np.arange(n_i)))
    assert m.predict_user(row).min() >= 0.5 and m.predict_user(row).max() <= 5.0


def test_same_seed_same_model() -> None:
    users, items, r, _, n_i = synthetic(2)
    a = WorldModel.fit(users, items, r, n_i, factors=2, iterations=3, seed=4)
    b = WorldModel.fit(users, items, r, n_i, factors=2, iterations=3, seed=4)
    assert np.array_equal(a.item_factors, b.item_factors)


def test_save_load_round_trip(tmp_path: Path) -> None:
    users, items, r, _, n_i = synthetic(3)
    m = WorldModel.fit(users, items, r, n_i, factors=2, iterations=3)
    m.save(tmp_path / "wm.npz")
    back = WorldModel.load(tmp_path / "wm.npz")
    assert back.mu == m.mu and back.user_keys.tolist() == m.user_keys.tolist()
    assert np.array_equal(back.predict_user(5), m.predict_user(5))
    assert [p.name for p in tmp_path.iterdir()] == ["wm.npz"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (
            (["a", "b"], [0], [4.0], 3),
            {},
            r"users, items and ratings must align: \(2,\), \(1,\), \(1,\)",
        ),
        ((["a"], [3], [4.0], 3), {}, r"item rows must lie in \[0, 3\)"),
        (
            (["a"], [0], [4.0], 3),
            {"reg": 0.0},
            "need factors >= 0, reg > 0, iterations > 0; got 16, 0.0, 12",
        ),
    ],
)
def test_bad_fit_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorldModel.fit(*args, **kwargs)


def test_unknown_user() -> None:
    users, items, r, _, n_i = synthetic(4)
    m = WorldModel.fit(users, items, r, n_i, factors=1, iterations=1)
    with pytest.raises(ValueError, match="unknown user 'nobody': the world model has no such user"):
        m.user_index("nobody")
