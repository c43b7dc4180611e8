"""An experiment's TOML file: what to run (kind), shared settings, a grid, seeds.

    name = "hops"
    kind = "simulate"            # or "train"
    seeds = [0, 1]
    [base]                       # settings every trial gets
    policy = "mf-greedy"
    users = 30
    [grid]                       # every combination of these lists is one config
    candidate_hops = [1, 2]
    [[configs]]                  # and/or named configs, each merged over base
    name = "popular"
    policy = "most-popular"

Each config runs once per seed; a trial is (config, seed).
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("simulate", "train")


class ExperimentConfigError(ValueError):
    """The TOML file is not a valid experiment (the message names the file and the problem)."""


@dataclass(frozen=True)
class Trial:
    """One config at one seed."""

    config: str
    settings: dict[str, Any]
    seed: int

    @property
    def key(self) -> str:
        return f"{self.config}/seed={self.seed}"


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    name: str
    kind: str
    seeds: list[int]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def trials(self) -> list[Trial]:
        return [
            Trial(name, dict(settings), seed)
            for name, settings in self.configs.items()
            for seed in self.seeds
        ]


def _grid_name(point: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in point.items())


def parse_experiment(text: str, source: str = "<string>") -> Experiment:
    """Parse and check an experiment; errors name ``source`` and what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentConfigError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(doc) - {"name", "kind", "seeds", "base", "grid", "configs"}
    if unknown:
        raise ExperimentConfigError(f"{source}: unknown keys {sorted(unknown)}")
    kind = doc.get("kind", "simulate")
    if kind not in KINDS:
        raise ExperimentConfigError(f"{source}: kind must be one of {KINDS}, not {kind!r}")
    seeds = doc.get("seeds", [0, 1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ExperimentConfigError(f"{source}: seeds must be a non-empty list of integers")
    base = doc.get("base", {})
    grid = doc.get("grid", {})
    for table, value in (("base", base), ("grid", grid)):
        if not isinstance(value, dict):
            raise ExperimentConfigError(f"{source}: [{table}] must be a table")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ExperimentConfigError(f"{source}: grid.{key} must be a non-empty list")
    configs: dict[str, dict[str, Any]] = {}
    named = doc.get("configs", [])
    if not isinstance(named, list):
        raise ExperimentConfigError(f"{source}: [[configs]] must be an array of tables")
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    for i, entry in enumerate(named or [{}]):
        if not isinstance(entry, dict):
            raise ExperimentConfigError(f"{source}: configs[{i}] must be a table")
        entry = dict(entry)
        label = str(entry.pop("name", "" if not named else f"config{i}"))
        for point in points:
            name = "/".join(p for p in (label, _grid_name(point)) if p) or "default"
            if name in configs:
                raise ExperimentConfigError(f"{source}: two configs are named {name!r}")
            configs[name] = {**base, **entry, **point}
    return Experiment(
        name=str(doc.get("name", Path(source).stem)), kind=kind, seeds=seeds, configs=configs
    )


def load_experiment(path: Path) -> Experiment:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ExperimentConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_experiment(text, str(path))
