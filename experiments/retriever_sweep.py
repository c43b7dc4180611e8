"""How the blend retriever's settings were chosen: each setting served with a zero action (what
``marquee serve`` ranks before the agent's correction) on protocol (a) and on the cold-start
split, beside EASE and most-popular on the same split.

The settings were chosen on these same splits (no separate validation split), so a second
cold split (``--cold-seeds 0 1``: other users held out) is the check that a choice was not
just fitted to one set of users.

    .venv/bin/python -m experiments.retriever_sweep [--data PATH] [--json]
        [--variants "w_als=0" "ease_half_life=5" ...] [--cold-seeds 0 1]
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tyro

from agent.evaluation.offline import (
    TimeSplit,
    cold_split,
    evaluate_full_ranking,
    popularity_scorer,
    time_split,
)
from env.world import BUNDLED_MOVIELENS, SimulationWorld
from experiments.offline_ranking import Args as OfflineArgs
from experiments.offline_ranking import ease_scorer, part_world, served_scorer
from features.blend import BlendRetriever
from features.graph.schema import EdgeKind
from features.importers.movielens import load_movielens
from features.retrieval import EaseRetriever

logger = logging.getLogger(__name__)

BLEND_FIELDS = ("w_als", "w_popularity", "popularity_n0")


@dataclass
class Args:
    """Blend retriever settings, served with a zero action."""

    data: Path = BUNDLED_MOVIELENS
    variants: list[str] = field(
        default_factory=lambda: [
            "default",
            "w_als=0",
            "w_popularity=0",
            "ease_half_life=5",
            "w_als=0.5",
        ]
    )
    """Each a comma-separated list of BlendRetriever fields (w_als, w_popularity,
    popularity_n0) or ease_half_life / ease_l2, or "default"."""
    cold_seeds: list[int] = field(default_factory=lambda: [0, 1])
    seed: int = 0
    k: int = 10
    json: bool = False


def _variant(world: SimulationWorld, spec: str) -> BlendRetriever:
    """The world's blend with the settings in ``spec`` changed (EASE refitted if asked)."""
    base = world.retriever
    if not isinstance(base, BlendRetriever):
        raise ValueError("the world has no blend retriever")
    if spec == "default":
        return base
    settings = {k: float(v) for k, v in (item.split("=") for item in spec.split(","))}
    ease = base.ease
    if "ease_half_life" in settings or "ease_l2" in settings:
        ease = EaseRetriever.fit(
            world.train_ratings,
            world.catalog.n_movies,
            l2=settings.pop("ease_l2", 500.0),
            half_life=settings.pop("ease_half_life", base.ease.half_life or 0.0) or None,
        )
    unknown = set(settings) - set(BLEND_FIELDS)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)} in {spec!r}")
    return dataclasses.replace(base, ease=ease, **settings)  # type: ignore[arg-type]


def _rows(args: Args, split: TimeSplit) -> list[dict[str, object]]:
    world = part_world(OfflineArgs(data=args.data, seed=args.seed), split)
    rows: list[dict[str, object]] = []
    for name, scorer in (
        ("most-popular", popularity_scorer(split)),
        ("ease", ease_scorer(split, 500.0)),
    ):
        m = evaluate_full_ranking(scorer, split, args.k)
        rows.append({"model": name, "precision": m["precision"], "ndcg": m["ndcg"]})
    for spec in args.variants:
        w = dataclasses.replace(world, retriever=_variant(world, spec))
        m = evaluate_full_ranking(served_scorer(split, w, None), split, args.k)
        rows.append(
            {
                "model": f"blend {spec}",
                "precision": m["precision"],
                "ndcg": m["ndcg"],
                f"distinct_top{args.k}": int(m["distinct_topk"]),
                f"max_top{args.k}_share": m["max_topk_share"],
            }
        )
        logger.info("%s: %s", spec, rows[-1])
    return rows


def main(args: Args) -> dict[str, object]:
    logging.basicConfig(level=logging.WARNING)
    logger.info("config %s", asdict(args))
    rated = load_movielens(args.data).deduplicated().edges[EdgeKind.RATED]
    out: dict[str, object] = {
        "config": {k: str(v) for k, v in asdict(args).items()},
        "a": _rows(args, time_split(rated)),
    }
    for s in args.cold_seeds:
        out[f"cold seed {s}"] = _rows(args, cold_split(rated, 10, seed=s))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for block, rows in out.items():
            if block == "config":
                continue
            print(block)
            for r in rows:  # type: ignore[attr-defined]
                print(f"  {r['model']:32s} P@{args.k} {r['precision']:.4f} NDCG {r['ndcg']:.4f}")
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
