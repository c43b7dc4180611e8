"""serving.heap: what a worker builds at start is frozen out of the collector's walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from features.graph.local import LocalGraphStore
from serving import heap
from tests.serving.conftest import make_settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # give the rest of the test session its collector back


def _collected(obj: object) -> bool:
    """Whether the collector's oldest generation walks ``obj`` (by identity)."""
    return any(o is obj for o in gc.get_objects(generation=2))


def test_freeze_moves_what_is_alive_out_of_the_collections() -> None:
    kept = [[i] for i in range(1000)]  # tracked containers
    frozen = heap.freeze()
    # the count moves with the rest of the test process (objects tracked or freed meanwhile):
    # only a lower bound is safe; which objects are frozen is checked below
    assert frozen >= len(kept)
    gc.collect()  # would move anything not frozen into the oldest generation
    assert not any(_collected(x) for x in kept[:3])
    gc.unfreeze()
    gc.collect()
    assert all(_collected(x) for x in kept[:3])


@pytest.mark.parametrize("freeze_heap", [True, False])
def test_a_served_app_freezes_what_its_start_built(
    tmp_path: Path, store: LocalGraphStore, server_cp: tuple[redis.Redis, str], freeze_heap: bool
) -> None:
    """``marquee serve`` and its workers pass freeze_heap; an app among others in one
    process (the tests' own) does not freeze."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    client, prefix = server_cp
    settings = make_settings(tmp_path, prefix)
    app = create_app(settings, store=store, redis_client=client, freeze_heap=freeze_heap)
    assert gc.get_freeze_count() == 0
    with TestClient(app) as api:
        assert (gc.get_freeze_count() > 0) is freeze_heap
        services = api.app.state.services  # type: ignore[attr-defined]
        gc.collect()
        assert _collected(services) is not freeze_heap  # built at start: frozen, or not
        assert api.get("/v1/users/fan/recommendations?k=2").status_code == 200


def test_the_first_finished_warm_up_is_frozen_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """serving.precompute's loop freezes when the warm-up is first done, not at every idle
    poll nor before any work exists."""
    import asyncio
    from types import SimpleNamespace

    import serving.precompute as precompute

    calls: list[int] = []

    def freeze(collect: bool = False) -> int:
        calls.append(1)
        return 0

    def step(budget: float) -> None:
        work.idle = True

    monkeypatch.setattr(heap, "freeze", freeze)
    work = SimpleNamespace(idle=False, step=step)
    states = iter([None, None, work, work, work, work, work])

    class Source:
        def current(self) -> object:
            try:
                return next(states)
            except StopIteration:
                raise asyncio.CancelledError from None

    with pytest.raises(asyncio.CancelledError):
        loop = precompute.precompute_loop(Source(), 0.001, 0.01, freeze_warm_up=True)  # type: ignore[arg-type]
        asyncio.run(loop)
    assert calls == [1]
