"""How long an informer waits after a failed list or watch before trying again.

Exponential with jitter, starting at 0.8 s and capped at 30 s (client-go's reflector values): a
brief hiccup is retried at once, an API server that is down is not hammered, and the jitter keeps
the many informers of one process from retrying in lockstep. A delay the server asked for
(``Retry-After``, or ``retryAfterSeconds`` in a Status) is honoured when it is longer.
"""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: ``initial * 2**n`` capped at ``cap``, scaled by [0.5, 1]."""

    def __init__(self, initial: float = 0.8, cap: float = 30.0) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0

    def after(self, exc: BaseException) -> float:
        """The wait after ``exc``: the next step, or its ``retry_after`` when that is longer."""
        delay = self.next()
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, float(retry_after))
        return delay
