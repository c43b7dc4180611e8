"""`plex sync`, `plex push` and `plex poll` end to end: CLI -> plexapi -> Plex stand-in -> graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind
from marquee.home import Home
from serving.plex.cli import plex_app
from serving.plex.state import load_state, state_path
from tests.serving.plex.plex_test_server import FakeHistory, PlexTestServer


@pytest.fixture
def env(plex: PlexTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.delenv("MARQUEE_ARANGO_URL", raising=False)
    monkeypatch.setenv("PLEX_URL", plex.url)
    monkeypatch.setenv("PLEX_TOKEN", plex.token)
    return Home(tmp_path / "home")


def test_sync_then_push_then_poll(plex: PlexTestServer, env: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    synced = runner.invoke(plex_app, ["sync"], obj=env)
    assert synced.exit_code == 0, synced.output
    assert "3 movies (3 new to the graph), 3 watched, 1 rated" in synced.output
    store = LocalGraphStore.open(env.graph_dir)
    assert len(store.edge_frame(EdgeKind.WATCHED)) == 3

    recs = tmp_path / "recs.json"
    recs.write_text(json.dumps({"bob": [{"movie": "plex-103", "score": 0.8, "reason": "r"}]}))
    pushed = runner.invoke(plex_app, ["push", "--from", str(recs), "--mode", "playlist"], obj=env)
    assert pushed.exit_code == 0, pushed.output
    assert "Recommended for bob: 1 movies, 0 not in Plex" in pushed.output
    assert [(p.title, p.items) for p in plex.playlists.values()] == [("Recommended for bob", [103])]

    plex.history.append(FakeHistory(2, 103, 1_700_000_000))
    polled = runner.invoke(plex_app, ["poll", "--once", "--print"], obj=env)
    assert polled.exit_code == 0, polled.output
    assert '"movie": "plex-103"' in polled.output and '"user": "plex-bob"' in polled.output
    assert load_state(state_path(env)).poll_viewed_at == 1_700_000_000


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_push_with_placeholders(plex: PlexTestServer, env: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(plex_app, ["sync"], obj=env).exit_code == 0
    recs = tmp_path / "recs.json"
    recs.write_text(
        json.dumps(
            {
                "alice": [
                    {"movie": "imdb-tt0114709", "score": 0.9, "reason": "in Plex"},
                    {"movie": "tt-unknown", "score": 0.7, "reason": "not in Plex"},
                ]
            }
        )
    )
    folder = tmp_path / "placeholders"
    result = runner.invoke(
        plex_app, ["push", "--from", str(recs), "--placeholders", str(folder)], obj=env
    )
    assert result.exit_code == 0, result.output
    assert "placeholders: 1 written, 0 removed" in result.output
    mine = folder / "alice"  # one folder per person
    assert [p.name for p in mine.iterdir() if not p.name.startswith(".")] == ["tt-unknown"]
    assert any(s["title"] == "Recommendations" for s in plex.sections.values())


@pytest.mark.parametrize(
    ("args", "setup", "message"),
    [
        (["push", "--from", "missing.json"], None, "missing.json: no such file"),
        (
            ["push", "--from", "recs.json", "--mode", "shelf"],
            "{}",
            "--mode must be 'collection' or 'playlist'",
        ),
        (["push", "--from", "recs.json"], "{}", "run `marquee plex sync` first"),
    ],
)
def test_push_errors(
    env: Home,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    setup: str | None,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if setup is not None:
        (tmp_path / "recs.json").write_text(setup)
    result = CliRunner().invoke(plex_app, args, obj=env)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


BOB = "Recommended for bob"


@pytest.mark.parametrize(
    ("status", "body", "answer"),
    [
        (
            500,
            b"<html>Internal error</html>",
            f"rejected a request while creating collection '{BOB}': (500) internal_server_error",
        ),
        (
            200,
            b"<html>not xml",
            f"answered with something that is not XML while creating collection '{BOB}'",
        ),
        (200, b"", f"gave an empty answer while creating collection '{BOB}'"),
        (
            200,
            b'<MediaContainer size="0"/>',
            f"gave an empty answer while creating collection '{BOB}'",
        ),
    ],
    ids=["500", "not XML", "empty body", "no item"],
)
def test_a_bad_answer_to_one_write_is_one_line_and_the_others_go_through(
    plex: PlexTestServer, env: Home, tmp_path: Path, status: int, body: bytes, answer: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(plex_app, ["sync"], obj=env).exit_code == 0
    recs = tmp_path / "recs.json"
    one = [{"movie": "plex-103", "score": 0.8, "reason": "r"}]
    recs.write_text(json.dumps({user: one for user in ("alice", "bob", "carol")}))
    plex.write_answers[BOB] = (status, body)
    result = runner.invoke(plex_app, ["push", "--from", str(recs)], obj=env)
    assert result.exit_code == 1
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert f"{BOB}: not refreshed: Plex at {plex.url} {answer}" in lines
    assert lines[-1] == "error: 1 of 3 Plex lists not refreshed (bob)"
    titles = sorted(c.title for c in plex.collections.values())
    assert titles == ["Recommended for alice", "Recommended for carol"]


def test_a_refused_playlist_is_one_line_and_the_others_go_through(
    plex: PlexTestServer, env: Home, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(plex_app, ["sync"], obj=env).exit_code == 0
    recs = tmp_path / "recs.json"
    one = [{"movie": "plex-103", "score": 0.8, "reason": "r"}]
    recs.write_text(json.dumps({user: one for user in ("alice", "bob")}))
    plex.write_answers[BOB] = (500, b"<html>Internal error</html>")
    args = ["push", "--from", str(recs), "--mode", "playlist"]
    result = runner.invoke(plex_app, args, obj=env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert (
        f"{BOB}: not refreshed: Plex at {plex.url} rejected a request while creating playlist "
        f"'{BOB}': (500) internal_server_error"
    ) in lines
    assert lines[-1] == "error: 1 of 2 Plex lists not refreshed (bob)"
    assert [p.title for p in plex.playlists.values()] == ["Recommended for alice"]


def test_a_refused_update_of_an_existing_list_names_the_update_and_keeps_the_list(
    plex: PlexTestServer, env: Home, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(plex_app, ["sync"], obj=env).exit_code == 0
    recs = tmp_path / "recs.json"
    first = [{"movie": "plex-103", "score": 0.8, "reason": "r"}]
    recs.write_text(json.dumps({user: first for user in ("alice", "bob")}))
    assert runner.invoke(plex_app, ["push", "--from", str(recs)], obj=env).exit_code == 0
    bob = next(c for c in plex.collections.values() if c.title == BOB)
    before = list(bob.items)
    plex.fail_path = f"/library/collections/{bob.key}/items"
    other = load_state(state_path(env)).movie_keys["101"]
    second = [{"movie": other, "score": 0.9, "reason": "r"}]
    recs.write_text(json.dumps({"alice": second, "bob": second}))
    result = runner.invoke(plex_app, ["push", "--from", str(recs)], obj=env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert (
        f"{BOB}: not refreshed: Plex at {plex.url} rejected a request while updating the movies "
        f"of collection '{BOB}': (500) internal_server_error"
    ) in lines
    assert lines[-1] == "error: 1 of 2 Plex lists not refreshed (bob)"
    assert bob.items == before  # the refused list is left as it was, not half-written
    alice = next(c for c in plex.collections.values() if c.title == "Recommended for alice")
    assert alice.items == [101]
