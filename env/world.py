"""SimulationWorld: everything an environment needs, built once and saved to a folder.

A world bundles the Catalog (movies, genres, ratings, hop graph), the agent's item embeddings
and retriever (fitted on the training users' ratings only), the world model and the
consumption model (fitted on all ratings: the simulated users' true tastes and what they tend
to watch), the choice model's weights (fitted by maximum likelihood on real next interactions,
``env.calibration``) and a seeded train/test split of the users, so that evaluation runs on
users whose ratings the embeddings never saw. Worlds saved before the consumption model and
retriever existed load without them and simulate with the original rating-only choice.
Environments share one world; ``gymnasium.make("marquee/MovieRec-v0", world=world)`` is then
cheap.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from env.calibration import fit_choice
from env.choice import CalibratedChoice, ChoiceModel, MultinomialLogitChoice
from env.consumption import ConsumptionModel
from env.user_model import UserModelConfig
from env.world_model import WorldModel
from features.blend import BlendRetriever, SavedRetriever, load_retriever
from features.bundle import RETRIEVER_FILE, save_pool_tables
from features.candidates import DEFAULT_BASE_WEIGHT, LEGACY_BASE_WEIGHT
from features.catalog import Catalog, genre_shares
from features.embeddings import ItemEmbeddings
from features.graph.store import GraphStore
from features.npz import arrays_path
from features.ranking import RESIDUAL_RAMP
from features.retrieval import ItemBias, Retriever, RP3Beta
from features.slate_features import SlateFeatures
from features.state import LEGACY_POOL_HOPS, POOL_HOPS

log = logging.getLogger(__name__)

Split = Literal["train", "test", "all"]
SPLITS: tuple[str, ...] = ("train", "test", "all")
BUNDLED_MOVIELENS = Path(__file__).resolve().parent.parent / "features/datasets/ml-latest-small"
_FILES = ("catalog.npz", "embeddings.npz", "world_model.npz", "users.npz", "world.json")


@dataclass(frozen=True)
class SimulationWorld:
    """Catalog + embeddings + world model + user split (module doc)."""

    catalog: Catalog
    embeddings: ItemEmbeddings
    model: WorldModel
    train_users: npt.NDArray[np.str_]
    test_users: npt.NDArray[np.str_]
    settings: dict[str, Any] = field(default_factory=dict)
    consumption: ConsumptionModel | None = None
    retriever: SavedRetriever | None = None

    def choice_model(self) -> ChoiceModel:
        """The calibrated choice model when this world has a consumption model (its fitted
        weights, else the defaults), the original rating-only one otherwise."""
        if self.consumption is None:
            return MultinomialLogitChoice()
        weights = self.settings.get("choice", {})
        return CalibratedChoice(**{k: float(v) for k, v in weights.items()})

    def user_config(self) -> UserModelConfig:
        """The simulated users' settings: boredom's rating cost as fitted on real ratings when
        the world was calibrated with genres, ``UserModelConfig``'s defaults otherwise."""
        return UserModelConfig(**{k: float(v) for k, v in self.settings.get("user", {}).items()})

    @functools.cached_property
    def train_ratings(self) -> Any:
        """The catalogue's ratings of the training users (what the agent's side may see)."""
        r = self.catalog.ratings
        return r[r["user"].isin(set(self.train_users.tolist()))]

    @functools.cached_property
    def retrievers(self) -> dict[str, Retriever]:
        """Scorers the baselines rank by, all fitted on the training users' ratings: the
        blend retriever and its EASE (when the world has them), RP3beta over the graph and item
        bias."""
        out: dict[str, Retriever] = {
            "rp3beta": RP3Beta.fit(self.catalog, self.train_ratings),
            "item-bias": ItemBias.fit(self.train_ratings, self.catalog.n_movies),
        }
        if isinstance(self.retriever, BlendRetriever):
            out["ease"] = self.retriever.ease
            out["blend"] = self.retriever
        elif self.retriever is not None:
            out["ease"] = self.retriever
        return out

    @property
    def pool_hops(self) -> tuple[int, ...]:
        """The hops the state's graph pool averages (features.state): what this world's agents
        were trained with, so that the service builds the same state."""
        return tuple(int(h) for h in self.settings.get("pool_hops", LEGACY_POOL_HOPS))

    @functools.cached_property
    def slate_features(self) -> SlateFeatures | None:
        """The candidates' slate features the agent's action weighs (features.slate_features),
        quality fitted on the training users' ratings; None for worlds saved without them."""
        names = tuple(str(n) for n in self.settings.get("slate_features", ()))
        if not names:
            return None
        weight = self.base_weight * self.slate_feature_reach
        return SlateFeatures.fit(self.catalog, self.train_ratings, names, weight)

    @property
    def residual_ramp(self) -> float:
        """The ramp of the agent's correction with the history's length
        (``features.ranking.residual_weight``); 0 (full correction) for worlds saved before."""
        return float(self.settings.get("residual_ramp", 0.0))

    @property
    def slate_feature_reach(self) -> float:
        """How far a slate-feature weight of 1 moves a score, as a fraction of the retriever
        base (``features.slate_features``): the bound on the agent's feature corrections."""
        return float(self.settings.get("slate_feature_reach", 1.0))

    @property
    def action_dim(self) -> int:
        """The agent's action size: the embedding's dimension plus one per slate feature."""
        extra = 0 if self.slate_features is None else self.slate_features.dim
        return self.embeddings.dim + extra

    @property
    def base_weight(self) -> float:
        """The retriever base's weight in the ranking (features.candidates) this world's
        agents were trained with."""
        return float(self.settings.get("base_weight", LEGACY_BASE_WEIGHT))

    def __post_init__(self) -> None:
        self.embeddings.check_catalog(self.catalog)
        if self.model.n_items != self.catalog.n_movies:
            raise ValueError(
                f"world model covers {self.model.n_items} movies, catalog {self.catalog.n_movies}"
            )
        for name, n in (
            ("consumption model", None if self.consumption is None else self.consumption.n_items),
            ("retriever", None if self.retriever is None else self.retriever.n_movies),
        ):
            if n is not None and n != self.catalog.n_movies:
                raise ValueError(f"{name} covers {n} movies, catalog {self.catalog.n_movies}")

    # ---- building --------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        catalog: Catalog,
        *,
        dim: int = 16,
        factors: int = 16,
        reg: float = 0.15,
        test_fraction: float = 0.2,
        seed: int = 0,
        calibrate: bool = True,
        slate_features: tuple[str, ...] = (),
        slate_feature_reach: float = 1.0,
        residual_ramp: float = RESIDUAL_RAMP,
    ) -> SimulationWorld:
        """Split users (seeded), fit embeddings and the retriever on the train users, the world
        and consumption models on all; with ``calibrate``, fit the choice weights too (about
        20 s on ml-latest-small), else keep ``CalibratedChoice``'s defaults. ``slate_features``
        (features.slate_features.SLATE_FEATURES or a part): what the agent's action weighs
        beside the embedding; off by default (README "Slate features": they win in the
        simulator and cost real held-out precision)."""
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        users = catalog.users
        if users.shape[0] == 0:
            raise ValueError("the catalog has no ratings: cannot simulate users")
        rng = np.random.default_rng(seed)
        perm = rng.permutation(users.shape[0])
        n_test = round(users.shape[0] * test_fraction)
        test = np.sort(users[perm[:n_test]])
        train = np.sort(users[perm[n_test:]])
        r = catalog.ratings
        train_r = r[r["user"].isin(set(train.tolist()))]
        emb = ItemEmbeddings.fit(catalog, train_r, dim=dim, seed=seed)
        model = WorldModel.fit(
            r["user"].to_numpy(),
            r["movie"].to_numpy(),
            r["rating"].to_numpy(),
            catalog.n_movies,
            factors=factors,
            reg=reg,
            seed=seed,
        )
        consumption = ConsumptionModel.fit(
            r["user"].to_numpy(), r["movie"].to_numpy(), catalog.n_movies, seed=seed
        )
        retriever = BlendRetriever.fit(train_r, catalog.n_movies, seed=seed)
        settings: dict[str, Any] = {
            "dim": dim,
            "factors": factors,
            "reg": reg,
            "test_fraction": test_fraction,
            "seed": seed,
            "pool_hops": list(POOL_HOPS),
            "base_weight": DEFAULT_BASE_WEIGHT,
            "slate_features": list(slate_features),
            "slate_feature_reach": slate_feature_reach,
            "residual_ramp": residual_ramp,
        }
        if calibrate:
            fit = fit_choice(r, catalog.n_movies, seed=seed, genres=catalog.genres)
            settings["choice"] = {"w_rating": fit.w_rating, "w_propensity": fit.w_propensity}
            if fit.w_boredom is not None:
                settings["choice"]["w_boredom"] = fit.w_boredom
                settings["user"] = {"boredom_weight": fit.rating_boredom}
            settings["choice_fit"] = fit.as_dict()
        log.info("world: %d train users, %d test users", train.shape[0], test.shape[0])
        return cls(catalog, emb, model, train, test, settings, consumption, retriever)

    @classmethod
    def from_store(cls, store: GraphStore, **kwargs: Any) -> SimulationWorld:
        """Build from any GraphStore (snapshot into a Catalog first)."""
        return cls.build(Catalog.from_store(store), **kwargs)

    @classmethod
    def from_movielens(cls, folder: str | Path | None = None, **kwargs: Any) -> SimulationWorld:
        """Build straight from a MovieLens folder (default: the bundled ml-latest-small)."""
        from features.importers.movielens import load_movielens

        batch = load_movielens(Path(folder) if folder else BUNDLED_MOVIELENS)
        return cls.build(Catalog.from_batch(batch), **kwargs)

    # ---- users -----------------------------------------------------------------------------
    def users(self, split: str) -> npt.NDArray[np.str_]:
        if split == "train":
            return self.train_users
        if split == "test":
            return self.test_users
        if split == "all":
            return np.sort(np.concatenate([self.train_users, self.test_users]))
        raise ValueError(f"unknown user split {split!r}; expected one of {', '.join(SPLITS)}")

    @functools.cached_property
    def _user_spans(self) -> dict[str, tuple[int, int]]:
        users = self.catalog.ratings["user"].to_numpy().astype(str)
        keys, starts, counts = np.unique(users, return_index=True, return_counts=True)
        return {
            k: (int(s), int(s + c)) for k, s, c in zip(keys.tolist(), starts, counts, strict=True)
        }

    def has_user(self, key: str) -> bool:
        return key in self._user_spans

    def user_ratings(self, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(movie rows, ratings) of a real user, oldest first; ValueError if unknown."""
        span = self._user_spans.get(key)
        if span is None:
            raise ValueError(f"unknown user {key!r}: no ratings for that user in this world")
        r = self.catalog.ratings
        a, b = span
        return (
            r["movie"].to_numpy()[a:b].astype(np.int64),
            r["rating"].to_numpy()[a:b].astype(np.float64),
        )

    def user_last_time(self, key: str) -> float | None:
        """When a real user's latest rating was made (seconds), None if unknown."""
        span = self._user_spans.get(key)
        r = self.catalog.ratings
        if span is None or span[1] <= span[0] or "timestamp" not in r:
            return None
        return float(r["timestamp"].to_numpy()[span[0] : span[1]].max())

    @functools.cached_property
    def genre_matrix(self) -> npt.NDArray[np.float64]:
        """Dense movies x genres 0/1 (small: genres are few)."""
        return np.asarray(self.catalog.genres.todense(), dtype=np.float64)

    @functools.cached_property
    def genre_share(self) -> npt.NDArray[np.float64]:
        """genre_matrix with each row divided by the movie's number of genres (0 rows stay 0)."""
        return genre_shares(self.genre_matrix)

    # ---- persistence -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the world to ``folder`` (replacing a previous world there only once the new one
        is complete, so a failure leaves the old one intact)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.catalog.save(tmp / "catalog.npz")
        self.embeddings.save(tmp / "embeddings.npz")
        self.model.save(tmp / "world_model.npz")
        np.savez(tmp / "users.npz", train=self.train_users, test=self.test_users)
        if self.consumption is not None:
            self.consumption.save(tmp / "consumption.npz")
        if self.retriever is not None:
            self.retriever.save(tmp / RETRIEVER_FILE)
        save_pool_tables(tmp, self.catalog, self.embeddings, self.pool_hops)  # for the service
        (tmp / "world.json").write_text(json.dumps({"format": 1, "settings": self.settings}))
        if folder.exists():
            old = folder.with_name(folder.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SimulationWorld:
        folder = Path(folder)
        missing = [f for f in _FILES if not arrays_path(folder / f).exists()]
        if missing:
            raise FileNotFoundError(f"{folder}: not a saved world, missing {', '.join(missing)}")
        meta = json.loads((folder / "world.json").read_text())
        with np.load(folder / "users.npz", allow_pickle=False) as z:
            train, test = z["train"], z["test"]
        return cls(
            catalog=Catalog.load(folder / "catalog.npz"),
            embeddings=ItemEmbeddings.load(folder / "embeddings.npz"),
            model=WorldModel.load(folder / "world_model.npz"),
            train_users=train,
            test_users=test,
            settings=dict(meta.get("settings", {})),
            consumption=(
                ConsumptionModel.load(folder / "consumption.npz")
                if (folder / "consumption.npz").exists()
                else None
            ),
            retriever=(
                load_retriever(folder / RETRIEVER_FILE)
                if arrays_path(folder / RETRIEVER_FILE).exists()
                else None
            ),
        )


@functools.lru_cache(maxsize=1)
def default_world() -> SimulationWorld:
    """The world built from the bundled ml-latest-small, once per process."""
    return SimulationWorld.from_movielens()
