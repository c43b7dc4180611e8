"""Small MovieLens-format folders written per test, and where the real data lives."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = Path(__file__).resolve().parent / "data"

# ml-latest-small format, 4 movies (one without genres), 3 users, 6 ratings, 4 tag rows.
LATEST: dict[str, str] = {
    "movies.csv": (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Babylon 5,(no genres listed)\n"
        "4,Heat (1995),Action|Crime|Thriller\n"
    ),
    "links.csv": (
        "movieId,imdbId,tmdbId\n1,0114709,862\n2,0112346,9087\n3,0105946,\n4,0113277,949\n"
    ),
    "ratings.csv": (
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,2,0.5,964981247\n"
        "2,1,5.0,964982224\n"
        "2,4,3.5,964983815\n"
        "7,3,2.0,964982931\n"
        "7,4,4.5,964982400\n"
    ),
    "tags.csv": (
        "userId,movieId,tag,timestamp\n"
        "2,1,Pixar,1445714994\n"
        "7,1,pixar,1445714996\n"
        "7,4,heist,1445714992\n"
        "2,4,Al Pacino,1445715051\n"
    ),
}


def write_folder(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``files`` (name -> text or bytes) into ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            (root / name).write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def latest_dir(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "ml-tiny", LATEST)


def shared_data() -> Path | None:
    """The project's shared real data (../shared/data beside the repo), if present."""
    for cand in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (cand / "hetrec2011-movielens-2k" / "movies.dat").is_file():
            return cand
    return None
