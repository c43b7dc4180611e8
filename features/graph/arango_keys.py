"""Document keys and ids in ArangoDB: which keys a collection accepts, and how edge keys are made.

ArangoDB allows only a restricted alphabet in ``_key``; vertex keys are checked against it before
any request, and edge keys are derived from (src, dst) so that importing the same data twice
changes nothing.
"""

from __future__ import annotations

import hashlib
import re

from features.graph.batch import GraphDataError
from features.graph.schema import VertexKind

MAX_KEY_BYTES = 254
_KEY_RE = re.compile(r"[A-Za-z0-9_\-:.@()+,=;$!*'%]+")
_PLAIN_PART_RE = re.compile(r"[A-Za-z0-9_\-.@]+")


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an ArangoDB document key, or None when it can."""
    if not isinstance(key, str):
        return f"key must be a string, got {type(key).__name__}"
    if not key:
        return "key is empty"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"key is longer than {MAX_KEY_BYTES} bytes"
    if not _KEY_RE.fullmatch(key):
        bad = sorted({ch for ch in key if not _KEY_RE.fullmatch(ch)})
        return f"key {key!r} has characters ArangoDB does not allow: {''.join(bad)!r}"
    return None


def check_key(key: str, where: str) -> str:
    """Return ``key`` unchanged, or raise GraphDataError naming ``where`` and the problem."""
    problem = key_problem(key)
    if problem is not None:
        raise GraphDataError(f"{where}: {problem} (use features.graph.schema.slug)")
    return key


def edge_key(src: str, dst: str) -> str:
    """The edge ``_key`` for (src, dst): ``src:dst`` when both are plain, else a hash.

    Plain keys (letters, digits, ``_-.@``) contain no ':', so the readable form has exactly one
    ':'; the hashed form ``h:<sha1>:`` has two, so the two forms never collide.
    """
    if (
        _PLAIN_PART_RE.fullmatch(src)
        and _PLAIN_PART_RE.fullmatch(dst)
        and len(src) + len(dst) + 1 <= MAX_KEY_BYTES
    ):
        return f"{src}:{dst}"
    digest = hashlib.sha1(f"{src}\x00{dst}".encode()).hexdigest()
    return f"h:{digest}:"


def vertex_id(kind: VertexKind, key: str) -> str:
    """The ``_id`` ("collection/key") of a vertex."""
    return f"{kind.value}/{key}"
