"""Policies for A/B arms from the MLflow registry, re-read in the background and swapped live.

Each arm names a registry ref: an alias ("champion", "challenger"), a version number ("3"),
"latest", or "popularity" (no model). ``PolicyPool`` is the service's recommender factory: it
gives each arm a ``SwappableRecommender`` whose current recommender is replaced by one
reference assignment when the ref points at a new version (a request that already holds the
old one finishes with it; nothing is dropped). A watcher thread polls the registry every
``registry_poll_seconds``. Until a ref resolves (no registered model yet, no trained world)
the arm serves the popularity recommender and says why in ``status``/readyz.

Every version ranks with one features.ranker.Ranker over the ranking bundle saved with the
trained world (features.bundle: catalogue, embeddings, settings), loaded on first need.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from features.bundle import RankingBundle
from features.graph.store import GraphStore
from features.ranker import Actor, Ranker
from serving import allocator
from serving.ab import Arm
from serving.policy_recommender import PolicyRecommender
from serving.popularity import PopularityRecommender
from serving.recommender import RecommendationResult, Recommender
from serving.settings import Settings

log = logging.getLogger(__name__)

POPULARITY = "popularity"


def ranker_for(bundle: RankingBundle, settings: Settings) -> Ranker:
    """The Ranker the service's settings describe over ``bundle`` (its candidates, hops and
    per-user cache): one place for the service, the autopilot and the memory benchmark."""
    return Ranker(
        bundle,
        max_candidates=settings.max_candidates,
        hops=settings.candidate_hops,
        cache_size=settings.state_cache_size,
        cache_seconds=settings.state_cache_seconds,
    )


class SwappableRecommender:
    """A Recommender for one registry ref whose implementation is swapped atomically."""

    def __init__(self, ref: str, initial: Recommender, note: str) -> None:
        self.ref = ref
        self._current = initial
        self.loaded: int | None = None  # registry version number, None while on the fallback
        self.note = note

    @property
    def current(self) -> Recommender:
        return self._current

    @property
    def policy_version(self) -> str:
        return self._current.policy_version

    def swap(self, recommender: Recommender, version: int | None, note: str) -> None:
        self._current = recommender  # one reference assignment: atomic under the GIL
        self.loaded = version
        self.note = note

    def recommend(self, user: str, k: int, *, genres: Sequence[str] = ()) -> RecommendationResult:
        return self._current.recommend(user, k, genres=genres)

    def next_state(
        self, user: str, state: np.ndarray, movie: str | None, rating: float | None = None
    ) -> np.ndarray | None:
        return self._current.next_state(user, state, movie, rating)


def _note(arm: SwappableRecommender, text: str) -> None:
    """Set why ``arm`` serves what it serves; log it once, not on every poll."""
    if arm.note != text:
        log.warning("policy %r: %s", arm.ref, text)
        arm.note = text


class PolicyPool:
    """The default recommender factory (serving.app.RecommenderFactory) plus the watcher.

    ``registry`` and ``ranker`` may be given (tests); by default they come from the settings'
    home folder: the MLflow registry at ``home.tracking_uri`` and the ranking bundle in
    ``home.world_dir``, loaded on first need.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Any | None = None,
        ranker: Ranker | None = None,
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._ranker = ranker
        self._popularity: dict[int, PopularityRecommender] = {}
        self._arms: dict[str, SwappableRecommender] = {}  # by ref
        self._store: GraphStore | None = None
        self._lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[str, str], None]] = []  # (ref, new version) on swap

    # ---- factory ---------------------------------------------------------------------------
    def popularity(self, store: GraphStore) -> PopularityRecommender:
        if id(store) not in self._popularity:
            self._popularity[id(store)] = PopularityRecommender(store)
        return self._popularity[id(store)]

    def __call__(self, arm: Arm, store: GraphStore) -> Recommender:
        if arm.policy == POPULARITY:
            return self.popularity(store)
        if self._store is not None and self._store is not store:
            self._arms.clear()  # a new app lifespan with another store: start afresh
        self._store = store
        ref = arm.policy
        if ref not in self._arms:
            self._arms[ref] = SwappableRecommender(
                ref, self.popularity(store), "not loaded yet: serving popularity"
            )
            self._refresh_ref(self._arms[ref])
        return self._arms[ref]

    # ---- registry --------------------------------------------------------------------------
    def _tracking_uri(self) -> str:
        return self.settings.home_dir().tracking_uri

    def registry(self) -> Any | None:
        """The PolicyRegistry, or None while there is none to read (an embedded SQLite file
        that does not exist yet is not created just to find it empty)."""
        if self._registry is None:
            uri = self._tracking_uri()
            if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
                return None
            from agent.registry import PolicyRegistry

            self._registry = PolicyRegistry(uri, model_name=self.settings.model_name)
        return self._registry

    def ranker(self) -> Ranker:
        """The Ranker over the trained world's ranking bundle (the policies' embeddings)."""
        if self._ranker is None:
            bundle = RankingBundle.load(self.settings.home_dir().world_dir)
            self._ranker = ranker_for(bundle, self.settings)
        return self._ranker

    @property
    def loaded_ranker(self) -> Ranker | None:
        """The Ranker once a policy needed it (None before: nothing to precompute for)."""
        return self._ranker

    def loaded_actors(self) -> list[Actor]:
        """The actors of the policy versions served now over ``loaded_ranker`` (what
        serving.precompute computes users' actions for), one per distinct version."""
        ranker = self._ranker
        out: list[Actor] = []
        for arm in list(self._arms.values()):
            current = arm.current
            if (
                isinstance(current, PolicyRecommender)
                and current.ranker is ranker
                and all(current.act is not a for a in out)
            ):
                out.append(current.act)
        return out

    def _version_of(self, registry: Any, ref: str) -> int | None:
        """The version number ``ref`` points at now (cheap: no artifact download)."""
        from mlflow.exceptions import MlflowException

        client, name = registry.client, registry.model_name
        try:
            if ref == "latest":
                found = client.search_model_versions(f"name='{name}'")
                return max((int(v.version) for v in found), default=None)
            if ref.isdigit():
                return int(client.get_model_version(name, ref).version)
            return int(client.get_model_version_by_alias(name, ref).version)
        except MlflowException:
            return None

    def _load(self, registry: Any, version: int) -> Recommender:
        """The PolicyRecommender for one registered version (download, load, check shapes)."""
        from agent.actor import actor_fn
        from agent.factory import load_agent, set_torch_threads

        set_torch_threads(self.settings.torch_threads)
        pv = registry.resolve(str(version))
        ranker = self.ranker()
        model = load_agent(str(pv.zip_path), algo=pv.algo)
        obs = int(np.prod(model.observation_space.shape or (0,)))
        act = int(np.prod(model.action_space.shape or (0,)))
        if (obs, act) != (ranker.observation_size, ranker.action_size):
            raise ValueError(
                f"version {version} expects states of {obs} and actions of {act} values, but "
                f"the ranking bundle gives {ranker.observation_size} and {ranker.action_size}: "
                "it was trained on another world"
            )
        assert self._store is not None
        return PolicyRecommender(
            ranker=ranker,
            store=self._store,
            act=actor_fn(model),
            fallback=self.popularity(self._store),
            version=f"{pv.algo}-v{pv.version}",
            temperature=self.settings.temperature,
            action_noise=self.settings.action_noise,
            implied_action_sd=self.settings.implied_action_sd,
            seed=self.settings.sampling_seed,
        )

    def _refresh_ref(self, arm: SwappableRecommender) -> bool:
        """Swap ``arm`` to the version its ref names now, if that changed. True on a swap."""
        registry = self.registry()
        if registry is None:
            _note(arm, "no policy registry yet (nothing trained): serving popularity")
            return False
        version = self._version_of(registry, arm.ref)
        if version is None:
            if arm.loaded is None:
                _note(
                    arm,
                    f"no registered version {arm.ref!r} of {registry.model_name!r}: "
                    "serving popularity",
                )
            return False
        if version == arm.loaded:
            return False
        try:
            recommender = self._load(registry, version)
        except Exception as exc:
            log.error("policy %r: cannot load version %d: %s", arm.ref, version, exc)
            if arm.loaded is None:
                _note(arm, f"version {version} failed to load ({exc}): serving popularity")
            return False
        old = arm.policy_version
        arm.swap(recommender, version, f"serving version {version}")
        allocator.release()  # what loading it left resident (serving.allocator)
        log.info("policy %r: now %s (was %s)", arm.ref, recommender.policy_version, old)
        for listener in self.listeners:
            listener(arm.ref, recommender.policy_version)
        return True

    def refresh(self) -> list[str]:
        """One registry poll for every ref; the refs that were swapped."""
        with self._lock:
            return [ref for ref, arm in list(self._arms.items()) if self._refresh_ref(arm)]

    def status(self) -> dict[str, str]:
        """Per ref, what it serves and why."""
        return {ref: arm.note for ref, arm in self._arms.items()}

    # ---- watcher ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background poll (idempotent); nothing to watch without policy arms."""
        if not self._arms or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="policy-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        every = self.settings.registry_poll_seconds
        while not self._stop.wait(every):
            try:
                self.refresh()
            except Exception:  # the registry may be briefly unreachable; try again later
                log.exception("registry poll failed; keeping the loaded policies")

    def close(self) -> None:
        """Stop the watcher (waits for a poll in progress)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=60)
