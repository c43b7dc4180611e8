"""CPU seconds spent in chosen methods, by label: the per-part figures of the first-request
benches (first_request.py, reach_pool.py), taken by wrapping the methods on their classes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class CpuTimer:
    """Wraps methods on their classes; ``spent`` sums each label's process CPU seconds and
    ``last`` keeps the first argument of the last call of a method wrapped with ``keep_arg``."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.last: dict[str, Any] = {}

    def wrap(self, cls: type, name: str, label: str, keep_arg: bool = False) -> None:
        real: Callable[..., Any] = getattr(cls, name)

        def timed(*a: Any, **kw: Any) -> Any:
            if keep_arg:
                self.last[label] = a[1]
            c0 = time.process_time()
            try:
                return real(*a, **kw)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.process_time() - c0

        setattr(cls, name, timed)
