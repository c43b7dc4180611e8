"""RankingBundle: what ranking for real users needs from a trained world, and nothing more.

A policy only makes sense with the catalogue and item embeddings it was trained on and the
state settings it saw (the hops the state's graph pool averages). The service loads this
bundle, never the simulation world with its simulated users' hidden tastes. ``artefacts``
carries further named arrays a ranking may need (for example a retriever's per-item scores),
saved beside the rest in ``ranking.npz``.

Files in the bundle's folder (the world folder ``<home>/models/world`` holds them all):
``catalog``, ``embeddings``, optional ``retriever`` (the blend retriever, a bare
EASE in older bundles, whose standardised scores are the ranking's base, ``features.blend``),
``ranking.json`` (settings: pool hops, base weight, slate features), ``ranking``
(artefacts) and ``pool_tables`` (the state's graph-pool tables, ``features.state.pool_tables``,
written by every save; bundles saved before them compute them on load, as before); a world
saved by env.world keeps its settings in ``world.json``, read as well.
Bundles without a retriever rank by e . a alone, as before.

The arrays are folders of .npy files that a load memory-maps read-only (``features.npz``):
every worker of ``marquee serve --workers N`` shares one copy of them through the page cache,
as it shares the graph, and the catalogue's ratings, which ranking does not read, are never
loaded (``features.catalog.SavedRatings``). Bundles saved before (``catalog.npz`` and so on)
still load, read into memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from features.blend import SavedRetriever, load_retriever
from features.candidates import DEFAULT_BASE_WEIGHT, LEGACY_BASE_WEIGHT
from features.catalog import Catalog
from features.embeddings import ItemEmbeddings
from features.npz import arrays_path, open_arrays, save_arrays
from features.state import (
    LEGACY_POOL_HOPS,
    POOL_HOPS,
    PoolTables,
    check_pool_tables,
    pool_tables,
)

log = logging.getLogger(__name__)

# the names older bundles' archives had; a save writes each as a folder without ".npz"
# (features.npz.save_arrays) and a load reads whichever is there (features.npz.open_arrays)
CATALOG_FILE = "catalog.npz"
EMBEDDINGS_FILE = "embeddings.npz"
SETTINGS_FILE = "ranking.json"
ARTEFACTS_FILE = "ranking.npz"
RETRIEVER_FILE = "retriever.npz"
WORLD_SETTINGS_FILE = "world.json"  # env.world's settings, where older bundles keep pool_hops
POOL_TABLES_FILE = "pool_tables"  # the state's graph-pool tables (features.state.pool_tables)


@dataclass(frozen=True)
class RankingBundle:
    """Catalogue + embeddings + ranking settings + named arrays (module doc)."""

    catalog: Catalog
    embeddings: ItemEmbeddings
    pool_hops: tuple[int, ...] = POOL_HOPS
    artefacts: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    retriever: SavedRetriever | None = None
    base_weight: float = DEFAULT_BASE_WEIGHT  # features.candidates.base_scores
    # the candidates' features the actions weigh after the embedding (features.slate_features)
    slate_features: tuple[str, ...] = ()
    slate_feature_reach: float = 1.0  # a feature weight of 1 moves scores this share of the base
    residual_ramp: float = 0.0  # features.ranking.residual_weight (0: full correction, as before)
    # the state's graph-pool tables, mapped from the saved folder (None: the Ranker computes
    # them, as for bundles saved before they were kept)
    pool_tables: PoolTables | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.embeddings.check_catalog(self.catalog)
        if self.retriever is not None and self.retriever.n_movies != self.catalog.n_movies:
            raise ValueError(
                f"the retriever covers {self.retriever.n_movies} movies, the catalogue "
                f"{self.catalog.n_movies}: it was fitted for another catalogue"
            )

    def save(self, folder: str | Path) -> Path:
        """Write the bundle's files into ``folder`` (each to a temporary name, then renamed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.catalog.save(folder / CATALOG_FILE)
        self.embeddings.save(folder / EMBEDDINGS_FILE)
        tmp = folder / (SETTINGS_FILE + ".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "format": 1,
                    "pool_hops": list(self.pool_hops),
                    "base_weight": self.base_weight,
                    "slate_features": list(self.slate_features),
                    "slate_feature_reach": self.slate_feature_reach,
                    "residual_ramp": self.residual_ramp,
                }
            )
        )
        tmp.replace(folder / SETTINGS_FILE)
        if self.retriever is not None:
            self.retriever.save(folder / RETRIEVER_FILE)
        if self.artefacts:
            save_arrays(folder / ARTEFACTS_FILE, dict(self.artefacts))
        save_pool_tables(folder, self.catalog, self.embeddings, self.pool_hops, self.pool_tables)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RankingBundle:
        """The bundle in ``folder``; FileNotFoundError naming what is missing."""
        folder = Path(folder)
        missing = [f for f in (CATALOG_FILE, EMBEDDINGS_FILE) if not _exists(folder / f)]
        if missing:
            raise FileNotFoundError(f"{folder}: no ranking bundle, missing {', '.join(missing)}")
        artefacts: dict[str, npt.NDArray[Any]] = {}
        if _exists(folder / ARTEFACTS_FILE):
            with open_arrays(folder / ARTEFACTS_FILE) as z:
                artefacts = {name: z[name] for name in z.files}
        catalog = Catalog.load(folder / CATALOG_FILE)
        embeddings = ItemEmbeddings.load(folder / EMBEDDINGS_FILE)
        hops = _pool_hops(folder)
        return cls(
            catalog=catalog,
            embeddings=embeddings,
            pool_hops=hops,
            pool_tables=load_pool_tables(folder, catalog.n_movies, embeddings.dim, hops),
            base_weight=_base_weight(folder),
            slate_features=tuple(str(n) for n in _setting(folder, "slate_features") or ()),
            slate_feature_reach=float(_setting(folder, "slate_feature_reach") or 1.0),
            residual_ramp=float(_setting(folder, "residual_ramp") or 0.0),
            artefacts=artefacts,
            retriever=(
                load_retriever(folder / RETRIEVER_FILE)
                if _exists(folder / RETRIEVER_FILE)
                else None
            ),
        )


def save_pool_tables(
    folder: Path,
    catalog: Catalog,
    embeddings: ItemEmbeddings,
    pool_hops: tuple[int, ...],
    tables: PoolTables | None = None,
) -> None:
    """Write the state's graph-pool tables into ``folder`` (computed when not given), so that
    a load maps them: at 500K movies they are 130 MB per worker when each computes its own."""
    emb, tot = tables if tables is not None else pool_tables(catalog, embeddings.vectors, pool_hops)
    save_arrays(
        folder / POOL_TABLES_FILE,
        {"hop_emb": emb, "hop_tot": tot, "pool_hops": np.asarray(pool_hops, dtype=np.int64)},
    )


def load_pool_tables(
    folder: Path, n_movies: int, dim: int, pool_hops: tuple[int, ...]
) -> PoolTables | None:
    """The pool tables saved in ``folder``, mapped; None (logged) when there are none (a world
    saved before they were kept: the Ranker computes them) or they do not fit the bundle."""
    path = folder / POOL_TABLES_FILE
    if not path.is_dir():
        log.info(
            "%s: no saved pool tables (saved before they were kept): computed in memory; "
            "saving the world again keeps them for workers to share",
            folder,
        )
        return None
    with open_arrays(path) as z:
        tables = (z["hop_emb"], z["hop_tot"])
        saved_hops = tuple(int(h) for h in z["pool_hops"])
    try:
        if saved_hops != tuple(pool_hops):
            raise ValueError(f"saved for pool hops {saved_hops}, the bundle has {pool_hops}")
        check_pool_tables(tables, n_movies, dim, pool_hops)
    except ValueError as exc:
        log.warning("%s: saved pool tables not used, computed instead: %s", path, exc)
        return None
    return tables


def _exists(path: Path) -> bool:
    """Whether the arrays saved as ``path`` are there, as a folder or an older .npz."""
    return arrays_path(path).exists()


def _setting(folder: Path, name: str) -> Any:
    """A ranking setting: from ranking.json, else the world's settings, else None (bundles
    saved before it was a setting)."""
    for file, key in ((SETTINGS_FILE, None), (WORLD_SETTINGS_FILE, "settings")):
        path = folder / file
        if path.exists():
            meta = json.loads(path.read_text())
            settings = meta if key is None else meta.get(key, {})
            if name in settings:
                return settings[name]
    return None


def _pool_hops(folder: Path) -> tuple[int, ...]:
    """The state's pool hops; what worlds saved before it was a setting were trained with."""
    hops = _setting(folder, "pool_hops")
    return LEGACY_POOL_HOPS if hops is None else tuple(int(h) for h in hops)


def _base_weight(folder: Path) -> float:
    """The retriever base's weight; 1 for bundles saved before it was a setting."""
    weight = _setting(folder, "base_weight")
    return LEGACY_BASE_WEIGHT if weight is None else float(weight)
