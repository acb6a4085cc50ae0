"""SLA tiers: a rate limit per second (token bucket) and a monthly quota per caller and set.

Both are counted in the server's memory; the quota starts each month from the answered
calls already recorded in ``govops.api_call``, so a restart does not reset it. One server
process per ledger is assumed (several would each allow the full rate).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from govops.sharing.spec import Sla, SlaSpec


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "", "rate" or "quota"
    headers: dict[str, str]


def tier(sla: SlaSpec, roles: frozenset[str]) -> Sla:
    """The caller's tier: the role tier with the largest quota among its roles, else the set's."""
    tiers = [sla.by_role[r] for r in roles if r in sla.by_role]
    return max(tiers, key=lambda t: (t.quota_per_month, t.rate_per_second)) if tiers else sla


class Limiter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._used: dict[tuple[str, str, str], int] = {}  # (caller, set, month) -> answered calls
        self._span: tuple[datetime, datetime, str] | None = None

    def _month(self, now: datetime) -> tuple[datetime, datetime, str]:
        """(the month's start, the next month's start, a key of the month), in the contract's
        time zone; computed once a month."""
        span = self._span
        if span is None or not span[0] <= now < span[1]:
            from govops.ledger.usage import contract_timezone

            start = now.astimezone(contract_timezone()).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            span = self._span = (start, (start + timedelta(days=32)).replace(day=1), start.isoformat())
        return span

    def ready(self, caller: str, set_name: str, now: datetime) -> bool:
        """Whether the month's count of this caller and set is known (else :meth:`load` it)."""
        return (caller, set_name, self._month(now)[2]) in self._used

    def load(self, caller: str, set_name: str, now: datetime) -> None:
        """The month's answered calls so far, from the call records (a ledger query)."""
        start, end, month = self._month(now)
        with self.engine.connect() as conn:
            count = conn.execute(
                text("""SELECT count(*) FROM govops.api_call WHERE caller_id = :c AND set_name = :s
                        AND status < 400 AND called_at >= :a AND called_at < :b"""),
                {"c": caller, "s": set_name, "a": start, "b": end},
            ).scalar_one()
        with self._lock:
            self._used.setdefault((caller, set_name, month), int(count))

    def check(self, caller: str, set_name: str, sla: Sla, now: datetime) -> Decision:
        """Take one token and one unit of quota, or say which is used up."""
        start, end, month = self._month(now)
        if not self.ready(caller, set_name, now):
            self.load(caller, set_name, now)
        burst = float(sla.burst or max(1, math.ceil(sla.rate_per_second)))
        with self._lock:
            clock = time.monotonic()
            tokens, at = self._buckets.get((caller, set_name), (burst, clock))
            tokens = min(burst, tokens + (clock - at) * sla.rate_per_second)
            used = self._used[(caller, set_name, month)]
            quota_left = sla.quota_per_month - used
            headers = {
                "RateLimit-Policy": f"{int(burst)};w=1, {sla.quota_per_month};w={int((end - start).total_seconds())}"
            }
            if quota_left <= 0:
                wait = max(1, math.ceil((end - now).total_seconds()))
                self._buckets[(caller, set_name)] = (tokens, clock)
                return Decision(False, "quota", {**headers, "RateLimit-Limit": str(sla.quota_per_month),
                                                 "RateLimit-Remaining": "0", "RateLimit-Reset": str(wait),
                                                 "Retry-After": str(wait)})  # fmt: skip
            if tokens < 1:
                wait = max(1, math.ceil((1 - tokens) / sla.rate_per_second))
                self._buckets[(caller, set_name)] = (tokens, clock)
                return Decision(False, "rate", {**headers, "RateLimit-Limit": str(int(burst)),
                                                "RateLimit-Remaining": "0", "RateLimit-Reset": str(wait),
                                                "Retry-After": str(wait)})  # fmt: skip
            tokens -= 1
            self._buckets[(caller, set_name)] = (tokens, clock)
            self._used[(caller, set_name, month)] = used + 1
            reset = max(1, math.ceil((burst - tokens) / sla.rate_per_second))
            return Decision(
                True,
                "",
                {
                    **headers,
                    "RateLimit-Limit": str(int(burst)),
                    "RateLimit-Remaining": str(int(tokens)),
                    "RateLimit-Reset": str(reset),
                },
            )

    def refund(self, caller: str, set_name: str, now: datetime) -> None:
        """A call that was allowed but not answered (a bad parameter) does not use quota."""
        with self._lock:
            key = (caller, set_name, self._month(now)[2])
            if self._used.get(key, 0) > 0:
                self._used[key] -= 1
