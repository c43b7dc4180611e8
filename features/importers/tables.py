"""Reading delimited data files into string frames and checking their columns, vectorised.

Every importer goes through here so that bad input is reported the same way: the file, the
line (row position + header offset; blank lines count, quoted line breaks do not) and what was
wrong. Values stay strings until a ``Table`` method converts a column and checks it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.importers.errors import ImportFileError

log = logging.getLogger(__name__)

_DELIMITERS = {",": "','", "\t": "tab", ";": "';'", "|": "'|'", "::": "'::'"}
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_INT = r"\s*[+-]?\d+\s*"
_PLACEHOLDER = "\x1f"  # stands in for a multi-character separator so the C parser can be used


def _name(sep: str) -> str:
    return _DELIMITERS.get(sep, repr(sep))


def _decode(path: Path, encoding: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(path, "file not found") from None
    except OSError as exc:
        raise ImportFileError(path, f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(path, f"not valid {encoding} text", line) from None


@dataclass
class Table:
    """One file's rows as strings (NaN for empty fields), with each row's line number."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray  # line number of each row, aligned with ``frame``

    def __len__(self) -> int:
        return len(self.frame)

    def fail(self, row: int, message: str) -> ImportFileError:
        """An error for the row at position ``row``."""
        return ImportFileError(self.path, message, int(self.lines[row]))

    def _first(self, bad: np.ndarray) -> int:
        return int(np.flatnonzero(bad)[0])

    def text(self, col: str, *, required: bool = True) -> pd.Series:
        """A string column; empty fields are an error when ``required``, else ""."""
        series = self.frame[col]
        empty = series.isna().to_numpy()
        if required and empty.any():
            raise self.fail(self._first(empty), f"column {col!r} is empty")
        return series.fillna("").astype(object).str.strip()

    def ints(self, col: str, *, required: bool = True) -> np.ndarray:
        """An integer column as int64 (empty fields give 0 unless ``required``)."""
        series = self.frame[col]
        empty = series.isna().to_numpy()
        if required and empty.any():
            raise self.fail(self._first(empty), f"column {col!r} is empty")
        filled = series.fillna("0")
        try:  # fast path: numpy parses the strings in C
            return filled.to_numpy(dtype=object).astype("int64")
        except (TypeError, ValueError, OverflowError):
            pass
        filled = filled.astype(str)
        ok = filled.str.fullmatch(_INT).to_numpy(dtype=bool)
        if not ok.all():
            i = self._first(~ok)
            raise self.fail(i, f"column {col!r}: {filled.iloc[i]!r} is not an integer")
        big = np.array([not -(2**63) <= int(v) < 2**63 for v in filled], dtype=bool)
        i = self._first(big)
        raise self.fail(i, f"column {col!r}: {filled.iloc[i]!r} is out of the integer range")

    def floats(
        self, col: str, *, low: float | None = None, high: float | None = None
    ) -> np.ndarray:
        """A required number column as float64, each value within [low, high] when given."""
        series = self.frame[col]
        empty = series.isna().to_numpy()
        if empty.any():
            raise self.fail(self._first(empty), f"column {col!r} is empty")
        values = pd.to_numeric(series.astype(str).str.strip(), errors="coerce").to_numpy(
            dtype="float64"
        )
        bad = ~np.isfinite(values)
        if bad.any():
            i = self._first(bad)
            raise self.fail(i, f"column {col!r}: {series.iloc[i]!r} is not a number")
        out = np.zeros(len(values), dtype=bool)
        if low is not None:
            out |= values < low
        if high is not None:
            out |= values > high
        if out.any():
            i = self._first(out)
            raise self.fail(
                i, f"column {col!r}: {series.iloc[i]!r} is outside the range {low:g}..{high:g}"
            )
        return values

    def check_known(self, col: str, values: np.ndarray, known: pd.Index, what: str) -> None:
        """Every value must be in ``known``; else name the first row that points nowhere."""
        found = np.asarray(pd.Index(values).isin(known), dtype=bool)
        if not found.all():
            i = self._first(~found)
            raise self.fail(i, f"column {col!r}: {values[i]} is not a known {what}")

    def check_unique(self, col: str, values: np.ndarray) -> None:
        """No value may appear twice (ids of a master file)."""
        dup = np.asarray(pd.Index(values).duplicated(), dtype=bool)
        if dup.any():
            i = self._first(dup)
            raise self.fail(i, f"column {col!r}: {values[i]} appears twice")


def read_table(
    path: Path,
    columns: Sequence[str],
    *,
    sep: str,
    header: bool,
    encoding: str = "utf-8",
    quoted: bool = True,
    extra_columns: bool = False,
) -> Table:
    """Read a delimited file. With ``header`` the first line must name ``columns`` (extra ones
    allowed only with ``extra_columns``); without, fields are named ``columns`` in order."""
    text = _decode(path, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    first = 2 if header else 1
    if len(sep) > 1:
        text = text.replace(sep, _PLACEHOLDER)
    parse_sep = _PLACEHOLDER if len(sep) > 1 else sep
    if header:
        head = text.split("\n", 1)[0].rstrip("\r")
        names = [h.strip() for h in head.split(parse_sep)]
        _check_header(path, names, columns, sep, extra_columns, head)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=parse_sep,
            header=0 if header else None,
            names=None if header else list(columns),
            dtype=object,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            engine="c",
            index_col=False,
        )
    except pd.errors.ParserError as exc:
        m = _FIELD_COUNT.search(str(exc))
        if m:
            want, line, saw = m.groups()
            raise ImportFileError(
                path, f"expected {want} fields separated by {_name(sep)}, found {saw}", int(line)
            ) from None
        raise ImportFileError(path, f"cannot parse: {exc}") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if header:
        frame.columns = [str(c).strip() for c in frame.columns]
    lines = np.arange(len(frame), dtype="int64") + first
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    if not header and len(columns) > 1 and len(frame) and frame.iloc[0, 1:].isna().all():
        found = str(frame.iloc[0, 0])
        others = [o for o in ("\t", ";", ",", "|", "::") if o != sep and o in found]
        hint = f" (it looks separated by {_name(others[0])})" if others else ""
        raise ImportFileError(
            path,
            f"expected {len(columns)} fields separated by {_name(sep)}, found 1{hint}",
            int(lines[0]),
        )
    log.debug("read %s: %d rows", path, len(frame))
    return Table(path, frame[list(columns)], lines)


def _check_header(
    path: Path,
    names: list[str],
    columns: Sequence[str],
    sep: str,
    extra_columns: bool,
    head: str,
) -> None:
    missing = [c for c in columns if c not in names]
    unknown = [n for n in names if n not in columns]
    if missing:
        hint = ""
        for other in (";", "\t", ",", "|"):
            if other != sep and other in head:
                hint = f" (the header is separated by {_name(other)}, expected {_name(sep)})"
                break
        raise ImportFileError(path, f"missing columns {missing}; found {names}{hint}", 1)
    if unknown and not extra_columns:
        raise ImportFileError(path, f"unknown columns {unknown}; expected {list(columns)}", 1)
