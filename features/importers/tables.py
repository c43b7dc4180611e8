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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.importers.errors import ImportFileError
from features.importers.repairs import Repairs

log = logging.getLogger(__name__)

_DELIMITERS = {",": "','", "\t": "tab", ";": "';'", "|": "'|'", "::": "'::'"}
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_INT = r"\s*[+-]?\d+\s*"
_PLACEHOLDER = "\x1f"  # stands in for a multi-character separator so the C parser can be used


def _name(sep: str) -> str:
    return _DELIMITERS.get(sep, repr(sep))


def _decode(path: Path, encoding: str, repairs: Repairs) -> str:
    """The file's text. Lines that are not valid ``encoding`` (a stray Latin-1 "é" in a UTF-8
    file) are read as Windows-1252 and counted as repairs."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(path, "file not found") from None
    except OSError as exc:
        raise ImportFileError(path, f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        pass
    out, bad = [], []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            out.append(line.decode(encoding))
        except UnicodeDecodeError:
            bad.append(n)
            out.append(line.decode("cp1252", errors="replace"))
    repairs.add(
        f"{path.name}: not valid {encoding} text, read as Windows-1252",
        path,
        bad,
        f"not valid {encoding} text",
    )
    return "\n".join(out)


@dataclass
class Table:
    """One file's rows as strings (NaN for empty fields), with each row's line number."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray  # line number of each row, aligned with ``frame``
    repairs: Repairs = field(default_factory=Repairs)

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

    def repair(self, col: str, bad: np.ndarray, what: str, error: str) -> None:
        """Count the rows ``bad`` (a mask) as repaired: "column 'col': what". ``error`` is the
        strict-mode message for the first; ``{value}`` in it becomes that row's value."""
        rows = np.flatnonzero(bad)
        if len(rows):
            value = self.frame[col].iloc[int(rows[0])]
            self.repairs.add(
                f"{self.path.name} column {col!r}: {what}",
                self.path,
                [int(n) for n in self.lines[rows[:3]]],
                f"column {col!r}: " + error.format(value=repr(value)),
                total=len(rows),
            )

    def ints(self, col: str, *, required: bool = True, prefix: str = "") -> np.ndarray:
        """An integer column as int64. A required column must hold integers everywhere. In an
        optional one empty fields give 0, "862.0" and ``prefix``+digits ("tt0114709") are read
        as the integer, and anything else becomes 0 (unknown); each such repair is counted."""
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
        if not required:
            return self._tolerant_ints(col, filled, ok, prefix)
        if not ok.all():
            i = self._first(~ok)
            raise self.fail(i, f"column {col!r}: {filled.iloc[i]!r} is not an integer")
        big = np.array([not -(2**63) <= int(v) < 2**63 for v in filled], dtype=bool)
        i = self._first(big)
        raise self.fail(i, f"column {col!r}: {filled.iloc[i]!r} is out of the integer range")

    def _tolerant_ints(
        self, col: str, filled: pd.Series, ok: np.ndarray, prefix: str
    ) -> np.ndarray:
        text = filled.str.strip()
        out = np.zeros(len(text), dtype="int64")
        decimal = ~ok & text.str.fullmatch(r"[+-]?\d+\.0*").to_numpy(dtype=bool)
        prefixed = np.zeros(len(text), dtype=bool)
        if prefix:
            prefixed = ~ok & text.str.fullmatch(re.escape(prefix) + r"\d+").to_numpy(dtype=bool)
        digits = text.where(~prefixed, text.str[len(prefix) :]).str.split(".").str[0]
        usable = ok | decimal | prefixed
        fits = np.zeros(len(text), dtype=bool)
        for i in np.flatnonzero(usable):
            value = int(digits.iloc[i])
            if -(2**63) <= value < 2**63:
                out[i] = value
                fits[i] = True
        self.repair(
            col,
            decimal & fits,
            "written with decimals, read as an integer",
            "{value} is not an integer",
        )
        self.repair(col, prefixed & fits, f"{prefix!r} prefix removed", "{value} is not an integer")
        self.repair(col, ~fits, "not an integer, left unknown", "{value} is not an integer")
        return out

    def years(self, col: str, *, low: int = 1870, high: int = 2100) -> np.ndarray:
        """An optional year column: as ``ints(required=False)``, and years outside
        [low, high] ("0000", "9999") become 0 (unknown), counted."""
        years = self.ints(col, required=False)
        odd = (years != 0) & ((years < low) | (years > high))
        self.repair(
            col,
            odd,
            f"not a year in {low}..{high}, left unknown",
            "{value} is not a plausible year",
        )
        return np.where(odd, 0, years)

    def timestamps(self, col: str) -> np.ndarray:
        """An optional timestamp column as epoch seconds (int64). Numbers are seconds (decimals
        dropped; values above 1e11 are milliseconds); ISO dates ("2015-03-01 12:00:00") are
        converted; anything else becomes 0 (unknown). Conversions are counted."""
        text = self.frame[col].fillna("").astype(str).str.strip()
        empty = (text == "").to_numpy()
        numbers = pd.to_numeric(text.where(~empty, "0"), errors="coerce").to_numpy("float64")
        numeric = np.isfinite(numbers) & (np.abs(numbers) < 2**62)
        millis = numeric & (numbers > 1e11)
        out = np.where(numeric, numbers, 0.0)
        out = np.where(millis, out / 1000.0, out).astype("int64")
        dates = ~numeric & ~empty
        if dates.any():
            parsed = pd.to_datetime(text[dates], errors="coerce", utc=True, format="ISO8601")
            good = parsed.notna().to_numpy()
            seconds = np.zeros(int(dates.sum()), dtype="int64")
            epoch = pd.Timestamp(0, tz="UTC")
            seconds[good] = ((parsed[good] - epoch) // pd.Timedelta(seconds=1)).to_numpy("int64")
            out[dates] = seconds
            dated = np.zeros(len(text), dtype=bool)
            dated[np.flatnonzero(dates)[good]] = True
            self.repair(
                col,
                dated,
                "a date, converted to epoch seconds",
                "{value} is not a number of seconds",
            )
            self.repair(
                col, dates & ~dated, "not a timestamp, left unknown", "{value} is not an integer"
            )
        self.repair(
            col, millis, "milliseconds, converted to seconds", "{value} is not a number of seconds"
        )
        return out

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
    repairs: Repairs | None = None,
) -> Table:
    """Read a delimited file. With ``header`` the first line must name ``columns`` (extra ones
    allowed only with ``extra_columns``); without, fields are named ``columns`` in order.
    Repairs (here: lines in a wrong encoding; later: values) are counted in ``repairs``."""
    repairs = repairs if repairs is not None else Repairs()
    text = _decode(path, encoding, repairs)
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
    return Table(path, frame[list(columns)], lines, repairs)


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
