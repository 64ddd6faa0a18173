"""The one retry policy: exponential backoff with jitter, capped.

Every loop that waits for a component to come back (PostgreSQL, Kafka, a webhook receiver) uses
it, so an outage is retried at the same pace everywhere and no loop hammers a recovering server.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number `attempt` (0-based): first_s, doubling, at most cap_s.

    The jitter (50-100 % of the step) keeps several services that failed together from
    retrying in lock step when PostgreSQL or Kafka returns.

    >>> b = Backoff(first_s=0.5, cap_s=4.0)
    >>> all(0.25 <= b.delay(0) <= 0.5 for _ in range(100))
    True
    >>> all(2.0 <= b.delay(10) <= 4.0 for _ in range(100))
    True
    """

    first_s: float = 0.5
    # A component down for minutes is noticed within this time of its return.
    cap_s: float = 10.0

    def delay(self, attempt: int) -> float:
        step = min(self.cap_s, self.first_s * 2 ** min(attempt, 30))
        # Not cryptographic: only spreads retries over time.
        return float(step * random.uniform(0.5, 1.0))  # noqa: S311


DEFAULT_BACKOFF = Backoff()


async def retry_forever(
    work: Callable[[], Awaitable[T]],
    *,
    what: str,
    on: tuple[type[BaseException], ...] = (Exception,),
    backoff: Backoff = DEFAULT_BACKOFF,
    retried: Callable[[], None] = lambda: None,
) -> T:
    """`await work()` until it succeeds, backing off between attempts; logs each failure.

    For work that must wait out an outage rather than give up (the component comes back).
    """
    attempt = 0
    while True:
        try:
            return await work()
        except on as exc:
            delay = backoff.delay(attempt)
            attempt += 1
            retried()
            log.warning("%s failed (attempt %d), retry in %.1f s: %r", what, attempt, delay, exc)
            await asyncio.sleep(delay)
