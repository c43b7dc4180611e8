"""Repairs of bad optional values: counted per kind with sample file:line locations.

Real data sets carry "unknown" years, "tt"-prefixed IMDb ids, ISO dates where epoch seconds
belong and stray Latin-1 bytes in UTF-8 files. An importer repairs such a value in an optional
column (or leaves it unknown) and records it here, so the import goes on and the summary says
what was changed where. With ``strict`` every repair is an error instead, naming file and line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from features.importers.errors import ImportFileError

log = logging.getLogger(__name__)

SAMPLES = 3  # locations kept per kind of repair


@dataclass
class RepairKind:
    """One kind of repair: how often it was made and the first few places."""

    count: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass
class Repairs:
    """The repairs one import made, by kind ("column 'year': not an integer, left unknown")."""

    strict: bool = False
    kinds: dict[str, RepairKind] = field(default_factory=dict)

    def add(self, kind: str, path: Path, lines: list[int], error: str, total: int = 0) -> None:
        """Record ``total`` (default ``len(lines)``) repairs of ``kind``; ``lines`` holds at
        least the first few locations. ``error`` is what strict mode raises at the first."""
        if not lines:
            return
        if self.strict:
            raise ImportFileError(path, f"{error} (strict: not repaired)", lines[0])
        entry = self.kinds.setdefault(kind, RepairKind())
        entry.count += total or len(lines)
        room = SAMPLES - len(entry.samples)
        entry.samples.extend(f"{path.name}:{n}" for n in lines[:room])

    @property
    def total(self) -> int:
        return sum(k.count for k in self.kinds.values())

    def lines(self) -> list[str]:
        """One line per kind: what, how many, where (up to three file:line samples)."""
        out = []
        for kind, entry in sorted(self.kinds.items()):
            where = ", ".join(entry.samples)
            more = ", ..." if entry.count > len(entry.samples) else ""
            out.append(f"{kind}: {entry.count:,} ({where}{more})")
        return out

    def log_summary(self, what: str) -> None:
        if self.kinds:
            log.warning("%s: %d values repaired: %s", what, self.total, "; ".join(self.lines()))
