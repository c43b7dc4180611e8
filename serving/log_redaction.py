"""A logging filter that masks secrets in query strings (uvicorn's access log prints them).

Masks the value of any query parameter whose name looks like a secret (contains token, key,
secret, password/passwd/pwd, auth, signature/sig, session or credential: ``secret=`` of the
Plex webhook, ``X-Plex-Token=``, ``api_token=``, ``apikey=``...) in a record's message and
arguments.
Install with ``logging.getLogger("uvicorn.access").addFilter(RedactSecretFilter())``.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

_SECRET_IN_URL = re.compile(
    r"((?:[?&;]|^)[^=&?;/\s\"]*"
    r"(?:token|key|secret|passw|pwd|auth|sig|session|credential)[^=&?;/\s\"]*=)"
    r"[^&;\s\"]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with secret query values replaced by ``***``."""
    return _SECRET_IN_URL.sub(r"\1***", text)


class RedactSecretFilter(logging.Filter):
    """Masks secret query parameters in log records (module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
