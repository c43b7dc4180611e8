"""One connection to an ArangoDB database: the client, error wrapping, and how queries run.

Every query runs with ``failOnWarning``: a warning (a bad start vertex, a division by zero) is
an error rather than a silently wrong or empty result. Full reads (whole collections) use stream
cursors, so the server hands out the first batch without materialising the whole result first.
Inside a stream transaction every query must answer in one batch: python-arango fetches further
batches without the transaction header, so a cursor that spans batches there is refused
(``TransactionSpansBatches``) instead of being read outside the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from arango import ArangoClient
from arango.cursor import Cursor
from arango.database import Database, StandardDatabase
from arango.exceptions import ArangoClientError, ArangoError, ArangoServerError
from arango.http import DefaultHTTPClient
from requests.exceptions import RequestException

from features.graph.arango_aql import AqlQuery
from features.graph.store import GraphStoreError

log = logging.getLogger(__name__)

BATCH = 5000  # rows per cursor batch; every query inside a transaction returns at most this many
STREAM_BATCH = 10_000  # rows per batch of a full read
TRANSPORT_ERRORS = (ArangoError, RequestException, ConnectionError)


class TransactionSpansBatches(GraphStoreError):
    """A query inside a stream transaction returned more than one batch (see module doc)."""


def split_url(url: str) -> tuple[str, str | None, str | None]:
    """(URL without credentials, user, password) for a URL that may carry ``user:pw@``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GraphStoreError("ArangoDB URL must look like http://host:8529 (scheme and host)")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return clean, user, password


def describe(exc: BaseException) -> str:
    """A short reason for a driver or transport error, without credentials."""
    if isinstance(exc, ArangoServerError):
        code = exc.http_code
        if code == 401:
            return "not authorized: wrong username or password (HTTP 401)"
        if code == 403:
            return "forbidden: the user lacks rights for this (HTTP 403)"
        return f"HTTP {code}, error {exc.error_code}: {exc.error_message or 'no message'}"
    if isinstance(exc, ConnectionAbortedError | RequestException | ConnectionError):
        return f"cannot reach the server ({type(exc).__name__})"
    if isinstance(exc, ArangoClientError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Connection:
    """The client and database handle of one store, with its credentials kept out of messages."""

    client: ArangoClient
    db: StandardDatabase
    url: str
    database: str
    username: str
    password: str

    @classmethod
    def open(
        cls, url: str, database: str, username: str, password: str, request_timeout: float
    ) -> Connection:
        """A client for ``database`` at ``url`` (credentials in the URL win over the defaults)."""
        clean, url_user, url_password = split_url(url)
        if url_user and username == "root" and not password:
            username, password = url_user, url_password or ""
        http = DefaultHTTPClient(
            request_timeout=request_timeout, retry_attempts=2, backoff_factor=0.1
        )
        client = ArangoClient(hosts=clean, http_client=http, request_timeout=request_timeout)
        db = client.db(database, username=username, password=password)
        return cls(client, db, clean, database, username, password)

    @property
    def where(self) -> str:
        return f"ArangoDB at {self.url}, database {self.database!r}"

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn driver and transport errors into GraphStoreError without credentials."""
        try:
            yield
        except TRANSPORT_ERRORS as exc:
            msg = f"{self.where}: {what} failed: {describe(exc)}"
            if self.password:
                msg = msg.replace(self.password, "***")
            raise GraphStoreError(msg) from None

    def system(self) -> StandardDatabase:
        return self.client.db("_system", username=self.username, password=self.password)

    def rows(self, query: AqlQuery, db: Database | None = None) -> list[Any]:
        """All rows of a query expected to be small (at most one batch inside a transaction)."""
        text, bind = query
        cursor = (db or self.db).aql.execute(
            text, bind_vars=bind, batch_size=BATCH, fail_on_warning=True
        )
        assert isinstance(cursor, Cursor)
        if db is not None and db is not self.db and cursor.has_more():
            cursor.close(ignore_missing=True)
            raise TransactionSpansBatches(
                f"{self.where}: a query inside a transaction returned more than {BATCH} rows; "
                "python-arango would fetch the rest outside the transaction"
            )
        return list(cursor)

    def stream(self, query: AqlQuery) -> Iterator[Any]:
        """The rows of a full read, batch by batch from a stream cursor (never in a transaction)."""
        text, bind = query
        cursor = self.db.aql.execute(
            text, bind_vars=bind, batch_size=STREAM_BATCH, stream=True, fail_on_warning=True
        )
        assert isinstance(cursor, Cursor)
        try:
            yield from cursor
        finally:
            if cursor.has_more():
                cursor.close(ignore_missing=True)

    def one(self, query: AqlQuery, what: str) -> dict[str, Any]:
        """The single row of a query that returns one."""
        with self.errors(what):
            found = self.rows(query)
        return dict(found[0])

    def revisions(self, names: list[str]) -> tuple[str, ...]:
        """Each collection's revision: it changes with every write to the collection."""
        return tuple(str(self.db.collection(name).revision()) for name in names)

    def close(self) -> None:
        self.client.close()
