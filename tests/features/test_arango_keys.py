"""ArangoDB document keys: which are accepted, and how edge keys are derived."""

from __future__ import annotations

import re
from typing import Any

import pytest

from features.graph import arango_keys as aql
from features.graph.batch import GraphDataError
from features.graph.schema import slug


@pytest.mark.parametrize(
    "key",
    ["1", "tom_hanks", "Tom-Hanks.Jr", "a:b", "x@y(z)+,=;$!*'%", "k" * 254, "_"],
)
def test_valid_keys(key: str) -> None:
    assert aql.key_problem(key) is None
    assert aql.check_key(key, "movies vertex row 0") == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "movies vertex row 3: key is empty"),
        ("a/b", "movies vertex row 3: key 'a/b' has characters ArangoDB does not allow: '/'"),
        ("a b", "movies vertex row 3: key 'a b' has characters ArangoDB does not allow: ' '"),
        ("café", "movies vertex row 3: key 'café' has characters ArangoDB does not allow: 'é'"),
        ("a#b?c", "has characters ArangoDB does not allow: '#?'"),
        ("k" * 255, "movies vertex row 3: key is longer than 254 bytes"),
        (7, "movies vertex row 3: key must be a string, got int"),
    ],
)
def test_invalid_keys(key: Any, message: str) -> None:
    with pytest.raises(GraphDataError, match=re.escape(message)):
        aql.check_key(key, "movies vertex row 3")


@pytest.mark.parametrize("name", ["Tom Hanks", "Penélope Cruz", "Ōshima Nagisa", "?!", "a/b c"])
def test_slugs_are_valid_keys(name: str) -> None:
    assert aql.key_problem(slug(name)) is None


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [("42", "1", "42:1"), ("tom_hanks", "1", "tom_hanks:1"), ("a-b", "c", "a-b:c")],
)
def test_edge_keys_are_readable_when_plain(src: str, dst: str, expected: str) -> None:
    assert aql.edge_key(src, dst) == expected


def test_edge_keys_are_distinct_valid_and_deterministic() -> None:
    pairs = [
        ("a-b", "c"),
        ("a", "b-c"),
        ("a:b", "c"),
        ("a", "b:c"),
        ("h", "x"),
        ("k" * 200, "k" * 60),
    ]
    keys = [aql.edge_key(s, d) for s, d in pairs]
    assert len(set(keys)) == len(keys)
    assert all(aql.key_problem(k) is None for k in keys)
    assert keys == [aql.edge_key(s, d) for s, d in pairs]
    hashed = aql.edge_key("a:b", "c")
    assert hashed.startswith("h:") and hashed.count(":") == 2
