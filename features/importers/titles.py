"""Movie titles as people write them: "Terminator, The (1984)" -> "The Terminator", 1984.

Every importer passes its titles through here, so a title reads the same whatever the source.
Decoration that real files carry (HTML entities, UTF-8 read as Windows-1252, stray quotes and
spaces) is repaired and counted in the table's repairs.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd

from features.importers.tables import Table

_TITLE_YEAR = r"^(?P<title>.*?)\s*\(\s*(?P<year>\d{4})\s*(?:[–-]\s*\d{0,4}\s*)?\)\s*$"

# MovieLens files "The Terminator" as "Terminator, The" (and "Cité des enfants perdus, La").
_TRAILING_ARTICLE = re.compile(
    r"^(?P<base>.+?), (?P<article>The|A|An|Les|Le|La|L'|Il|Das|Der|Die|El|Los|Las|Un|Une)"
    r"(?P<rest>(?: \(.*\))?)$"
)
_MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf\u0152-\u0178\u2013-\u203a\u20ac\u2122]")


def _article_first(match: re.Match[str]) -> str:
    article = match["article"]
    joiner = "" if article.endswith("'") else " "
    return f"{article}{joiner}{match['base']}{match['rest']}"


def split_title(titles: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Titles "Terminator, The (1984)" -> ("The Terminator", 1984): the year comes off, a
    trailing article moves to the front (as people, and Plex, write titles); a title without a
    year keeps year 0."""
    titles = titles.astype(str).str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    clean = titles.where(~has_year, parts["title"]).str.replace(
        _TRAILING_ARTICLE, _article_first, regex=True
    )
    years = parts["year"].fillna("0").astype("int64").to_numpy()
    return clean, years


def _unmojibake(text: str) -> str:
    """UTF-8 bytes that were decoded as Windows-1252 ("CitÃ©") decoded again ("Cité")."""
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def repaired_titles(table: Table, col: str, *, required: bool = True) -> pd.Series:
    """The column's titles with decoration repaired and counted (no year split)."""
    raw = table.text(col, required=required)
    text = raw.copy()
    mojibake = np.zeros(len(text), dtype=bool)
    for i in np.flatnonzero(text.str.contains(_MOJIBAKE).to_numpy(dtype=bool)):
        fixed = _unmojibake(text.iloc[i])
        if fixed != text.iloc[i]:
            text.iloc[i] = fixed
            mojibake[i] = True
    table.repair(
        col,
        mojibake,
        "UTF-8 read as Windows-1252 (mojibake), re-decoded",
        "{value} looks mis-decoded",
    )
    entity = text.str.contains(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);").to_numpy(dtype=bool)
    if entity.any():
        text[entity] = text[entity].map(html.unescape)
    table.repair(col, entity, "HTML entities decoded", "{value} holds HTML entities")
    tidy = text.str.replace(r"\s+", " ", regex=True).str.strip()
    quoted = tidy.str.fullmatch(r"""(["']).+\1""").to_numpy(dtype=bool)
    tidy = tidy.where(~quoted, tidy.str[1:-1].str.strip())
    spaced = (tidy != text).to_numpy() & ~quoted
    table.repair(col, spaced, "stray spaces removed", "{value} has stray spaces")
    table.repair(col, quoted, "surrounding quotes removed", "{value} is wrapped in quotes")
    return tidy


def table_titles(table: Table, col: str, *, required: bool = True) -> tuple[pd.Series, np.ndarray]:
    """``split_title`` of a column after ``repaired_titles``."""
    return split_title(repaired_titles(table, col, required=required))
