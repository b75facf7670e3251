"""Figures: each the median of several runs, with min and max."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

Group = Literal["limit", "peer", "ours"]


@dataclass
class Figure:
    """One measured quantity. `runs` holds one value per run."""

    key: str
    label: str
    group: Group
    unit: str  # "events/s", "req/s", "ms", "bytes/event"
    higher_is_better: bool
    runs: list[float] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "group": self.group, "unit": self.unit,
                "median": round(self.median, 4), "min": round(min(self.runs), 4),
                "max": round(max(self.runs), 4), "runs": [round(r, 4) for r in self.runs],
                "higher_is_better": self.higher_is_better, **self.detail}


@dataclass
class NotMeasured:
    key: str
    label: str
    reason: str

    def as_json(self) -> str:
        return f"not measured: {self.reason}"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
