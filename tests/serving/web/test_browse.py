"""Browsing the whole catalogue (GET /users/{user}/browse): beyond the slate, filtered, most
liked first, paged; "hide what I've seen" on by default and off on request; dismissed movies
never shown."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from features.graph.local import LocalGraphStore
from features.graph.schema import EdgeKind, VertexKind
from features.popularity import liked_counts
from serving.web.browse import decade_of
from tests.serving.conftest import AUTH
from tests.serving.web.test_pages import shown

TOTAL = re.compile(r"Movies (\d+)-(\d+) of (\d+)\.")


def total(html: str) -> tuple[int, int, int]:
    found = TOTAL.search(html)
    assert found, "no count line"
    a, b, c = found.groups()
    return int(a), int(b), int(c)


def card_html(page: str, movie: str) -> str:
    start = page.index(f'id="card-{movie}"')
    return page[start : page.index("</article>", start)]


def test_browse_pages_through_the_catalogue_most_liked_first(
    web: TestClient, web_store: LocalGraphStore
) -> None:
    first = web.get("/users/fan/browse")
    assert first.status_code == 200
    assert total(first.text) == (1, 20, 38)  # 40 movies, fan rated two: hidden by default
    page1 = shown(first.text)
    assert len(page1) == 20 and not {"m1", "m5"} & set(page1)
    liked = liked_counts(web_store.edge_frame(EdgeKind.RATED))
    counts = [int(liked.get(m, 0)) for m in page1]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == liked.drop(["m1", "m5"], errors="ignore").max()
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = web.get("/users/fan/browse?page=2")
    assert total(second.text) == (21, 38, 38)
    page2 = shown(second.text)
    assert len(page2) == 18 and not set(page1) & set(page2)
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert "% match" not in first.text  # not ranked for the user: no made-up match


def test_title_search_finds_a_movie_the_recommendations_do_not_show(web: TestClient) -> None:
    recommended = set(shown(web.get("/users/fan").text))
    missing = next(f"m{i}" for i in range(40, 1, -1) if f"m{i}" not in recommended)
    title = f"Movie {missing[1:]}"
    found = web.get("/users/fan/browse", params={"q": title.upper()}).text
    assert missing in shown(found)
    assert all(title.casefold() in f"movie {m[1:]}" for m in shown(found))


def test_genre_and_decade_filter_the_catalogue(web: TestClient, web_store: LocalGraphStore) -> None:
    # the form sends every field, "Any" ones empty; seen=show then seen=hide: box ticked
    html = web.get("/users/fan/browse?genre=Drama&decade=1960&q=&seen=show&seen=hide").text
    got = shown(html)
    expected = []
    rated = {n.key for n in web_store.neighbours(VertexKind.USER, "fan", EdgeKind.RATED, "out")}
    for i in range(1, 41):
        v = web_store.vertex(VertexKind.MOVIE, f"m{i}") or {}
        if v["genres"] == "Drama" and 1960 <= int(v["year"]) < 1970 and f"m{i}" not in rated:  # type: ignore[call-overload]
            expected.append(f"m{i}")
    assert got and sorted(got) == sorted(expected)
    everything = web.get("/users/fan/browse?decade=&genre=&q=").text  # "Any": no 422
    assert total(everything)[2] == 40 - len(rated)


def test_seen_movies_shown_with_their_rating_when_asked(web: TestClient) -> None:
    html = web.get("/users/fan/browse?seen=show&q=Movie 1").text  # the box left unticked
    assert {"m1", "m10"} <= set(shown(html))
    assert "You rated it 5 of 5" in card_html(html, "m1")
    assert "You rated it" not in card_html(html, "m10")
    stars = re.findall(r'class="star( on)?"[^>]*aria-pressed="(\w+)"', card_html(html, "m1"))
    assert stars == [(" on", "false")] * 4 + [(" on", "true")]  # their 5 stars, shown
    assert 'id="b-seen" name="seen" type="checkbox" value="hide" >' in html  # stays unticked


def test_not_interested_is_never_browsed_again(web: TestClient) -> None:
    res = web.post("/users/fan/movies/m3/actions", json={"action": "not_interested"}, headers=AUTH)
    assert res.status_code == 200
    assert "m3" not in shown(web.get("/users/fan/browse?seen=show&q=Movie 3").text)
    assert "m30" in shown(web.get("/users/fan/browse?seen=show&q=Movie 3").text)


def test_recommendations_page_links_to_browse_with_its_filters(web: TestClient) -> None:
    assert 'href="/users/fan/browse"' in web.get("/users/fan").text
    page = web.get("/users/fan?genre=Drama&decade=&q=").text  # "Any decade": no 422
    assert 'href="/users/fan/browse?genre=Drama"' in page


def test_decade_of_form_values() -> None:
    assert decade_of("1990") == 1990 and decade_of("1995") == 1990
    assert decade_of("") is None and decade_of(None) is None and decade_of("abc") is None
    assert decade_of("99999") is None
