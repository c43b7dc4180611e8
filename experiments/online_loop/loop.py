"""The closed loop, run: people ask the live service, choose and rate; the learner trains on
their feedback; each new challenger is judged by guarded promotion.

1. ``setup.build_home``: a graph, the simulation world, a champion trained for
   ``champion_steps`` and registered as champion and challenger;
2. ``marquee serve`` (two A/B arms, "champion" and "challenger", half the users each by the
   service's salted hash) and ``marquee learn`` (from the champion, registering a
   ``candidate`` every ``learner_register_every`` gradient steps; with ``learner_rebase``
   each candidate is trained from the champion of the moment, agent.online) start as
   subprocesses on the same Redis (MARQUEE_REDIS_URL, else the home's embedded one, which
   both join);
3. every round, ``users_per_round`` simulated people (people.People; who visits is
   arrivals.Arrivals: the whole fixed cohort, or with ``active_people`` a pool that churns) ask
   ``GET /v1/users/{u}/recommendations``, answer the slate with the simulator's choice and
   rating models, and the round's feedback goes to ``POST /v1/feedback`` (a rating for a
   pick, a "skipped" for an ignored slate: -0.1, the simulator's no-choice reward), naming
   the recommendation id; ``plex_share`` of the people are Plex accounts (graph users
   "plex-<name>") whose picks go to ``POST /v1/plex/webhook`` as Plex's ``media.rate``
   deliveries (multipart, the secret in the URL), matched by (user, movie) to their slate;
   their ignored slates send nothing, as Plex never hears of them;
4. every ``decide_every`` rounds, one step of the autopilot (serving.autopilot, what
   ``marquee autopilot`` runs beside a live service): with no challenger under test the
   newest candidate becomes the challenger; a challenger that has served
   ``min_slates_per_arm`` slates since its first is judged once (SNIPS off-policy on the
   champion arm's logs, then Welch's A/B test on per-user reward with the SRM check and the
   guardrails), the decision is logged to MLflow and applied to the registry aliases; a
   promoted champion is watched beside the previous one for ``watch_slates_per_arm`` slates
   and rolled back if it drops. One decision per version, so no version is tested again and
   again until it happens to win.
   With ``online`` "interleave" the challenger arm's users get team-draft slates of the
   challenger and the champion (MARQUEE_AB's ``against``) and the test is the users'
   return from each team's films (serving.autopilot's interleaved mode); ``challenger_share``
   sets how much of the live traffic the challenger arm takes (half by default).

Time is compressed and paced by counts, never by the clock: a round is one simulated visit of
each sampled person; after each round the loop grants the learner (``marquee learn --paced``)
``learner_steps_per_interaction`` gradient steps per slate served so far and waits until it
has taken them (so the replay ring holds the same transitions at every gradient step); after
each alias change it waits until the service serves the versions the aliases name. Everything
is seeded by ``seed``: the graph, the world, the champion's training, which people visit and
what they choose and rate, the service's Plackett-Luce sampling (MARQUEE_SAMPLING_SEED), the
learner's minibatches and torch (``--seed``), the OPE bootstrap. The same seeds give the same
loop.json apart from wall-clock seconds and MLflow run ids (``comparable`` drops those).

``holdout_share`` > 0 adds a third arm, "holdout", pinned to the initial champion's version
for the whole run: the served return of the live arms is compared with it window by window,
which separates what promotions did from the drift every arm shares (the simulated people grow
bored of what they are shown).

Writes ``loop.json`` (arguments, totals, per-arm return and acceptance per window of rounds,
every decision with its evidence), ``slates.csv`` (one row per served slate) and
``online_loop.png`` into ``out``; the home (graph, world, MLflow, embedded Redis) is
``out/home``.
"""

from __future__ import annotations

import csv
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from agent.config import AgentConfig
from agent.promotion import PromotionRules
from agent.registry import PolicyRegistry, configure_tracking
from experiments.online_loop import processes
from experiments.online_loop.arrivals import Arrivals
from experiments.online_loop.people import People
from experiments.online_loop.report import write_html
from experiments.online_loop.setup import HomeSpec, build_home
from marquee.home import Home
from serving.autopilot import (
    Autopilot,
    AutopilotConfig,
    OffPolicyParts,
    aliases,
    served_versions,
)
from serving.settings import DEFAULT_IMPLIED_ACTION_SD

log = logging.getLogger(__name__)

ARMS = ("champion", "challenger")
HOLDOUT = "holdout"
LIVE_ARMS = ARMS  # the arms promotions act on (the holdout keeps the initial champion)
PLEX_PREFIX = "plex-"
CANDIDATE_ALIAS = "candidate"  # what the learner registers; the loop promotes it to challenger


@dataclass
class LoopArgs:
    """The loop's settings; the defaults are the CI scale (a couple of minutes on two cores)."""

    out: Path = Path("online-loop")
    """Run folder (must not hold a previous run's home)."""
    dataset: str = "synthetic"
    """synthetic (seconds to build) or movielens (the calibrated ml-latest-small world)."""
    movies: int = 300
    users: int = 120
    champion_steps: int = 300
    """Simulator steps the champion is trained for: few = a weak champion."""
    challenger: str = "learner"
    """learner: the online learner's versions; sabotaged: one challenger with negated actions."""
    interactions: int = 3000
    """Slates served in all."""
    users_per_round: int = 60
    active_people: int = 0
    """0: every world user may visit in every round (a fixed cohort that ages over the run);
    > 0: this many people at a time, who leave after ``mean_visits`` visits on average and
    are replaced by newcomers (arrivals.Arrivals: a steady mix of new and returning people)."""
    mean_visits: float = 0.0
    """With ``active_people``: the mean of each person's geometric number of visits."""
    k: int = 10
    temperature: float = 0.5
    action_noise: float = 0.0
    """Sd of the service's exploration noise on the policy's action (MARQUEE_ACTION_NOISE,
    features.ranker.explore), so the learner's critic sees actions that vary apart from the
    state. 0.2 was tried on the 50,000-interaction runs and did not help (README)."""
    implied_action_sd: float = DEFAULT_IMPLIED_ACTION_SD
    """> 0 (the service's default): the service logs, for the learner, the action each sampled
    slate implies (MARQUEE_IMPLIED_ACTION_SD, features.implied_action: the posterior mean of
    the action perturbed by N(0, sd^2) given the Plackett-Luce draw), so the critic sees the
    sampling's exploration without noise added to what is served. 0: the actor's action."""
    decide_every: int = 5
    min_slates_per_arm: int = 200
    """Slates each arm must serve (since the challenger's first) before it is judged; at the
    end of the run a challenger not yet judged is judged on what there is."""
    looks: int = 1
    """Analyses of each A/B test, equally spaced up to ``min_slates_per_arm`` (group-sequential
    boundaries, agent.promotion): a clear win is promoted early and a challenger not ahead
    from half the plan on stops taking traffic early. 1: one test at the end."""
    online: str = "ab"
    """How the autopilot tests a challenger online: "ab" (its own arm, Welch on per-user
    return) or "interleave" (the challenger arm's slates interleave it with the champion; the
    return each team's films earned; ``min_slates_per_arm`` counts interleaved slates)."""
    challenger_share: float = 0.5
    """Share of the live traffic (all but the holdout) on the challenger arm."""
    watch_slates_per_arm: int = 200
    """Slates per arm a promoted champion is watched beside the previous one (0: no watch)."""
    learner_register_every: int = 150
    learner_batch_size: int = 64
    learner_gradient_steps: int = 50
    learner_steps_per_interaction: float = 0.5
    """Gradient steps the learner is granted per slate served (module doc: the pacing)."""
    learner_learning_rate: float | None = None
    """The learner's constant learning rate (None: the champion's own, AgentConfig's default,
    which setup trains it with; passed explicitly, so ``marquee learn``'s default never applies)."""
    learner_rebase: bool = False
    """Each candidate trained from the current champion, not from the last candidate."""
    holdout_share: float = 0.0
    """Share of the users in the "holdout" arm, pinned to the initial champion (module doc)."""
    plex_share: float = 0.2
    """Share of the people whose feedback goes through the Plex webhook format."""
    min_decisions: int = 1
    """Serve past ``interactions`` (up to four times as many: the learner may be slow to
    register its first candidate) until this many decisions were made."""
    window_rounds: int = 5
    """Rounds per point of the per-arm return and acceptance curve."""
    write_every: int = 0
    """Rewrite loop.json and slates.csv every this many rounds (0: only at the end), so a long
    run stopped early leaves its figures so far."""
    seed: int = 0
    json: bool = False
    """Print loop.json to stdout instead of the summary."""
    plot: bool = True


@dataclass
class SlateRow:
    round: int
    user: str
    arm: str
    version: str
    reward: float
    accepted: bool
    rating: float | None
    rec_id: str  # the service's recommendation id: evidence windows are sets of these
    t: float  # wall-clock time served: only a lower bound for reading the slate log


@dataclass
class LoopState:
    rows: list[SlateRow] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    looks: list[dict[str, Any]] = field(default_factory=list)
    """Interim looks that settled nothing (``looks`` > 1), with their evidence."""
    events: int = 0  # feedback events made (their ids count up: replays send the same ids)
    feedback: dict[str, int] = field(
        default_factory=lambda: {"http_events": 0, "webhook_deliveries": 0, "webhook_stored": 0}
    )
    plex_clock: dict[str, int] = field(default_factory=dict)  # account -> its last lastRatedAt


def _negated_challenger(home: Home, registry: PolicyRegistry, champion: int) -> int:
    """Register the champion with its actor's output negated (tanh(-x) = -tanh(x): the last
    linear layer's weights and bias flipped) as the challenger: a sabotaged version."""
    import torch as th

    from agent.factory import load_agent

    pv = registry.resolve(champion)
    model = load_agent(str(pv.zip_path), algo=pv.algo)
    with th.no_grad():
        for actor in (model.actor, model.actor_target):
            last = [m for m in actor.mu.modules() if isinstance(m, th.nn.Linear)][-1]
            last.weight.neg_()
            last.bias.neg_()
    path = home.models_dir / "sabotaged.zip"
    model.save(path)
    configure_tracking(home.tracking_uri, home.artifacts_dir, "online-loop")
    return int(registry.register(path, algo=pv.algo, aliases=("challenger",)))


def _events(
    user: str, rec_id: str, slate: list[str], response: Any, event_id: str
) -> list[dict[str, Any]]:
    if response.movie is None:
        return [
            {
                "event_id": event_id,
                "type": "skipped",
                "recommendation_id": rec_id,
                "user": user,
                "movie": slate[0],
                "source": "online-loop",
            }
        ]
    return [
        {
            "event_id": event_id,
            "type": "rated",
            "recommendation_id": rec_id,
            "user": user,
            "movie": response.movie,
            "rating": response.rating,
            "source": "online-loop",
        }
    ]


def plex_rate(
    user: str, items: list[dict[str, Any]], response: Any, rated_at: int
) -> list[dict[str, Any]]:
    """A Plex ``media.rate`` webhook payload for a pick (Plex rates 0-10: twice the stars),
    made at ``rated_at`` (``plex_time``); nothing for an ignored slate, which Plex never hears
    of. The movie is named as a Plex
    library item is (title, year, its own ratingKey), resolved to the graph's key by the
    service; the account's name is the person's key without "plex-"."""
    if response.movie is None:
        return []
    item = next(i for i in items if i["movie"] == response.movie)
    metadata: dict[str, Any] = {
        "librarySectionType": "movie",
        "type": "movie",
        "ratingKey": f"loop-{response.movie}",
        "title": item["title"],
        "year": item["year"],
        "lastRatedAt": rated_at,  # Plex's time of the rating: one occurrence each
    }
    return [
        {
            "event": "media.rate",
            "user": True,
            "owner": False,
            "rating": round(response.rating * 2),
            "Account": {"id": 1, "title": user.removeprefix(PLEX_PREFIX)},
            "Metadata": metadata,
        }
    ]


def plex_time(state: LoopState, user: str) -> int:
    """When a simulated Plex account rates: now, in whole seconds as Plex reports it, but
    always after the account's previous rating. The service names a Plex rating by (account,
    item, lastRatedAt) and drops a repeat of that name as a redelivery, so a person who visits
    twice in a round and rates the same pick twice within one clock second would be stored
    once, or twice when a second boundary fell between: a replay with the same seeds then
    trained on different transitions. A real person's two ratings are never one second apart."""
    rated_at = max(int(time.time()), state.plex_clock.get(user, 0) + 1)
    state.plex_clock[user] = rated_at
    return rated_at


def _autopilot(
    args: LoopArgs,
    home: Home,
    registry: PolicyRegistry,
    client: Any,
    prefix: str,
    ranker: Any,
    store: Any,
) -> Autopilot:
    """serving.autopilot over the loop's service: the learner's candidates become challengers,
    judged after ``min_slates_per_arm`` slates per arm; promoted ones are watched for
    ``watch_slates_per_arm``."""
    from agent.actor import actor_fn
    from agent.factory import load_agent

    def actor_of(version: int) -> Any:
        pv = registry.resolve(str(version))
        return actor_fn(load_agent(str(pv.zip_path), algo=pv.algo))

    config = AutopilotConfig(
        candidate_alias=CANDIDATE_ALIAS if args.challenger == "learner" else None,
        min_slates_per_arm=args.min_slates_per_arm,
        watch_slates_per_arm=args.watch_slates_per_arm,
        temperature=args.temperature,
        seed=args.seed,
        rules=PromotionRules(looks=args.looks),
        interleaved=args.online == "interleave",
        shares=(1.0 - args.challenger_share, args.challenger_share),
    )
    return Autopilot(
        registry,
        client,
        prefix,
        catalogue_size=len(ranker.keys),
        config=config,
        off_policy_parts=OffPolicyParts(ranker, store, actor_of),
        artifacts_dir=home.artifacts_dir,
    )


def _train(
    args: LoopArgs,
    learner: processes.Process,
    client: Any,
    prefix: str,
    served: int,
    deadline_seconds: float = 1800.0,
) -> None:
    """Grant the paced learner its steps for ``served`` slates and wait until it took them
    (none before the ring can hold a few minibatches: the learner would wait for data the
    loop waits to serve)."""
    from agent.online import grant_steps, steps_done

    if served < 4 * args.learner_batch_size:
        return
    budget = int(args.learner_steps_per_interaction * served)
    grant_steps(client, prefix, budget)
    end = time.monotonic() + deadline_seconds
    while (steps_done(client, prefix) or 0) < budget:
        if not learner.alive():
            raise RuntimeError(f"the learner exited:\n{learner.tail()}")
        if time.monotonic() > end:
            raise RuntimeError(f"the learner did not reach step {budget}:\n{learner.tail()}")
        time.sleep(0.02)


def _learner_learning_rate(args: LoopArgs) -> float:
    """The learner's rate: the loop's, else the champion's own (setup trains with AgentConfig)."""
    if args.learner_learning_rate is not None:
        return args.learner_learning_rate
    return AgentConfig().learning_rate


def _sync(
    http: httpx.Client,
    registry: PolicyRegistry,
    holdout: int | None,
    serve: processes.Process,
    deadline_seconds: float = 300.0,
) -> None:
    """Wait until every arm serves the version its alias names now (the service swaps on its
    registry poll), so that which version serves which slate depends on counts only."""
    found = aliases(registry)
    want = {arm: found.get(arm) for arm in ARMS}
    if holdout is not None:
        want[HOLDOUT] = holdout
    end = time.monotonic() + deadline_seconds
    while True:
        arms = http.get("/readyz").json().get("arms", {})
        if all(served_versions(str(arms.get(a) or ""))[-1] == v for a, v in want.items()):
            return
        if not serve.alive() or time.monotonic() > end:
            raise RuntimeError(f"the service did not serve {want} (it serves {arms})")
        time.sleep(0.1)


def _more(args: LoopArgs, state: LoopState, cap: int) -> bool:
    """Serve on until ``interactions``, then, while fewer than ``min_decisions`` decisions were
    made, up to ``cap`` (four times as many)."""
    n = len(state.rows)
    if n < args.interactions:
        return True
    return len(state.decisions) < args.min_decisions and n < cap


def _curve(rows: list[SlateRow], window: int) -> list[dict[str, Any]]:
    """Per window of rounds and arm: slates, mean return per slate, acceptance."""
    out = []
    last = max((r.round for r in rows), default=-1)
    for start in range(0, last + 1, window):
        for arm in (*ARMS, HOLDOUT):
            sel = [r for r in rows if r.arm == arm and start <= r.round < start + window]
            if not sel:
                continue
            out.append(
                {
                    "rounds": [start, start + window - 1],
                    "interactions_end": sum(1 for r in rows if r.round < start + window),
                    "arm": arm,
                    "versions": sorted({r.version for r in sel}),
                    "slates": len(sel),
                    "mean_return": float(np.mean([r.reward for r in sel])),
                    "acceptance": float(np.mean([r.accepted for r in sel])),
                }
            )
    return out


def _plot(curve: list[dict[str, Any]], decisions: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for arm in (*ARMS, HOLDOUT):
        pts = [c for c in curve if c["arm"] == arm]
        if not pts:
            continue
        x = [c["interactions_end"] for c in pts]
        axes[0].plot(x, [c["mean_return"] for c in pts], marker="o", label=arm)
        axes[1].plot(x, [c["acceptance"] for c in pts], marker="o", label=arm)
    for d in decisions:
        for ax in axes:
            ax.axvline(
                d["interactions"],
                color={"promote": "g", "rollback": "r"}.get(d["action"], "grey"),
                linestyle="--",
                linewidth=1,
            )
        axes[0].annotate(
            f"{d['action']} v{d['challenger_version']}",
            (d["interactions"], 0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
        )
    axes[0].set_ylabel("mean return per slate")
    axes[1].set_ylabel("acceptance")
    axes[1].set_xlabel("simulated interactions")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: LoopArgs) -> dict[str, Any]:
    """The whole loop (module doc); returns what loop.json holds."""
    from features.bundle import RankingBundle
    from features.graph.factory import open_store
    from features.ranker import Ranker
    from serving.redis_conn import connect
    from serving.settings import Settings

    out = args.out.resolve()
    home = Home(out / "home")
    if home.root.exists() and any(home.root.iterdir()):
        raise SystemExit(f"{home.root} holds a previous run: choose another --out")
    t0 = time.monotonic()
    spec = HomeSpec(
        args.dataset,
        args.movies,
        args.users,
        champion_steps=args.champion_steps,
        plex_users=round(args.plex_share * args.users),
        seed=args.seed,
    )
    world, champion = build_home(home, spec)
    rng = np.random.default_rng(args.seed)
    population = [str(u) for u in world.users("all")]
    arrivals = _arrivals(args, population, rng)  # refuses a pool it cannot fill: before serving
    registry = PolicyRegistry(home.tracking_uri)
    if args.challenger == "sabotaged":
        _negated_challenger(home, registry, champion)
    elif args.challenger != "learner":
        raise SystemExit(f"--challenger must be learner or sabotaged, not {args.challenger!r}")
    setup_seconds = time.monotonic() - t0
    token = secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    if not 0.0 <= args.holdout_share < 1.0:
        raise SystemExit(f"--holdout-share must be in [0, 1), not {args.holdout_share}")
    if args.online not in ("ab", "interleave"):
        raise SystemExit(f"--online must be ab or interleave, not {args.online!r}")
    if not 0.0 < args.challenger_share < 1.0:
        raise SystemExit(f"--challenger-share must be in (0, 1), not {args.challenger_share}")
    live = 1.0 - args.holdout_share
    arms: list[dict[str, Any]] = [
        {"name": ARMS[0], "policy": ARMS[0], "share": live * (1.0 - args.challenger_share)},
        {"name": ARMS[1], "policy": ARMS[1], "share": live * args.challenger_share},
    ]
    if args.online == "interleave":
        arms[1]["against"] = ARMS[0]
    if args.holdout_share > 0:
        arms.append({"name": HOLDOUT, "policy": str(champion), "share": args.holdout_share})
    ab = {"salt": f"loop-{args.seed}", "arms": arms}
    env = {
        "MARQUEE_AB": json.dumps(ab),
        "MARQUEE_API_TOKEN": token,
        "MARQUEE_PLEX_WEBHOOK_SECRET": webhook_secret,
        "MARQUEE_REGISTRY_POLL_SECONDS": "1",
        "MARQUEE_TEMPERATURE": str(args.temperature),
        "MARQUEE_ACTION_NOISE": str(args.action_noise),
        "MARQUEE_IMPLIED_ACTION_SD": str(args.implied_action_sd),
        "MARQUEE_SAMPLING_SEED": str(args.seed),
        "MARQUEE_RECLOG_USER_SLATES": "100000",
        "MARQUEE_RECLOG_MAX_SLATES": "1000000",
        "MARQUEE_EMBEDDED_REDIS_FSYNC": "everysec",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": home.tracking_uri,
    }
    logs_dir = out / "logs"
    serve = processes.start(
        "serve",
        home.root,
        ["serve", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env,
        logs_dir,
    )
    learner = None
    state = LoopState()
    people = People(world, population)
    settings = Settings(home=home.root)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    handle = None
    store = None
    try:
        processes.wait_ready(serve, base)
        holdout = champion if args.holdout_share > 0 else None
        if args.challenger == "learner":
            learner = processes.start(
                "learn",
                home.root,
                [
                    "learn",
                    "--fresh",
                    "--batch-size",
                    str(args.learner_batch_size),
                    "--gradient-steps",
                    str(args.learner_gradient_steps),
                    "--register-every",
                    str(args.learner_register_every),
                    "--checkpoint-every",
                    str(args.learner_register_every),
                    "--alias",
                    CANDIDATE_ALIAS,
                    "--poll-seconds",
                    "1",
                    "--seed",
                    str(args.seed),
                    "--paced",
                    "--learning-rate",
                    str(_learner_learning_rate(args)),
                    "--rebase" if args.learner_rebase else "--no-rebase",
                ],
                env,
                logs_dir,
            )
        handle = connect(redis_url, home.buffer_dir, timeout=30.0)
        client = handle.client
        store = open_store(home)
        ranker = Ranker(RankingBundle.load(home.world_dir))
        pilot = _autopilot(args, home, registry, client, settings.redis_prefix, ranker, store)
        cap = args.interactions * 4 if args.min_decisions else args.interactions
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60.0) as http:
            _sync(http, registry, holdout, serve)
            round_no = -1
            while _more(args, state, cap):
                round_no += 1
                events: list[dict[str, Any]] = []
                deliveries: list[dict[str, Any]] = []
                left = cap - len(state.rows)
                visitors = arrivals.draw(min(args.users_per_round, left))
                for user in visitors:
                    answer = http.get(f"/v1/users/{user}/recommendations", params={"k": args.k})
                    answer.raise_for_status()
                    body = answer.json()
                    slate = [item["movie"] for item in body["items"]]
                    if not slate:
                        continue
                    response = people.respond(str(user), slate, rng)
                    if str(user).startswith(PLEX_PREFIX):
                        rated_at = plex_time(state, str(user))
                        deliveries += plex_rate(str(user), body["items"], response, rated_at)
                    else:
                        state.events += 1
                        event_id = f"loop-{args.seed}-{state.events}"
                        rec_id = body["recommendation_id"]
                        events += _events(str(user), rec_id, slate, response, event_id)
                    state.rows.append(
                        SlateRow(
                            round_no,
                            str(user),
                            body["arm"],
                            body["policy_version"],
                            response.reward,
                            response.movie is not None,
                            response.rating,
                            body["recommendation_id"],
                            time.time(),
                        )
                    )
                if events:
                    http.post("/v1/feedback", json=events, headers=headers).raise_for_status()
                    state.feedback["http_events"] += len(events)
                for payload in deliveries:  # as Plex posts them: multipart, the secret in the URL
                    answer = http.post(
                        "/v1/plex/webhook",
                        params={"secret": webhook_secret},
                        files={"payload": (None, json.dumps(payload), "application/json")},
                    )
                    answer.raise_for_status()
                    state.feedback["webhook_deliveries"] += 1
                    state.feedback["webhook_stored"] += int(answer.json().get("stored", 0))
                if learner is not None:
                    _train(args, learner, client, settings.redis_prefix, len(state.rows))
                last = not _more(args, state, cap)
                if args.write_every and (round_no + 1) % args.write_every == 0:
                    partial = replace(args, plot=False)
                    _write(partial, out, state, setup_seconds, time.monotonic() - t0, champion)
                if (round_no + 1) % args.decide_every == 0 or last:
                    step = pilot.step(final=last)
                    if step.decision is not None:
                        (state.looks if step.action == "looked" else state.decisions).append(
                            {
                                "round": round_no,
                                "interactions": len(state.rows),
                                "mlflow_run": step.run_id,
                                **step.decision.as_dict(),
                            }
                        )
                    _sync(http, registry, holdout, serve)
                    if step.action in ("installed", "decided"):
                        log.info("round %d: %s: %s", round_no, step.action, step.detail)
    finally:
        if learner is not None:
            learner.stop()
        serve.stop()
        if store is not None:
            store.close()
        if handle is not None:
            handle.close()
    return _write(args, out, state, setup_seconds, time.monotonic() - t0, champion)


def _arrivals(args: LoopArgs, population: list[str], rng: np.random.Generator) -> Arrivals:
    """The visitors' source; a pool that would run out of newcomers before ``interactions``
    (by four sd of the departures) is refused before anything is served."""
    if args.active_people:
        if args.mean_visits < 1.0:
            raise SystemExit(
                f"--mean-visits must be >= 1 with --active-people, not {args.mean_visits}"
            )
        p = 1.0 / args.mean_visits
        need = args.active_people + args.interactions * p + 4 * np.sqrt(args.interactions * p)
        if need > len(population):
            raise SystemExit(
                f"--active-people {args.active_people} with --mean-visits {args.mean_visits:g} "
                f"needs about {int(need)} world users for {args.interactions} interactions, "
                f"the world has {len(population)}: raise --users"
            )
    return Arrivals(
        population, rng, active=args.active_people, mean_visits=args.mean_visits, seed=args.seed
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _fifths(rows: list[SlateRow]) -> dict[str, Any]:
    """Mean return of the live arms (champion and challenger: what promotions act on) and of
    the holdout in the first and the last fifth of the slates, the live arms' rise, their lift
    over the holdout in the last fifth (module doc: the drift both share), and the rise of the
    live arms' ratio to the holdout (a difference in differences: it removes both the drift
    every arm shares and the arms' different users, which differ by ~10-20% at the start)."""
    n = len(rows)
    parts = {"first": rows[: n // 5], "last": rows[n - n // 5 :]}
    out: dict[str, Any] = {}
    for name, part in parts.items():
        out[f"live_{name}"] = _mean([r.reward for r in part if r.arm in LIVE_ARMS])
        out[f"holdout_{name}"] = _mean([r.reward for r in part if r.arm == HOLDOUT])
    out["live_rise"] = (out["live_last"] - out["live_first"]) / abs(out["live_first"])
    out["live_lift_over_holdout_last"] = (out["live_last"] - out["holdout_last"]) / abs(
        out["holdout_last"]
    )
    means = [out[f"{arm}_{p}"] for arm in ("live", "holdout") for p in parts]
    out["live_rise_over_holdout"] = (
        (out["live_last"] / out["holdout_last"]) / (out["live_first"] / out["holdout_first"]) - 1.0
        if all(np.isfinite(m) and m > 0 for m in means)
        else float("nan")
    )
    return out


NOT_REPRODUCIBLE = ("seconds", "setup_seconds")


def comparable(summary: dict[str, Any]) -> str:
    """loop.json without what differs between replays of the same seeds (wall-clock seconds,
    MLflow run ids, the output folder), as JSON text (NaN compares equal to NaN there)."""
    out = {k: v for k, v in summary.items() if k not in NOT_REPRODUCIBLE}
    out["args"] = {k: v for k, v in summary["args"].items() if k != "out"}
    for key in ("decisions", "looks"):
        out[key] = [{k: v for k, v in d.items() if k != "mlflow_run"} for d in summary.get(key, [])]
    return json.dumps(out, sort_keys=True, default=str)


def _write(
    args: LoopArgs, out: Path, state: LoopState, setup_seconds: float, seconds: float, champion: int
) -> dict[str, Any]:
    curve = _curve(state.rows, args.window_rounds)
    per_arm = {
        arm: {
            "slates": sum(1 for r in state.rows if r.arm == arm),
            "mean_return": float(
                np.mean([r.reward for r in state.rows if r.arm == arm] or [np.nan])
            ),
            "acceptance": float(
                np.mean([float(r.accepted) for r in state.rows if r.arm == arm] or [np.nan])
            ),
        }
        for arm in (*ARMS, HOLDOUT)
        if any(r.arm == arm for r in state.rows)
    }
    n = len(state.rows)
    first, last = state.rows[: n // 5], state.rows[-(n // 5) :] if n >= 5 else state.rows
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "champion_version": champion,
        "interactions": n,
        "people": len({r.user for r in state.rows}),  # distinct visitors (arrivals module doc)
        "setup_seconds": round(setup_seconds, 1),
        "seconds": round(seconds, 1),
        "per_arm": per_arm,
        "feedback": state.feedback,
        "served_return_first_fifth": float(np.mean([r.reward for r in first] or [np.nan])),
        "served_return_last_fifth": float(np.mean([r.reward for r in last] or [np.nan])),
        "fifths": _fifths(state.rows),
        "curve": curve,
        "decisions": state.decisions,
        "looks": state.looks,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop.json").write_text(json.dumps(summary, indent=2, default=str))
    with (out / "slates.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(SlateRow.__dataclass_fields__))
        writer.writeheader()
        for row in state.rows:
            writer.writerow(asdict(row))
    if args.plot:
        _plot(curve, state.decisions, out / "online_loop.png")
        write_html(summary, out / "online_loop.png", out / "report.html")
    return summary


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(args: LoopArgs) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(
            f"{summary['interactions']} interactions in {summary['seconds']} s "
            f"(setup {summary['setup_seconds']} s)"
        )
        for arm, figs in summary["per_arm"].items():
            print(
                f"  {arm}: {figs['slates']} slates, mean return {figs['mean_return']:+.4f}, "
                f"acceptance {figs['acceptance']:.3f}"
            )
        for d in summary["decisions"]:
            print(
                f"  after {d['interactions']} interactions: {d['action']} "
                f"v{d['challenger_version']} ({d['stage']}): {d['reason']}"
            )
        print(f"wrote {args.out / 'loop.json'}")
    return summary
