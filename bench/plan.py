"""How much work each figure gets at a given scale."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_SCALE = 1_000_000
LAG_RATE = 5_000  # events/s offered
LAG_BATCH = 50  # events per request: 100 requests/s
SINGLE_RATE = 300  # requests/s offered
PAGE_CLIENTS = 8
HTTP_CLIENTS = 4
HTTP_BATCH = 500
MAX_RATE_CLIENTS = 16


@dataclass(frozen=True)
class Plan:
    scale: int
    runs: int = 3
    quick: bool = False

    @property
    def limit_events(self) -> int:
        """Rates settle long before this; more would only lengthen the run."""
        return min(self.scale, 100_000)

    @property
    def peer_events(self) -> int:
        return min(self.scale, 50_000)

    @property
    def peer_sqlite_events(self) -> int:
        return min(self.scale, 25_000)

    @property
    def http_batch_events(self) -> int:
        return min(self.scale, 100_000)

    @property
    def single_seconds(self) -> float:
        return 1.0 if self.quick else 5.0

    @property
    def max_rate_seconds(self) -> float:
        return 1.0 if self.quick else 5.0

    @property
    def lag_seconds(self) -> float:
        """30 s at the target scale, in proportion below it, at least 2 s."""
        if self.quick:
            return 2.0
        return max(2.0, 30.0 * min(1.0, self.scale / TARGET_SCALE))

    @property
    def single_samples(self) -> int:
        """One-at-a-time round trips for the latency floors (limit and peer)."""
        return min(self.scale, 200 if self.quick else 2000)

    @property
    def page_requests(self) -> int:
        return 100 if self.quick else 3000
