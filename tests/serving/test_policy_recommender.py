"""The DDPG-policy recommender: state from the graph, actor, ranking, cold start, and the
endpoint serving it (policy version, arm, propensities, logged state/action, transitions)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from agent.actor import actor_fn
from agent.buffers.redis_ring import RedisRing, ring_prefix
from agent.factory import load_agent
from agent.policies import AgentPolicy
from features.bundle import RankingBundle
from features.candidates import base_scores
from features.graph.batch import GraphBatch
from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.ranker import Ranker
from serving.app import create_app
from serving.feedback.store import RedisFeedbackStore
from serving.policy_recommender import PolicyRecommender
from serving.popularity import PopularityRecommender
from serving.reclog import RecLog, log_served
from serving.schemas.feedback import FeedbackEvent
from serving.settings import Settings
from tests.serving.conftest import AUTH, make_settings
from tests.serving.policy_home import TrainedHome, trained_home


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    return trained_home(tmp_path_factory)


@pytest.fixture(scope="module")
def ranking(trained: TrainedHome) -> Ranker:
    return Ranker(RankingBundle.load(trained.home.world_dir))


@pytest.fixture(scope="module")
def model(trained: TrainedHome) -> object:
    return load_agent(str(trained.zip_path))


def _recommender(
    trained: TrainedHome, ranking: Ranker, model: object, **kw: object
) -> PolicyRecommender:
    return PolicyRecommender(
        ranker=ranking,
        store=trained.store,
        act=actor_fn(model),
        fallback=PopularityRecommender(trained.store),
        version="ddpg-v1",
        **kw,  # type: ignore[arg-type]
    )


def _seen(store: LocalGraphStore, user: str) -> set[str]:
    edges = (EdgeKind.RATED, EdgeKind.WATCHED, EdgeKind.NOT_INTERESTED)
    return {n.key for e in edges for n in store.neighbours(VertexKind.USER, user, e, "out")}


def test_known_user_gets_the_actors_top_k_of_unseen_candidates(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    rec = _recommender(trained, ranking, model)
    user = str(trained.world.catalog.users[0])
    result = rec.recommend(user, 10)
    assert result.policy_version == "ddpg-v1" and not result.cold_start
    assert result.state is not None and result.action is not None
    assert result.state.shape == (ranking.observation_size,)
    # the actor path gives what SB3's own predict gives
    np.testing.assert_allclose(
        result.action, AgentPolicy(model).action(result.state), rtol=1e-5, atol=1e-6
    )
    movies = [i.movie for i in result.items]
    assert len(movies) == 10 == len(set(movies))
    assert not set(movies) & _seen(trained.store, user)
    assert all(i.propensity == 1.0 for i in result.items)
    # deterministic top-k: scores descending, no unchosen candidate scores higher
    history = ranking.histories.read(trained.store, user)
    assert history is not None
    cands = ranking.candidates.generate(history)
    scores = ranking.vectors[cands] @ result.action
    chosen = {ranking.histories.row(m) for m in movies}
    got = [i.score for i in result.items]
    assert got == sorted(got, reverse=True)
    rest = [s for c, s in zip(cands, scores, strict=True) if int(c) not in chosen]
    assert max(rest) <= min(got) + 1e-5


def test_unseeded_sampling_keeps_one_generator_per_thread(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    """Without a seed a thread's requests draw on from one generator (seeded once from fresh
    entropy), another thread has its own, and the slates still vary from request to request."""
    import threading

    rec = _recommender(trained, ranking, model, temperature=0.5)
    user = str(trained.world.catalog.users[1])
    mine = rec._rng(user)
    assert rec._rng("someone else") is mine
    theirs: list[np.random.Generator] = []
    worker = threading.Thread(target=lambda: theirs.append(rec._rng(user)))
    worker.start()
    worker.join()
    assert theirs[0] is not mine
    assert not np.array_equal(theirs[0].random(8), mine.random(8))
    other = _recommender(trained, ranking, model, temperature=0.5)
    assert other._rng(user) is not mine
    slates = {tuple(i.movie for i in rec.recommend(user, 5).items) for _ in range(6)}
    assert len(slates) > 1


def test_sampled_slates_carry_plackett_luce_propensities(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    rec = _recommender(trained, ranking, model, temperature=0.5, seed=7)
    user = str(trained.world.catalog.users[1])
    other = str(trained.world.catalog.users[2])
    result = rec.recommend(user, 5)
    # seeded per (seed, version, user, n-th request): a replay serves the same sequence of
    # slates, whatever other users asked in between
    replay = _recommender(trained, ranking, model, temperature=0.5, seed=7)
    replay.recommend(other, 5)
    assert [i.movie for i in replay.recommend(user, 5).items] == [i.movie for i in result.items]
    later = [[i.movie for i in rec.recommend(user, 5).items] for _ in range(4)]
    assert later == [[i.movie for i in replay.recommend(user, 5).items] for _ in range(4)]
    # ... and the n-th request draws its own sample (not one slate forever)
    assert any(slate != [i.movie for i in result.items] for slate in later)
    props = np.array([i.propensity for i in result.items])
    assert np.all((props > 0) & (props < 1))
    assert np.isclose(np.log(props).sum(), float(result.extra["log_propensity"]))
    # the first pick's propensity is its softmax probability over all candidates
    history = ranking.histories.read(trained.store, user)
    assert history is not None and result.action is not None
    cands = ranking.candidates.generate(history)
    base = base_scores(ranking.retriever, history, cands, ranking.bundle.base_weight)
    assert base is not None  # the trained world's bundle carries its retriever
    t = 0.5 * ranking.bundle.base_weight  # the temperature is in units of the unit base
    logits = ((ranking.vectors[cands] @ result.action).astype(np.float64) + base) / t
    p = np.exp(logits - logits.max())
    p /= p.sum()
    first = int(np.flatnonzero(cands == ranking.histories.row(result.items[0].movie))[0])
    assert np.isclose(props[0], p[first], rtol=1e-5)


def _constant(action: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda _state: action


def test_action_noise_serves_and_logs_the_explored_action(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    """MARQUEE_ACTION_NOISE: the slate is ranked by the actor's action plus the request's
    noise and the result carries that action (what the reclog and the learner's transitions
    hold); seeded requests replay it."""
    user = str(trained.world.catalog.users[3])
    plain = _recommender(trained, ranking, model).recommend(user, 10)
    rec = _recommender(trained, ranking, model, action_noise=0.2, seed=7)
    replay = _recommender(trained, ranking, model, action_noise=0.2, seed=7)
    results = [rec.recommend(user, 10) for _ in range(5)]
    assert plain.action is not None
    for result in results:
        assert result.action is not None and result.state is not None
        assert not np.allclose(result.action, plain.action)
        assert np.all(np.abs(result.action) <= 1.0)
        assert all(i.propensity == 1.0 for i in result.items)  # temperature 0: top-k
        again = replay.recommend(user, 10)
        assert again.action is not None
        np.testing.assert_array_equal(result.action, again.action)
        # the slate is the top-k by the logged action, as a fixed actor giving it ranks
        fixed = ranking.rank(trained.store, user, _constant(result.action), 10)
        assert fixed is not None and fixed.slate is not None
        assert [i.movie for i in result.items] == [
            ranking.keys[int(i)] for i in fixed.slate.indices
        ]
    deviation = np.stack([r.action - plain.action for r in results])
    assert 0.05 < float(np.abs(deviation).mean()) < 0.4  # about the sd's mean |N(0, 0.2)|


@pytest.mark.parametrize("noise", [-0.1, 1.5])
def test_action_noise_out_of_range_is_refused(noise: float) -> None:
    with pytest.raises(ValueError, match="action_noise"):
        Settings(action_noise=noise)


def test_implied_action_sd_serves_the_same_slates_and_logs_the_implied_action(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    """MARQUEE_IMPLIED_ACTION_SD: the same seeded requests serve the same items with the same
    propensities; the result's action (what the reclog and the learner's transitions hold) is
    the one each draw implies, varying around the actor's."""
    user = str(trained.world.catalog.users[3])
    plain = _recommender(trained, ranking, model, temperature=0.5, seed=7)
    implied = _recommender(trained, ranking, model, temperature=0.5, seed=7, implied_action_sd=1.0)
    actions = []
    for _ in range(5):
        a, b = plain.recommend(user, 10), implied.recommend(user, 10)
        assert [(i.movie, i.propensity) for i in a.items] == [
            (i.movie, i.propensity) for i in b.items
        ]
        assert a.action is not None and b.action is not None
        assert not np.array_equal(a.action, b.action) and np.all(np.abs(b.action) <= 1.0)
        actions.append(b.action - a.action)
    assert len({d.tobytes() for d in actions}) == 5  # each draw implies its own action


@pytest.mark.parametrize("sd", [-0.5, 11.0])
def test_implied_action_sd_out_of_range_is_refused(sd: float) -> None:
    with pytest.raises(ValueError, match="implied_action_sd"):
        Settings(implied_action_sd=sd)


def _store_with_stranger() -> LocalGraphStore:
    """A user whose only rating is of a movie the policy's world does not hold."""
    batch = GraphBatch()
    batch.add_vertices(VertexKind.MOVIE, pd.DataFrame({"key": ["zz-new"], "title": ["New"]}))
    batch.add_vertices(VertexKind.USER, pd.DataFrame({"key": ["stranger"]}))
    batch.add_edges(
        EdgeKind.RATED,
        pd.DataFrame([{"src": "stranger", "dst": "zz-new", "rating": 5.0, "timestamp": 1}]),
    )
    store = LocalGraphStore()
    store.upsert(batch)
    return store


@pytest.mark.parametrize(
    ("case", "user"),
    [("unknown user", "nobody-like-this"), ("only unknown movies", "stranger")],
)
def test_users_without_usable_history_get_cold_start(
    trained: TrainedHome, ranking: Ranker, model: object, case: str, user: str
) -> None:
    store = _store_with_stranger() if case == "only unknown movies" else trained.store
    rec = PolicyRecommender(
        ranker=ranking,
        store=store,
        act=actor_fn(model),
        fallback=PopularityRecommender(store),
        version="ddpg-v1",
    )
    result = rec.recommend(user, 3)
    assert result.cold_start and result.state is None and result.action is None
    assert result.policy_version == "popularity"
    assert result.extra == {"policy": "ddpg-v1", "served_by": "popularity"}


def test_next_state(trained: TrainedHome, ranking: Ranker, model: object) -> None:
    rec = _recommender(trained, ranking, model)
    user = str(trained.world.catalog.users[2])
    result = rec.recommend(user, 5)
    assert result.state is not None
    same = rec.next_state(user, result.state, None)
    assert same is not None and np.array_equal(same, result.state)
    after = rec.next_state(user, result.state, result.items[0].movie)
    assert after is not None and after.shape == result.state.shape
    assert np.all(np.abs(after) <= 1.0)
    # the movie is seen now: the graph pool of unseen movies no longer counts it
    assert not np.array_equal(after, result.state)


def test_next_state_reflects_the_rating(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    rec = _recommender(trained, ranking, model)
    user = str(trained.world.catalog.users[2])
    result = rec.recommend(user, 5)
    assert result.state is not None
    movie = result.items[0].movie
    low = rec.next_state(user, result.state, movie, 1.0)
    high = rec.next_state(user, result.state, movie, 5.0)
    seen = rec.next_state(user, result.state, movie)  # not_interested, skipped, watched
    assert low is not None and high is not None and seen is not None
    lay = ranking.builder.layout
    # a 1-star and a 5-star rating pull the user vector in opposite directions ...
    assert not np.allclose(low[lay["user"]], high[lay["user"]])
    # ... only the 5 stars count as a positive, and both are one more rated movie than "seen"
    assert high[lay["stats"]][1] > low[lay["stats"]][1]
    assert low[lay["stats"]][0] == high[lay["stats"]][0] > seen[lay["stats"]][0]
    assert not np.array_equal(high, seen) and not np.array_equal(low, seen)


def test_rerating_a_rated_movie_replaces_its_rating(
    trained: TrainedHome, ranking: Ranker, model: object
) -> None:
    rec = _recommender(trained, ranking, model)
    user = str(trained.world.catalog.users[2])
    history = ranking.histories.read(trained.store, user)
    assert history is not None and history.items
    state = ranking.builder.build(history)
    row, old = history.items[0], history.ratings[0]
    movie = ranking.keys[row]
    same = rec.next_state(user, state, movie, old)
    other = rec.next_state(user, state, movie, 0.5 if old > 2.5 else 5.0)
    assert same is not None and other is not None
    stats = ranking.builder.layout["stats"]
    # the rating the graph holds is not counted twice: as many rated movies as before
    assert same[stats][0] == other[stats][0] == state[stats][0]
    np.testing.assert_allclose(
        same[ranking.builder.layout["user"]], state[ranking.builder.layout["user"]], atol=1e-6
    )
    assert not np.allclose(other, state)


def test_transitions_differing_only_in_feedback_differ_in_next_state(
    trained: TrainedHome, ranking: Ranker, model: object, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    rec = _recommender(trained, ranking, model)
    user = str(trained.world.catalog.users[4])
    served, logged = log_served(RecLog(client, prefix, 60), user, "default", rec.recommend(user, 5))
    assert logged and served.state is not None
    store = RedisFeedbackStore(
        client,
        prefix,
        RecLog(client, prefix, 60),
        next_state=lambda r, movie, rating: rec.next_state(r.user, r.state, movie, rating),  # type: ignore[arg-type]
    )
    movie = served.slate[0]
    kinds: list[dict[str, object]] = [
        {"type": "rated", "rating": 1.0},
        {"type": "rated", "rating": 5.0},
        {"type": "not_interested"},
        {"type": "skipped"},
    ]
    events = [
        FeedbackEvent(event_id=f"n{i}", recommendation_id=served.id, movie=movie, **kind)  # type: ignore[arg-type]
        for i, kind in enumerate(kinds)
    ]
    assert store.submit(events) == 4
    ring = RedisRing(
        client,
        ring_prefix(prefix),
        obs_dim=served.state.size,
        action_dim=ranking.action_size,
        capacity=100_000,
    )
    got = ring.get(np.arange(4))
    for t in range(4):
        np.testing.assert_array_equal(got.obs[t], served.state)
    low, high, dismissed, skipped = got.next_obs
    assert not np.array_equal(low, high)
    assert not np.array_equal(high, dismissed) and not np.array_equal(high, skipped)
    expected = rec.next_state(user, served.state, movie, 5.0)
    assert expected is not None
    np.testing.assert_array_equal(high, expected)
    np.testing.assert_allclose(got.reward, [-1.0, 1.0, -1.0, -0.1])


def test_endpoint_serves_the_registered_champion(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    settings = make_settings(tmp_path, prefix, home=trained.home.root, temperature=0.3)
    trained.store.save(tmp_path / "graph")
    store = LocalGraphStore(tmp_path / "graph")  # a copy: the feedback below writes to it
    app = create_app(settings, store=store, redis_client=client)
    user = str(trained.world.catalog.users[3])
    with TestClient(app) as api:
        ready = api.get("/readyz").json()
        assert ready["arms"] == {"default": "ddpg-v1"}
        assert ready["policies"] == {"champion": "serving version 1"}
        body = api.get(f"/v1/users/{user}/recommendations?k=4").json()
        assert body["policy_version"] == "ddpg-v1" and body["arm"] == "default"
        assert not body["cold_start"] and body["logged"]
        assert len(body["items"]) == 4
        for item in body["items"]:
            assert item["policy_version"] == "ddpg-v1" and item["arm"] == "default"
            assert 0 < item["propensity"] < 1
        logged = RecLog(client, prefix, 60).get(body["recommendation_id"])
        assert logged is not None and logged.state is not None and logged.action is not None
        assert logged.state.size == trained.world.catalog.n_genres + 4 * 8 + 2
        np.testing.assert_allclose(logged.propensities, [i["propensity"] for i in body["items"]])
        # feedback on it becomes a transition in the replay ring
        event = {
            "event_id": "e1",
            "type": "rated",
            "rating": 5.0,
            "recommendation_id": body["recommendation_id"],
            "movie": body["items"][0]["movie"],
        }
        assert api.post("/v1/feedback", json=event, headers=AUTH).json()["new"] == 1
        assert "marquee_replay_buffer_size 1.0" in api.get("/metrics").text
        cold = api.get("/v1/users/new-person/recommendations?k=3").json()
        assert cold["cold_start"] and cold["policy_version"] == "popularity"


def test_service_explores_by_default_and_temperature_zero_stays_deterministic(
    tmp_path: Path, trained: TrainedHome, server_cp: tuple[redis.Redis, str]
) -> None:
    client, prefix = server_cp
    user = str(trained.world.catalog.users[5])
    url = f"/v1/users/{user}/recommendations?k=10"
    assert Settings().temperature > 0
    settings = make_settings(tmp_path, prefix, home=trained.home.root)  # default temperature
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        slates = [api.get(url).json()["items"] for _ in range(10)]
    props = [i["propensity"] for s in slates for i in s]
    assert all(0 < p < 1 for p in props)  # non-degenerate propensities for off-policy evaluation
    settings = make_settings(tmp_path, prefix, home=trained.home.root, temperature=0.0)
    with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
        fixed = [[i["movie"] for i in api.get(url).json()["items"]] for _ in range(5)]
        assert all(i["propensity"] == 1.0 for i in api.get(url).json()["items"])
    assert all(s == fixed[0] for s in fixed) and len(fixed[0]) == 10


def test_service_logs_the_implied_action_by_default_and_the_actors_at_zero(
    tmp_path: Path, trained: TrainedHome, model: object, server_cp: tuple[redis.Redis, str]
) -> None:
    """MARQUEE_IMPLIED_ACTION_SD's default reaches the slate log the learner reads: each logged
    action is the draw's, not the actor's for the logged state; at 0 it is the actor's."""
    client, prefix = server_cp
    url = f"/v1/users/{trained.world.catalog.users[4]}/recommendations?k=10"
    actor = AgentPolicy(model)
    assert Settings().implied_action_sd > 0
    for sd, implied in ((None, True), (0.0, False)):
        extra = {} if sd is None else {"implied_action_sd": sd}
        settings = make_settings(tmp_path, prefix, home=trained.home.root, **extra)
        with TestClient(create_app(settings, store=trained.store, redis_client=client)) as api:
            ids = [api.get(url).json()["recommendation_id"] for _ in range(3)]
        for rid in ids:
            logged = RecLog(client, prefix, 60).get(rid)
            assert logged is not None and logged.state is not None and logged.action is not None
            own = actor.action(logged.state)
            assert np.allclose(logged.action, own, rtol=1e-5, atol=1e-6) is not implied


def test_service_and_simulator_share_the_candidate_depth() -> None:
    """The service must rank the candidates the agent was trained on (the env's default)."""
    import inspect

    from env.movie_rec_env import MovieRecEnv
    from features.candidates import DEFAULT_CANDIDATE_HOPS
    from serving.settings import Settings

    env_default = inspect.signature(MovieRecEnv.__init__).parameters["candidate_hops"].default
    assert Settings().candidate_hops == env_default == DEFAULT_CANDIDATE_HOPS == 2
