"""The placeholder "Recommendations" library: real ffmpeg output, .nfo, poster, safe names."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image
from plexapi.server import PlexServer

from serving.plex.client import PlexError
from serving.plex.ids import PlexRef
from serving.plex.placeholders import (
    MARKER,
    PlaceholderError,
    PlaceholderLibrary,
    PlaceholderMovie,
    ensure_plex_library,
    make_black_video,
    safe_name,
)
from tests.serving.plex.plex_test_server import PlexTestServer

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (CI installs them via apt)",
)

TOY = PlaceholderMovie(
    key="1",
    title="Toy Story",
    year=1995,
    imdb_id="tt0114709",
    tmdb_id=862,
    plot="Toys come alive.",
    reason="You rated Up 5/5; same studio.",
    score=0.934,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ffmpeg run shared by the tests that need a video."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    return make_black_video(tmp_path_factory.mktemp("video") / "black.mp4")


def library(tmp_path: Path, template: Path) -> PlaceholderLibrary:
    lib = PlaceholderLibrary(tmp_path / "recs")
    cache = lib.root / ".marquee-cache"
    cache.mkdir(parents=True)
    shutil.copyfile(template, cache / "black-1s.mp4")
    return lib


@needs_ffmpeg
def test_ffmpeg_makes_a_valid_one_second_video(template: Path) -> None:
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type,width,height",
            "-of",
            "json",
            str(template),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(probe.stdout)
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.15)
    assert info["streams"][0]["codec_type"] == "video"
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (160, 90)


@needs_ffmpeg
def test_placeholder_folder_holds_video_nfo_poster_and_marker(
    tmp_path: Path, template: Path
) -> None:
    lib = library(tmp_path, template)
    folder = lib.write(TOY)
    assert folder.name == "Toy Story (1995) {imdb-tt0114709}"
    assert folder.parent == lib.root.resolve()
    video = folder / f"{folder.name}.mp4"
    assert video.read_bytes() == template.read_bytes()

    nfo = ET.parse(folder / f"{folder.name}.nfo").getroot()
    assert (
        nfo.tag == "movie"
        and nfo.findtext("title") == "Toy Story"
        and nfo.findtext("year") == "1995"
    )
    ids = {u.get("type"): u.text for u in nfo.findall("uniqueid")}
    assert ids == {"imdb": "tt0114709", "tmdb": "862"}
    assert "93% match" in (nfo.findtext("plot") or "") and nfo.findtext("outline") == TOY.reason

    with Image.open(folder / "poster.jpg") as poster:
        assert poster.format == "JPEG" and poster.size == (400, 600)
        badge = poster.convert("RGB").getpixel((400 - 80 - 45, 600 - 80))  # inside the badge
    assert isinstance(badge, tuple)
    assert badge[0] > 180 and badge[2] < 80  # amber, not the dark background
    assert json.loads((folder / MARKER).read_text())["key"] == "1"
    assert (lib.root / ".plexignore").read_text() == ".marquee-cache/*\n"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("../../etc/passwd", "etc passwd (1999)"),
        ("..", "Untitled (1999)"),
        ("/absolute/path", "absolute path (1999)"),
        ("a\\..\\..\\b", "a . . b (1999)"),
        ("Se7en: <Director's> Cut?*|\"", "Se7en - Director's Cut (1999)"),
        ("Seven (a.k.a. Se7en)", "Seven (1999)"),
        ("11:14", "11-14 (1999)"),
        ("\x00nul\nline", "nul line (1999)"),
        (".hidden", "hidden (1999)"),
        ("x" * 300, "x" * 100 + " (1999)"),
    ],
)
def test_safe_names(title: str, expected: str) -> None:
    assert safe_name(title, 1999) == expected


@pytest.mark.parametrize("title", ["../../etc/passwd", "../..", "/etc/cron.d/x", "..\\..\\x"])
def test_hostile_titles_stay_inside_the_library(tmp_path: Path, title: str) -> None:
    lib = PlaceholderLibrary(tmp_path / "recs")
    folder = lib._dir_for(PlaceholderMovie(key="9", title=title))
    assert folder.parent == lib.root.resolve()
    assert not folder.name.startswith(".")


@needs_ffmpeg
def test_hostile_title_written_inside(tmp_path: Path, template: Path) -> None:
    lib = library(tmp_path, template)
    folder = lib.write(PlaceholderMovie(key="evil", title="../../etc/passwd", score=0.5))
    assert folder.parent == lib.root.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs"]


@needs_ffmpeg
def test_sync_adds_refreshes_and_removes(tmp_path: Path, template: Path) -> None:
    lib = library(tmp_path, template)
    heat = PlaceholderMovie(key="6", title="Heat", year=1995, tmdb_id=949, score=0.7)
    report = lib.sync([TOY, heat])
    assert sorted(report.written) == ["1", "6"] and report.removed == []
    # Toy Story arrived in Plex; Heat is no longer recommended; a new one is
    up = PlaceholderMovie(key="9", title="Up", year=2009, score=0.8)
    report = lib.sync([TOY, up], in_plex={"1"})
    assert sorted(report.removed) == ["1", "6"] and report.written == ["9"]
    assert set(lib.existing()) == {"9"}
    assert sorted(p.name for p in lib.root.iterdir() if not p.name.startswith(".")) == ["Up (2009)"]


@needs_ffmpeg
def test_remove_arrived_by_external_id(tmp_path: Path, template: Path) -> None:
    lib = library(tmp_path, template)
    lib.write(TOY)
    assert lib.remove_arrived(PlexRef("555", imdb_id="tt9999999")) == []
    assert lib.remove_arrived(PlexRef("555", tmdb_id=862)) == ["1"]
    assert lib.existing() == {}


def test_missing_ffmpeg_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlaceholderError, match=r"ffmpeg is not installed.*apt-get install ffmpeg"):
        PlaceholderLibrary(tmp_path / "recs").write(TOY)


def test_ensure_plex_library_creates_once_and_scans(
    plex: PlexTestServer, server: PlexServer, tmp_path: Path
) -> None:
    root = tmp_path / "recs"
    root.mkdir()
    section = ensure_plex_library(server, root)
    assert section.title == "Recommendations" and section.type == "movie"
    created = [s for s in plex.sections.values() if s["title"] == "Recommendations"]
    assert created == [{"title": "Recommendations", "type": "movie", "location": str(root)}]
    assert plex.refreshed == [section.key]
    ensure_plex_library(server, root)
    assert len([s for s in plex.sections.values() if s["title"] == "Recommendations"]) == 1
    assert plex.refreshed == [section.key, section.key]


def test_ensure_plex_library_needs_a_folder_plex_can_see(
    server: PlexServer, tmp_path: Path
) -> None:
    with pytest.raises(PlexError, match="does not exist"):
        ensure_plex_library(server, tmp_path / "not-there")


def test_a_failed_library_scan_names_the_operation_and_the_answer(
    plex: PlexTestServer, server: PlexServer, tmp_path: Path
) -> None:
    root = tmp_path / "recs"
    root.mkdir()
    section = ensure_plex_library(server, root)
    plex.fail_path = f"/library/sections/{section.key}/refresh"
    with pytest.raises(PlexError) as info:
        ensure_plex_library(server, root)
    assert str(info.value) == (
        f"Plex at {plex.url} rejected a request while asking Plex to scan library "
        "'Recommendations': (500) internal_server_error"
    )
