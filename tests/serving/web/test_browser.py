"""The pages in a real headless browser: Debian's chromium driven by Playwright.

Skipped only where /usr/bin/chromium is absent (CI installs it). Screenshots are saved under
test-output/screenshots/ (kept by CI with the test output).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from serving.app import create_app
from tests.serving.conftest import TOKEN, make_settings
from tests.serving.plex.plex_test_server import sample_server
from tests.serving.plex.plextv_test_server import PlexTvTestServer, WatchlistItem
from tests.serving.web.conftest import LiveServer

CHROMIUM = os.environ.get("MARQUEE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("MARQUEE_SCREENSHOTS", "test-output/screenshots"))

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"
)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def live(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> Iterator[LiveServer]:
    client, prefix = rcp
    app = create_app(make_settings(tmp_path, prefix), store=web_store, redis_client=client)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def plex_live(
    tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> Iterator[tuple[LiveServer, PlexTvTestServer]]:
    """The app with Plex configured: the Plex and plex.tv stand-ins, Discover knowing every
    graph movie (Movie i, year as in the graph)."""
    client, prefix = rcp
    with sample_server() as plex, PlexTvTestServer(plex) as tv:
        tv.catalogue = [
            WatchlistItem(f"pt{i}", f"Movie {i}", 1950 + (i * 7) % 70) for i in range(1, 41)
        ]
        settings = make_settings(
            tmp_path, prefix, plex_url=plex.url, plex_token=plex.token, plex_tv_url=tv.url
        )
        app = create_app(settings, store=web_store, redis_client=client)
        with LiveServer(app) as server:
            yield server, tv


@pytest.fixture
def page() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        yield pg
        browser.close()


def shot(pg: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def cards(pg: object) -> object:
    return pg.get_by_role("region", name="Recommendations").get_by_role("article")  # type: ignore[attr-defined]


def test_user_page_cards_have_loaded_posters_and_reasons(page: object, live: LiveServer) -> None:
    pg = page
    pg.goto(f"{live.url}/")  # type: ignore[attr-defined]
    pg.get_by_label("User", exact=True).fill("fan")  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Show recommendations").click()  # type: ignore[attr-defined]
    pg.wait_for_url(re.compile(r"/users/fan$"))  # type: ignore[attr-defined]
    items = cards(pg)
    n = items.count()  # type: ignore[attr-defined]
    assert n >= 10
    for i in range(n):
        card = items.nth(i)  # type: ignore[attr-defined]
        img = card.get_by_role("img")
        img.scroll_into_view_if_needed()
        pg.wait_for_function("(el) => el.complete", arg=img.element_handle())  # type: ignore[attr-defined]
        assert img.evaluate("(el) => el.naturalWidth") > 0, f"card {i}: poster did not load"
        assert img.get_attribute("alt").startswith("Poster of ")
        assert card.locator(".reason").inner_text().strip()
    shot(pg, "user-page")


def test_not_interested_replaces_the_card_and_sticks(
    page: object, live: LiveServer, web_store: LocalGraphStore
) -> None:
    pg = page
    pg.goto(f"{live.url}/users/fan")  # type: ignore[attr-defined]
    first = cards(pg).first  # type: ignore[attr-defined]
    movie = first.get_attribute("data-movie")
    title = first.get_by_role("heading").inner_text()
    before = cards(pg).count()  # type: ignore[attr-defined]
    first.get_by_role("button", name=f"Not interested in {title}").click()
    pg.get_by_label("API token (needed to hide, rate or request)").fill(TOKEN)  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Save token").click()  # type: ignore[attr-defined]
    pg.locator(f"#card-{movie}").wait_for(state="detached")  # type: ignore[attr-defined]
    assert cards(pg).count() == before  # type: ignore[attr-defined]
    shot(pg, "after-not-interested")
    dismissed = web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")
    assert [d.key for d in dismissed] == [movie]
    pg.goto(f"{live.url}/users/fan")  # type: ignore[attr-defined]
    assert pg.locator(f"#card-{movie}").count() == 0  # type: ignore[attr-defined]
    # the token is kept for the session: a second dismissal asks nothing
    second = cards(pg).first  # type: ignore[attr-defined]
    other = second.get_attribute("data-movie")
    second.get_by_role("button", name=re.compile("^Not interested")).click()
    pg.locator(f"#card-{other}").wait_for(state="detached")  # type: ignore[attr-defined]


def test_rate_with_the_keyboard_alone(
    page: object, live: LiveServer, web_store: LocalGraphStore
) -> None:
    pg = page
    pg.goto(f"{live.url}/users/fan")  # type: ignore[attr-defined]
    pg.evaluate(f"sessionStorage.setItem('marquee-token', {TOKEN!r})")  # type: ignore[attr-defined]
    first = cards(pg).first  # type: ignore[attr-defined]
    movie = first.get_attribute("data-movie")
    title = first.get_by_role("heading").inner_text()
    target = f"Rate {title} 4 of 5 stars"
    for _ in range(80):
        pg.keyboard.press("Tab")  # type: ignore[attr-defined]
        name = pg.evaluate("document.activeElement.getAttribute('aria-label')")  # type: ignore[attr-defined]
        if name == target:
            break
    else:
        pytest.fail(f"never reached {target!r} with Tab")
    pg.keyboard.press("Enter")  # type: ignore[attr-defined]
    status = first.get_by_role("status")
    status.filter(has_text="Rated 4 of 5 stars.").wait_for()
    assert first.get_by_role("button", name=target).get_attribute("aria-pressed") == "true"
    shot(pg, "rated-with-keyboard")
    rated = web_store.neighbours(VertexKind.USER, "fan", EdgeKind.RATED, "out")
    assert movie in {r.key for r in rated}


def test_failed_action_shows_an_error_on_its_card(
    page: object, live: LiveServer, web_store: LocalGraphStore
) -> None:
    pg = page
    pg.goto(f"{live.url}/users/fan")  # type: ignore[attr-defined]
    pg.evaluate("sessionStorage.setItem('marquee-token', 'wrong-token')")  # type: ignore[attr-defined]
    first = cards(pg).first  # type: ignore[attr-defined]
    movie = first.get_attribute("data-movie")
    first.get_by_role("button", name=re.compile("^Not interested")).click()
    first.get_by_role("status").filter(has_text="Could not save").wait_for()
    assert pg.locator(f"#card-{movie}").count() == 1  # type: ignore[attr-defined]
    assert not web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")
    shot(pg, "failed-action")


def test_movie_page(page: object, live: LiveServer) -> None:
    pg = page
    pg.goto(f"{live.url}/movies/m9?user=fan")  # type: ignore[attr-defined]
    assert pg.get_by_role("heading", name="More like this").is_visible()  # type: ignore[attr-defined]
    assert pg.get_by_role("heading", name="Why fan might like it").is_visible()  # type: ignore[attr-defined]
    shot(pg, "movie-page")


def test_add_to_plex_watchlist_marks_the_card(
    page: object, plex_live: tuple[LiveServer, PlexTvTestServer]
) -> None:
    live, tv = plex_live
    pg = page
    pg.goto(f"{live.url}/users/plex-alice")  # type: ignore[attr-defined]
    pg.evaluate(f"sessionStorage.setItem('marquee-token', {TOKEN!r})")  # type: ignore[attr-defined]
    first = cards(pg).first  # type: ignore[attr-defined]
    title = first.get_by_role("heading").inner_text()
    button = first.get_by_role("button", name=f"Add to Plex watchlist: {title}")
    button.click()
    first.get_by_role("status").filter(has_text="Added to your Plex watchlist.").wait_for()
    assert first.locator(".badge", has_text="On your watchlist").is_visible()
    assert (
        first.get_by_role("button", name=f"On your Plex watchlist: {title}").get_attribute(
            "aria-disabled"
        )
        == "true"
    )
    assert [w.title for w in tv.owner.watchlist] == [title]
    shot(pg, "added-to-watchlist")


def test_browse_with_filters_and_seen_shown(
    page: object, live: LiveServer, web_store: LocalGraphStore
) -> None:
    pg = page
    pg.goto(f"{live.url}/users/fan")  # type: ignore[attr-defined]
    pg.get_by_role("link", name="Browse all movies").click()  # type: ignore[attr-defined]
    pg.wait_for_url(re.compile(r"/users/fan/browse$"))  # type: ignore[attr-defined]
    pg.get_by_label("Title").fill("Movie 1")  # type: ignore[attr-defined]
    hide = pg.get_by_label("Hide what I've seen")  # type: ignore[attr-defined]
    assert hide.is_checked()
    hide.uncheck()
    pg.get_by_role("button", name="Browse").click()  # type: ignore[attr-defined]
    pg.wait_for_url(re.compile(r"q=Movie\+1"))  # type: ignore[attr-defined]
    grid = pg.get_by_role("region", name="Movies")  # type: ignore[attr-defined]
    rated = grid.get_by_role("article", name="Movie 1", exact=True)
    assert rated.locator(".badge", has_text="You rated it 5 of 5").is_visible()
    assert not pg.get_by_label("Hide what I've seen").is_checked()  # type: ignore[attr-defined]
    shot(pg, "browse")
    pg.evaluate(f"sessionStorage.setItem('marquee-token', {TOKEN!r})")  # type: ignore[attr-defined]
    other = grid.get_by_role("article", name="Movie 12", exact=True)
    other.get_by_role("button", name="Not interested in Movie 12").click()
    other.wait_for(state="detached")
    dismissed = web_store.neighbours(VertexKind.USER, "fan", EdgeKind.NOT_INTERESTED, "out")
    assert [d.key for d in dismissed] == ["m12"]


def test_admin_chart_and_live_counts(
    page: object, tmp_path: Path, web_store: LocalGraphStore, rcp: tuple[redis.Redis, str]
) -> None:
    """The champion's curve is an image with a name; the live counts refresh from GET /v1/ab
    without a reload."""
    from tests.serving.web.test_admin import ARMS, register_versions

    client, prefix = rcp
    settings = make_settings(tmp_path, prefix, ab=ARMS)
    register_versions(settings)
    app = create_app(settings, store=web_store, redis_client=client)
    with LiveServer(app) as live:
        pg = page
        pg.goto(f"{live.url}/admin")  # type: ignore[attr-defined]
        chart = pg.get_by_role("img", name=re.compile(r"^Evaluation return"))  # type: ignore[attr-defined]
        assert chart.is_visible()
        assert pg.get_by_role("heading", name="Learning curve of version 1 (champion)").is_visible()  # type: ignore[attr-defined]
        served = pg.locator("#ab-live td[data-field=served_slates]")  # type: ignore[attr-defined]
        assert served.all_inner_texts() == ["0", "0"]
        for user in ("fan", "u1", "u2"):
            httpx.get(f"{live.url}/users/{user}", timeout=30).raise_for_status()
        pg.wait_for_function(  # type: ignore[attr-defined]
            "() => [...document.querySelectorAll('#ab-live td[data-field=served_slates]')]"
            ".reduce((n, td) => n + Number(td.textContent), 0) === 3",
            timeout=15_000,
        )
        shot(pg, "admin")
