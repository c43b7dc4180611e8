"""Fit the choice model's weights by maximum likelihood on real next interactions.

Replay: each user's ratings are split in time (the first ``fit_fraction`` form their past);
the world model (rating) and the consumption model (propensity) are fitted on the past of all
users; each later interaction then becomes a slate of the movie really chosen plus
``negatives`` movies the user had not consumed, half drawn by popularity and half uniformly
(what a recommender might have shown), in random order. The conditional-logit likelihood of
the real choice gives w_rating and w_propensity. Users are split in two: weights are fitted on
one part and the log-likelihood and top-k accuracy are reported on the other, for the
calibrated model and for the original rating-only model (``MultinomialLogitChoice``).

Boredom too, given the movies' genres: the user model's boredom dynamics
(``env.user_model.replay_boredom``) are replayed over each user's real sequence, and each
option's boredom joins the logit as a third feature; the real rating's residual from the world
model, regressed on the chosen movie's boredom, gives boredom's cost in rating points. On
ml-latest-small both say the invented boredom was backwards: the boredom weight comes out
negative (people pick more of the genres they just watched) and ratings do not fall with it.

Not identified from rating logs, so not fitted: the position effect (slates are shuffled here),
the "nothing" utility (a rating log never shows an ignored slate), boredom's growth and
recovery rates, and leaving.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize

from env.choice import RATING_PIVOT, CalibratedChoice, MultinomialLogitChoice
from env.consumption import ConsumptionModel
from env.user_model import UserModelConfig, replay_boredom
from env.world_model import WorldModel
from features.catalog import genre_shares

log = logging.getLogger(__name__)


# Users the choice calibration replays at most (ml-latest-small has 610, so all of them).
MAX_CALIBRATION_USERS = 3000


@dataclass(frozen=True)
class ChoiceFit:
    """Fitted weights and held-out figures of each choice model."""

    w_rating: float
    w_propensity: float
    fit_events: int
    heldout_events: int
    slate_size: int
    heldout: dict[str, dict[str, float]]  # model -> {log_likelihood, top1, top3}
    # with genres: the choice's boredom weight (negative: more of the same attracts), the
    # slope of the real rating's residual on boredom, the rating points one unit of boredom
    # costs (minus that slope, 0 if boredom does not lower ratings) and held-out RMSEs
    w_boredom: float | None = None
    rating_boredom_slope: float | None = None
    rating_boredom: float | None = None
    rating_rmse: dict[str, float] | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Slates:
    rating: npt.NDArray[np.float64]  # (events, slate) rating utilities; column 0 is the choice
    propensity: npt.NDArray[np.float64]
    user: npt.NDArray[np.int64]  # event's user index (for the user split)
    observed: npt.NDArray[np.float64]  # (events,) the real rating of the choice
    boredom: npt.NDArray[np.float64] | None  # (events, slate) mean genre boredom, if genres


def replay_slates(
    ratings: pd.DataFrame,
    n_items: int,
    *,
    fit_fraction: float = 0.8,
    negatives: int = 9,
    seed: int = 0,
    genres: sp.spmatrix | npt.NDArray[np.float64] | None = None,
    user_config: UserModelConfig | None = None,
) -> _Slates:
    """Slates of (real next choice + sampled negatives) with the utility features; with
    ``genres`` (movies x genres, 0/1), each option's boredom too (``env.user_model``)."""
    r = ratings.sort_values(["user", "timestamp", "movie"], kind="stable")
    users = r["user"].astype(str).to_numpy()
    rank = r.groupby("user").cumcount().to_numpy()
    size = r.groupby("user")["movie"].transform("size").to_numpy()
    past = rank < np.ceil(size * fit_fraction)
    p = r[past]
    world = WorldModel.fit(
        p["user"].astype(str).to_numpy(),
        p["movie"].to_numpy(),
        p["rating"].to_numpy(),
        n_items,
        seed=seed,
    )
    consumption = ConsumptionModel.fit(
        p["user"].astype(str).to_numpy(), p["movie"].to_numpy(), n_items, seed=seed
    )
    pop = np.bincount(p["movie"].to_numpy(), minlength=n_items).astype(np.float64) + 1.0
    pop /= pop.sum()
    rng = np.random.default_rng(seed)
    ev = r[~past]
    keys = ev["user"].astype(str).to_numpy()
    chosen = ev["movie"].to_numpy().astype(np.int64)
    n = chosen.shape[0]
    half = negatives // 2
    neg = np.concatenate(
        [
            rng.choice(n_items, size=(n, half), p=pop),
            rng.integers(n_items, size=(n, negatives - half)),
        ],
        axis=1,
    )
    clash = neg == chosen[:, None]
    while np.any(clash):  # a negative must not be the real choice
        neg[clash] = rng.integers(n_items, size=int(clash.sum()))
        clash = neg == chosen[:, None]
    slate = np.concatenate([chosen[:, None], neg], axis=1)
    ukeys, uidx = np.unique(keys, return_inverse=True)
    rating = np.empty(slate.shape)
    prop = np.empty(slate.shape)
    known = set(world.user_keys.tolist())
    # each user's event rows, in order (one sort, not one scan of all events per user)
    by_user = np.split(np.argsort(uidx, kind="stable"), np.cumsum(np.bincount(uidx))[:-1])
    for j, key in enumerate(ukeys):
        rows = by_user[j]
        wr = world.predict_user(world.user_index(key)) if key in known else None
        cr = consumption.predict_user(consumption.user_index(key))
        rating[rows] = wr[slate[rows]] if wr is not None else world.mu
        prop[rows] = cr[slate[rows]]
    del users
    return _Slates(
        rating,
        prop,
        uidx.astype(np.int64),
        ev["rating"].to_numpy().astype(np.float64),
        None
        if genres is None
        else _slate_boredom(r, past, slate, genres, user_config or UserModelConfig()),
    )


def _slate_boredom(
    r: pd.DataFrame,
    past: npt.NDArray[np.bool_],
    slate: npt.NDArray[np.int64],
    genres: sp.spmatrix | npt.NDArray[np.float64],
    config: UserModelConfig,
) -> npt.NDArray[np.float64]:
    """Each slate movie's mean genre boredom (``SimulatedUser.boredom_of``) under the state the
    user's real sequence left before the event."""
    g = sp.csr_matrix(genres, dtype=np.float64)
    share = genre_shares(g)
    movies = r["movie"].to_numpy().astype(np.int64)
    state = replay_boredom(r["user"].astype(str).to_numpy(), g[movies].toarray(), config)[~past]
    items = slate.reshape(-1)
    per = (share[items] * np.repeat(state, slate.shape[1], axis=0)).sum(axis=1)
    return np.asarray(per.reshape(slate.shape))


def _log_likelihood(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-event log-probability of column 0 under a softmax over each row."""
    top = u.max(axis=1, keepdims=True)
    return np.asarray(u[:, 0] - top[:, 0] - np.log(np.exp(u - top).sum(axis=1)))


def _figures(u: npt.NDArray[np.float64]) -> dict[str, float]:
    ranks = (u[:, 1:] > u[:, :1]).sum(axis=1)  # how many negatives beat the real choice
    return {
        "log_likelihood": float(_log_likelihood(u).mean()),
        "top1": float(np.mean(ranks == 0)),
        "top3": float(np.mean(ranks < 3)),
    }


def fit_logit_weights(features: list[npt.NDArray[np.float64]]) -> list[float]:
    """Maximum-likelihood weights of a conditional logit: each feature is an (events, slate)
    table whose column 0 holds the option that was chosen."""
    if not features or any(f.shape != features[0].shape for f in features):
        raise ValueError("features must be equally shaped (events, slate) tables")
    x = np.stack(features)  # (features, events, slate)

    def loss(w: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        u = np.tensordot(w, x, axes=1)
        top = u.max(axis=1, keepdims=True)
        e = np.exp(u - top)
        prob = e / e.sum(axis=1, keepdims=True)
        ll = u[:, 0] - top[:, 0] - np.log(e.sum(axis=1))
        grad = ((prob[None] * x).sum(axis=2) - x[:, :, 0]).mean(axis=1)
        return -float(ll.mean()), np.asarray(grad)

    res = minimize(loss, np.ones(x.shape[0]), jac=True, method="L-BFGS-B")
    return [float(v) for v in res.x]


def fit_choice(
    ratings: pd.DataFrame,
    n_items: int,
    *,
    heldout_fraction: float = 0.3,
    negatives: int = 9,
    max_users: int = MAX_CALIBRATION_USERS,
    seed: int = 0,
    genres: sp.spmatrix | npt.NDArray[np.float64] | None = None,
    user_config: UserModelConfig | None = None,
) -> ChoiceFit:
    """Maximum-likelihood w_rating, w_propensity on one part of the users, figures on the
    other (module doc). ``ratings`` has columns user, movie (row), rating, timestamp. With
    more than ``max_users`` users, a seeded sample of that many is used (two weights need no
    more; on 100K users the replay's per-user passes over the catalogue took hours).

    With ``genres`` (movies x genres), boredom is fitted too: its choice weight beside the
    other two, and its cost in rating points (least squares of the real rating's residual
    from the world model on the chosen movie's boredom), each under ``user_config``'s
    dynamics replayed over the real sequences."""
    users = np.unique(ratings["user"].astype(str).to_numpy())
    if users.shape[0] > max_users:
        keep = np.random.default_rng(seed + 2).choice(users, max_users, replace=False)
        ratings = ratings[ratings["user"].astype(str).isin(set(keep.tolist()))]
        log.info("choice calibration on %d of %d users", max_users, users.shape[0])
    s = replay_slates(
        ratings, n_items, negatives=negatives, seed=seed, genres=genres, user_config=user_config
    )
    rng = np.random.default_rng(seed + 1)
    n_users = int(s.user.max()) + 1
    held_users = rng.random(n_users) < heldout_fraction
    held = held_users[s.user]
    xr, xp = s.rating - RATING_PIVOT, s.propensity
    w_r, w_p = fit_logit_weights([xr[~held], xp[~held]])
    old = MultinomialLogitChoice()
    heldout = {
        "uniform": {
            "log_likelihood": float(-np.log(negatives + 1)),
            "top1": 1.0 / (negatives + 1),
            "top3": 3.0 / (negatives + 1),
        },
        "rating only (original)": _figures(s.rating[held] / old.temperature),
        "propensity only": _figures(xp[held]),
        "calibrated": _figures(w_r * xr[held] + w_p * xp[held]),
    }
    log.info("choice weights: rating %.3f, propensity %.3f", w_r, w_p)
    fit = ChoiceFit(
        w_rating=w_r,
        w_propensity=w_p,
        fit_events=int((~held).sum()),
        heldout_events=int(held.sum()),
        slate_size=negatives + 1,
        heldout=heldout,
    )
    return fit if s.boredom is None else _with_boredom(fit, s, held)


def _with_boredom(fit: ChoiceFit, s: _Slates, held: npt.NDArray[np.bool_]) -> ChoiceFit:
    """``fit`` refitted with boredom as a third choice feature, plus boredom's rating cost."""
    assert s.boredom is not None
    xr, xp, xb = s.rating - RATING_PIVOT, s.propensity, -s.boredom
    w_r, w_p, w_b = fit_logit_weights([xr[~held], xp[~held], xb[~held]])
    heldout = dict(fit.heldout)
    heldout["calibrated with boredom"] = _figures(w_r * xr[held] + w_p * xp[held] + w_b * xb[held])
    # rating residual of the real choice on its boredom: slope by least squares with intercept
    resid, b0 = s.observed - s.rating[:, 0], s.boredom[:, 0]
    x = np.column_stack([np.ones(int((~held).sum())), b0[~held]])
    coef, *_ = np.linalg.lstsq(x, resid[~held], rcond=None)
    cost = max(0.0, -float(coef[1]))
    base = s.rating[held, 0]
    rmse = {
        "world model": float(np.sqrt(np.mean((s.observed[held] - base) ** 2))),
        "world model minus fitted boredom": float(
            np.sqrt(np.mean((s.observed[held] - base + cost * b0[held]) ** 2))
        ),
    }
    log.info("boredom: choice weight %.3f, rating cost %.3f (slope %.3f)", w_b, cost, coef[1])
    return dataclasses.replace(
        fit,
        w_rating=w_r,
        w_propensity=w_p,
        heldout=heldout,
        w_boredom=w_b,
        rating_boredom_slope=float(coef[1]),
        rating_boredom=cost,
        rating_rmse=rmse,
    )


def calibrated_choice(fit: ChoiceFit, **priors: float) -> CalibratedChoice:
    """The choice model with fitted weights and the given priors (position, nothing)."""
    return CalibratedChoice(w_rating=fit.w_rating, w_propensity=fit.w_propensity, **priors)
