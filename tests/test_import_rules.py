"""The layers point one way (docs/DESIGN.md): every import statement of every module, at the
top, inside a function or under TYPE_CHECKING, is read with ``ast`` and held against the rules.

    features -> env / agent -> serving; experiments on top; nothing imports experiments.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("features", "env", "agent", "serving", "experiments", "marquee")

# package -> top-level modules it must not import
FORBIDDEN: dict[str, frozenset[str]] = {
    "features": frozenset(
        {"torch", "stable_baselines3", "gymnasium", "mlflow", "fastapi", "experiments"}
    ),
    "env": frozenset({"serving", "agent", "redis", "mlflow", "fastapi", "experiments"}),
    "agent": frozenset({"serving", "experiments"}),
    "serving": frozenset({"env", "experiments"}),
    "marquee": frozenset({"experiments"}),
    "experiments": frozenset(),
}


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, top-level module name) of each import in ``source``, relative ones resolved
    against ``module`` (the importing module's dotted name)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module or ""]).strip(".")
            else:
                name = node.module or ""
            if name:
                found.append((node.lineno, name.split(".")[0]))
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((package, path))
    return out


def test_every_package_is_read() -> None:
    counts = {p: sum(1 for q, _ in _modules() if q == p) for p in PACKAGES}
    assert all(n > 0 for n in counts.values()), counts


@pytest.mark.parametrize("package", PACKAGES)
def test_package_keeps_its_import_rules(package: str) -> None:
    forbidden = FORBIDDEN[package]
    broken = []
    for pkg, path in _modules():
        if pkg != package:
            continue
        rel = path.relative_to(ROOT)
        module = ".".join(rel.with_suffix("").parts)
        for line, name in imported_modules(path.read_text(), module):
            if name in forbidden:
                broken.append(f"{rel}:{line} imports {name}")
    assert not broken, f"{package} must not import {sorted(forbidden)}:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import torch.nn as nn", "features.x", ["torch"]),
        ("from env.world import SimulationWorld", "serving.x", ["env"]),
        ("def f():\n    from mlflow import log_metric\n", "features.x", ["mlflow"]),
        ("from . import reward", "env.world", ["env"]),
        ("from ..graph import store", "features.graph.local", ["features"]),
    ],
)
def test_the_reader_sees_every_kind_of_import(
    source: str, module: str, expected: list[str]
) -> None:
    assert [name for _, name in imported_modules(source, module)] == expected
