"""The web pages are left out of the OpenAPI document, so schemathesis never sees them: here
hypothesis sends each page route arbitrary path segments and query values (empty, huge, unicode,
control characters, numbers, unknown parameters) against the whole app with a real Redis. No
answer may be a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import create_app, popularity_factory
from serving.routes import admin, browse, pages
from tests.serving.conftest import build_store, make_settings
from tests.serving.redis_server import redis_client

EXAMPLES = 40  # per route

PAGE_ROUTES = [
    r
    for module in (pages, browse, admin)
    for r in module.router.routes
    if isinstance(r, APIRoute) and "GET" in r.methods
]

values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["", "0", "-1", "1e400", "nan", "true", "1990s", "1990", "Sci-Fi", "fan"]),
)


# no registry watcher: a module-long app must not touch MLflow's global tracking URI
POPULARITY = {"arms": [{"name": "default", "policy": "popularity", "share": 1.0}]}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("pages-fuzz")
    with redis_client("server", tmp) as (client, prefix):
        app = create_app(
            make_settings(tmp, prefix, ab=POPULARITY),
            store=build_store(),
            redis_client=client,
            recommender_factory=popularity_factory(),
        )
        with TestClient(app, follow_redirects=False) as http:
            yield http


def test_every_page_route_is_covered() -> None:
    paths = {r.path for r in PAGE_ROUTES}
    assert {"/users/{user}", "/movies/{movie}", "/posters/{movie}", "/admin"} <= paths


@pytest.mark.parametrize("route", PAGE_ROUTES, ids=lambda r: r.path)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
@given(data=st.data())
def test_no_page_answers_5xx(web: TestClient, route: APIRoute, data: Any) -> None:
    path = route.path
    for param in route.dependant.path_params:
        value = data.draw(values.filter(bool), label=param.name)
        path = path.replace("{" + param.name + "}", quote(value, safe=""))
    query: list[tuple[str, str]] = []
    for param in route.dependant.query_params:
        if data.draw(st.booleans(), label=f"send {param.alias}"):
            query += [(param.alias, v) for v in data.draw(st.lists(values, max_size=3))]
    query += data.draw(st.lists(st.tuples(st.text(max_size=10), values), max_size=2))
    url = path + ("?" + urlencode(query) if query else "")
    response = web.get(url)
    assert response.status_code < 500, f"{url}: {response.status_code} {response.text[:300]}"
