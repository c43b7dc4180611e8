"""/admin over TestClient: A/B arms and shares with what each serves, live per-arm counts (the
same as GET /v1/ab), policy versions and aliases from a real MLflow registry (SQLite, in the
home), and the champion's learning curve as an SVG chart with its data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.graph.local import LocalGraphStore
from serving.ab import ABConfig, Arm
from serving.app import create_app
from serving.deps import get_reclog
from serving.reclog import RecLog
from serving.settings import Settings
from serving.web.admin import line_chart
from tests.serving.conftest import TOKEN, make_settings
from tests.serving.redis_server import free_port

CURVE = [(500, 1.0), (1000, 1.8), (1500, 2.5), (2000, 2.2)]
ARMS = ABConfig(
    arms=(
        Arm(name="steady", policy="popularity", share=0.25),
        Arm(name="learner", policy="champion", share=0.75),
    )
)


def register_versions(settings: Settings) -> None:
    """Two versions of marquee-policy in the home's MLflow registry: 1 (champion, with an
    evaluation curve) and 2 (challenger)."""
    home = settings.home_dir()
    home.tracking_dir.mkdir(parents=True, exist_ok=True)
    uri = home.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("train", artifact_location=home.artifacts_dir.as_uri())
    client.create_registered_model(settings.model_name)
    for version, points, alias in ((1, CURVE, "champion"), (2, [(100, 0.5)], "challenger")):
        run = client.create_run(exp).info.run_id
        for step, value in points:
            client.log_metric(run, "eval/mean_return", value, step=step)
        client.log_metric(run, "eval/best_return", max(v for _, v in points))
        client.log_metric(run, "eval/final_return", points[-1][1])
        client.set_terminated(run)
        source = home.artifacts_dir / run / "policy"
        source.mkdir(parents=True)
        mv = client.create_model_version(settings.model_name, source.as_uri(), run_id=run)
        assert int(mv.version) == version
        client.set_registered_model_alias(settings.model_name, alias, str(version))


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose registry is built once for the module (MLflow's SQLite set-up takes
    seconds); each test still gets its own Redis, so counts start at zero."""
    home = tmp_path_factory.mktemp("admin-home")
    register_versions(Settings(home=home))
    return home


@pytest.fixture
def admin(
    tmp_path: Path,
    web_store: LocalGraphStore,
    rcp: tuple[redis.Redis, str],
    registry_home: Path,
) -> Iterator[TestClient]:
    client, prefix = rcp
    settings = make_settings(tmp_path, prefix, ab=ARMS, home=registry_home)
    with TestClient(create_app(settings, store=web_store, redis_client=client)) as api:
        yield api


def cells(html: str, table_id: str) -> dict[str, dict[str, str]]:
    table = html[html.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    out: dict[str, dict[str, str]] = {}
    for arm, body in re.findall(r'<tr data-arm="([^"]+)">(.*?)</tr>', table, re.S):
        out[arm] = dict(re.findall(r'data-field="(\w+)">([^<]*)<', body))
    return out


def test_admin_shows_versions_aliases_arms_and_the_champion_curve(admin: TestClient) -> None:
    page = admin.get("/admin")
    assert page.status_code == 200
    html = page.text
    # arms and shares, and what each serves now (version 1 has no policy zip: popularity)
    assert re.search(r"<th scope=\"row\">steady</th><td>popularity</td><td class=\"num\">25%", html)
    assert re.search(r"<th scope=\"row\">learner</th><td>champion</td><td class=\"num\">75%", html)
    assert "version 1 failed to load" in html
    # versions, newest first, with aliases and their runs' returns
    rows = re.findall(
        r'<th scope="row" class="num">(\d+)</th><td>([^<]*)</td><td>[^<]*</td>'
        r'\s*<td class="num">([^<]*)</td>',
        html,
    )
    assert rows == [("2", "challenger", "0.500"), ("1", "champion", "2.500")]
    # the champion's curve: one SVG line through the four logged points, data alongside
    assert "Learning curve of version 1 (champion)" in html
    (points,) = re.findall(r'<polyline class="curve" points="([^"]+)"', html)
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    assert len(xy) == 4 and [x for x, _ in xy] == sorted(x for x, _ in xy)
    best = min(range(4), key=lambda i: xy[i][1])  # SVG y grows downwards
    assert best == 2  # 2.5 at step 1500 is the highest point
    assert 'role="img"' in html and "from 1 at step 500 to 2.2 at step 2000" in html
    assert '<td class="num">1500</td><td class="num">2.5</td>' in html
    assert TOKEN not in html


def test_live_counts_follow_served_slates_like_get_v1_ab(admin: TestClient) -> None:
    before = cells(admin.get("/admin").text, "ab-live")
    assert before["steady"]["served_slates"] == "0" and before["learner"]["served_slates"] == "0"
    for user in ("fan", "u1", "u2", "u3", "u4", "u5"):
        assert admin.get(f"/users/{user}").status_code == 200
    after = cells(admin.get("/admin").text, "ab-live")
    api = {a["name"]: a for a in admin.get("/v1/ab").json()["arms"]}
    for arm in ("steady", "learner"):
        assert after[arm]["served_slates"] == str(api[arm]["served_slates"])
        assert after[arm]["users"] == str(api[arm]["users"])
    assert sum(int(after[a]["served_slates"]) for a in after) == 6


def test_without_a_registry_the_page_says_nothing_is_trained(web: TestClient) -> None:
    html = web.get("/admin").text
    assert "No policy is registered yet" in html
    assert "no policy registry yet (nothing trained): serving popularity" in html
    assert cells(html, "ab-live")["default"]["served_slates"] == "0"


def test_redis_down_still_renders_the_page(admin: TestClient, rcp: tuple[redis.Redis, str]) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    admin.app.dependency_overrides[get_reclog] = lambda: RecLog(dead, rcp[1], 60)  # type: ignore[attr-defined]
    html = admin.get("/admin").text
    assert "Redis is not answering: no live counts." in html
    assert "Learning curve of version 1" in html


def test_line_chart_geometry() -> None:
    chart = line_chart("t", "m", [(0, 0.0), (10, 5.0), (20, 10.0)], width=200, height=100)
    xy = [tuple(map(float, p.split(","))) for p in chart.polyline.split()]
    assert xy[0] == (chart.left, chart.top + chart.plot_h)  # lowest, first: bottom left
    assert xy[-1] == (chart.left + chart.plot_w, chart.top)  # highest, last: top right
    assert [t.label for t in chart.x_ticks] == ["0", "5", "10", "15", "20"]
    flat = line_chart("t", "m", [(5, 1.0), (5, 1.0)])  # one step, one value: still drawable
    assert all("nan" not in p for p in flat.polyline.split())
