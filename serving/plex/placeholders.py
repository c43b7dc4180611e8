"""A "Recommendations" library of placeholders for recommended movies Plex does not hold.

Each placeholder is a folder "<Title> (<Year>) {imdb-tt...}" with a 1 s black video (made once
with ffmpeg, then copied), a Kodi/Plex-style .nfo (title, year, ids, plot, reason), a poster
with a "match %" badge (Pillow) and a marker naming the graph key. Folder names are sanitised
so that no title can escape the library folder. A placeholder is removed when its movie
arrives in Plex or drops out of the recommendations.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from serving.plex.client import PlexError, plex_errors, safe_url
from serving.plex.ids import PlexRef

log = logging.getLogger(__name__)

MARKER = ".marquee.json"
CACHE_DIR = ".marquee-cache"
LIBRARY_NAME = "Recommendations"
POSTER_SIZE = (400, 600)
_UNSAFE = re.compile(r"[^\w \-.,()'&!+]")
_AKA = re.compile(r"\s*\((?:a\.k\.a\.|aka)\s[^)]*\)", re.IGNORECASE)


class PlaceholderError(RuntimeError):
    """A placeholder could not be made; the message says what is missing or wrong."""


@dataclass(frozen=True)
class PlaceholderMovie:
    """What a placeholder shows about one recommended movie."""

    key: str  # graph movie key
    title: str
    year: int = 0
    imdb_id: str = ""
    tmdb_id: int = 0
    plot: str = ""
    reason: str = ""
    score: float = 0.0  # 0..1, shown as "NN% match": a calibrated match (rank percentile)
    audience: str = ""  # whose recommendation this is ("" : shown as "you")


@dataclass
class PlaceholderReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def safe_name(title: str, year: int = 0, imdb_id: str = "", tmdb_id: int = 0) -> str:
    """A folder/file name for a movie: no separators, no leading dots, bounded length."""
    text = _AKA.sub("", unicodedata.normalize("NFKC", title))  # MovieLens' alternate titles
    text = re.sub(r"\s*:\s+", " - ", text).replace(":", "-")  # "Alien: X" -> "Alien - X"
    text = _UNSAFE.sub(" ", text.replace("/", " ").replace("\\", " "))
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"\s+", " ", text).strip(" .-")[:100].strip(" .-")
    if not text:
        text = "Untitled"
    name = f"{text} ({year})" if year else text
    if re.fullmatch(r"tt\d+", imdb_id or ""):
        name += f" {{imdb-{imdb_id}}}"
    elif tmdb_id:
        name += f" {{tmdb-{int(tmdb_id)}}}"
    return name


def ffmpeg_path() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise PlaceholderError(
            "ffmpeg is not installed or not on PATH; placeholders need it "
            "(Debian/Ubuntu: apt-get install ffmpeg)"
        )
    return path


def make_black_video(out: Path, seconds: int = 1) -> Path:
    """A tiny valid MP4: black frames, ``seconds`` long, made by ffmpeg."""
    cmd = [
        ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"color=c=black:s=160x90:r=10:d={seconds}",
        "-c:v", "mpeg4", "-pix_fmt", "yuv420p", "-t", str(seconds), str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 or not out.exists():
        raise PlaceholderError(f"ffmpeg failed making {out.name}: {proc.stderr.strip()[-500:]}")
    return out


def nfo_xml(movie: PlaceholderMovie) -> str:
    """A Kodi/Plex-style movie .nfo."""
    root = ET.Element("movie")
    ET.SubElement(root, "title").text = movie.title
    if movie.year:
        ET.SubElement(root, "year").text = str(movie.year)
    pct = round(movie.score * 100)
    ET.SubElement(
        root, "plot"
    ).text = f"{movie.plot}\n\nRecommended ({pct}% match): {movie.reason}".strip()
    ET.SubElement(root, "outline").text = movie.reason
    ET.SubElement(root, "tagline").text = f"{pct}% match"
    if movie.imdb_id:
        ET.SubElement(root, "uniqueid", type="imdb", default="true").text = movie.imdb_id
    if movie.tmdb_id:
        ET.SubElement(root, "uniqueid", type="tmdb").text = str(movie.tmdb_id)
    ET.SubElement(root, "genre").text = "Recommended"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(
        root, encoding="unicode"
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def make_poster(movie: PlaceholderMovie, out: Path) -> Path:
    """A poster: title and year on a dark background, and a "NN% match" badge."""
    w, h = POSTER_SIZE
    img = Image.new("RGB", (w, h), (20, 24, 38))
    draw = ImageDraw.Draw(img)
    for y in range(h):  # a gentle vertical gradient
        shade = int(20 + 40 * y / h)
        draw.line([(0, y), (w, y)], fill=(shade, shade // 2 + 12, 60 + shade))
    title_font, small = _font(34), _font(22)
    lines = textwrap.wrap(movie.title, width=18)[:5] or ["Untitled"]
    y = 170
    for line in lines:
        draw.text((w // 2, y), line, font=title_font, fill="white", anchor="mm")
        y += 44
    if movie.year:
        draw.text((w // 2, y + 10), str(movie.year), font=small, fill=(200, 200, 210), anchor="mm")
    pct = round(movie.score * 100)
    cx, cy, r = w - 80, h - 80, 60
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(229, 160, 13), outline="white", width=4)
    draw.text((cx, cy - 10), f"{pct}%", font=_font(30), fill="black", anchor="mm")
    draw.text((cx, cy + 20), "match", font=_font(18), fill="black", anchor="mm")
    draw.text((24, h - 40), f"For {movie.audience or 'you'}", font=small, fill="white")
    img.save(out, "JPEG", quality=88)
    return out


class PlaceholderLibrary:
    """The placeholder folder on disk (which Plex scans as a movie library)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.changed = False  # whether the last write() changed any file

    def _template(self) -> Path:
        cache = self.root / CACHE_DIR
        cache.mkdir(parents=True, exist_ok=True)
        template = cache / "black-1s.mp4"
        if not template.exists():
            tmp = cache / "black-1s.tmp.mp4"
            make_black_video(tmp)
            tmp.replace(template)
        return template

    def _dir_for(self, movie: PlaceholderMovie) -> Path:
        name = safe_name(movie.title, movie.year, movie.imdb_id, movie.tmdb_id)
        path = (self.root / name).resolve()
        if path.parent != self.root.resolve():
            raise PlaceholderError(f"placeholder name {name!r} would leave {self.root}")
        return path

    def existing(self) -> dict[str, Path]:
        """Graph key -> placeholder folder, for every placeholder on disk."""
        out: dict[str, Path] = {}
        if not self.root.is_dir():
            return out
        for marker in self.root.glob(f"*/{MARKER}"):
            try:
                out[str(json.loads(marker.read_text(encoding="utf-8"))["key"])] = marker.parent
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable placeholder marker %s", marker)
        return out

    def write(self, movie: PlaceholderMovie) -> Path:
        """Create or refresh one placeholder; returns its folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".plexignore"
        if not ignore.exists():
            ignore.write_text(f"{CACHE_DIR}/*\n", encoding="utf-8")
        folder = self._dir_for(movie)
        old = self.existing().get(movie.key)
        if old is not None and old != folder:
            shutil.rmtree(old)
        folder.mkdir(exist_ok=True)
        stem = folder.name
        video = folder / f"{stem}.mp4"
        if not video.exists():
            shutil.copyfile(self._template(), video)
        changed = _write_if_changed(folder / f"{stem}.nfo", nfo_xml(movie))
        marker = json.dumps(asdict(movie), indent=2)
        changed |= _write_if_changed(folder / MARKER, marker)
        poster = folder / "poster.jpg"
        if changed or not poster.exists():
            make_poster(movie, poster)
        self.changed = changed
        return folder

    def remove(self, keys: Iterable[str]) -> list[str]:
        """Delete the placeholders of these graph keys; returns the keys removed."""
        have = self.existing()
        removed = []
        for key in keys:
            if key in have:
                shutil.rmtree(have[key])
                removed.append(key)
        return removed

    def remove_arrived(self, ref: PlexRef) -> list[str]:
        """Delete placeholders of a movie that has arrived in Plex (matched by IMDb/TMDB id)."""
        gone = []
        for key, folder in self.existing().items():
            meta: dict[str, Any] = json.loads((folder / MARKER).read_text(encoding="utf-8"))
            if (ref.imdb_id and meta.get("imdb_id") == ref.imdb_id) or (
                ref.tmdb_id and meta.get("tmdb_id") == ref.tmdb_id
            ):
                gone.append(key)
        return self.remove(gone)

    def sync(
        self, movies: Sequence[PlaceholderMovie], in_plex: Iterable[str] = ()
    ) -> PlaceholderReport:
        """Make the folder hold exactly ``movies`` minus those already in Plex (by graph key)."""
        present = set(in_plex)
        wanted = {m.key: m for m in movies if m.key not in present}
        report = PlaceholderReport()
        report.removed = self.remove([k for k in self.existing() if k not in wanted])
        for movie in wanted.values():
            self.write(movie)
            if self.changed:  # unchanged placeholders are left alone (no needless rescans)
                report.written.append(movie.key)
        log.info(
            "placeholders: %d written, %d removed in %s",
            len(report.written),
            len(report.removed),
            self.root,
        )
        return report


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it; True when it was written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    path.write_text(text, encoding="utf-8")
    return True


def ensure_plex_library(server: Any, root: Path, name: str = LIBRARY_NAME) -> Any:
    """The Plex movie library over ``root``: created when missing, then asked to scan."""
    url = safe_url(server._baseurl)
    with plex_errors(url, f"preparing library {name!r}"):
        sections = [s for s in server.library.sections() if s.title == name]
        if not sections:
            log.info("creating Plex library %r over %s", name, root)
            server.library.add(
                name=name,
                type="movie",
                agent="com.plexapp.agents.none",
                scanner="Plex Video Files Scanner",
                location=str(root),
                language="xn",
            )
            sections = [s for s in server.library.sections() if s.title == name]
        if not sections:
            raise PlexError(f"Plex at {url} did not create library {name!r}")
        section = sections[0]
        if section.type != "movie":
            raise PlexError(f"Plex library {name!r} exists but holds {section.type}, not movies")
    with plex_errors(url, f"asking Plex to scan library {name!r}"):
        section.update()
    return section


def placeholder_text(movie: PlaceholderMovie) -> tuple[str, str]:
    """The plot and tagline Plex shows for a placeholder: what Marquee knows of the movie, and
    why it is recommended to its person (no one else's reasons)."""
    pct = round(movie.score * 100)
    who = movie.audience or "you"
    plot = movie.plot.strip() or (f"{movie.title} ({movie.year})" if movie.year else movie.title)
    why = f"Recommended for {who}: {movie.reason}" if movie.reason else f"Recommended for {who}."
    return f"{plot}\n\n{why}\nNot in this server yet.", f"{pct}% match for {who}"


def annotate_placeholders(
    section: Any, placeholders: Mapping[Path, tuple[str, PlaceholderMovie]]
) -> int:
    """Set plot, tagline and the person's label of each scanned placeholder through the API
    (only where they differ). Returns how many were edited; ones not scanned yet are done by
    the next push."""
    from serving.plex.plextv import user_label

    url = safe_url(section._server._baseurl)
    edited = 0
    with plex_errors(url, f"describing placeholders in {section.title!r}"):
        for item in section.all():
            found = [placeholders.get(Path(f).resolve().parent) for f in item.locations]
            hit = next((f for f in found if f is not None), None)
            if hit is None:
                continue
            user, movie = hit
            plot, tagline = placeholder_text(movie)
            label = user_label(user)
            if (
                item.summary == plot
                and item.tagline == tagline
                and label in {t.tag for t in item.labels}
            ):
                continue
            item.batchEdits().editSummary(plot).editTagline(tagline).addLabel(label).saveEdits()
            edited += 1
    return edited
