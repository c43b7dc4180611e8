"""The error every importer raises for bad input: it names the file and, where known, the line."""

from __future__ import annotations

from pathlib import Path

from features.graph.batch import GraphDataError


class ImportFileError(GraphDataError):
    """A data file that cannot be imported. ``str(err)`` reads ``<file> line <n>: <what>``."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{self.path} line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")
