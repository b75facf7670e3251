"""The results: ratios, targets, a rich table and bench/results.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from bench.stats import Figure, NotMeasured

# Which limit and which peer figure each of ours compares with.
LIMIT_OF = {"ours.append": "limit.xadd", "ours.http_batch": "limit.xadd",
            "ours.http_single_max_rate": "limit.xadd", "ours.projection": "limit.consume",
            "ours.memory": "limit.stream_memory",
            "ours.http_single_p50": "limit.single_rtt_p50",
            "ours.http_single_p99": "limit.single_rtt_p99",
            "ours.page_p50": "limit.page_p50", "ours.page_p99": "limit.page_p99",
            "ours.page_as_of_p50": "limit.page_p50", "ours.page_as_of_p99": "limit.page_p99",
            "ours.replay": "limit.consume", "ours.verify": "limit.consume"}
# The floor DESIGN 2's read-model layout sets (bench/layout.py), for the figures it bounds.
LAYOUT_OF = {"ours.projection": "limit.layout_write", "ours.replay": "limit.layout_write",
             "ours.memory": "limit.layout_memory"}
PEER_OF = {"ours.append": ("peer.popo_write", "peer.sqlite_write"),
           "ours.http_batch": ("peer.popo_write", "peer.sqlite_write"),
           "ours.http_single_max_rate": ("peer.popo_write", "peer.sqlite_write"),
           "ours.http_single_p50": ("peer.single_save_p50",),
           "ours.http_single_p99": ("peer.single_save_p99",),
           "ours.projection": ("peer.projection",),
           "ours.replay": ("peer.projection",)}


@dataclass(frozen=True)
class Target:
    text: str
    at_least: float | None = None
    at_most: float | None = None
    limit_ratio: float | None = None  # ours ≥ this × the limit
    peer_ratio: float | None = None  # ours ≥ this × the (first) peer figure


TARGETS = {
    "ours.append": Target("≥ 60,000 events/s and ≥ 0.35 × raw XADD", at_least=60_000,
                          limit_ratio=0.35),
    "ours.http_batch": Target("≥ 30,000 events/s", at_least=30_000),
    "ours.http_single_p50": Target("≤ 1.5 ms at 300 req/s", at_most=1.5),
    "ours.http_single_p99": Target("≤ 5 ms at 300 req/s", at_most=5.0),
    "ours.http_single_max_rate": Target("≥ 2,000 req/s", at_least=2_000),
    "ours.projection": Target("≥ 40,000 events/s, ≥ 0.4 × raw consume, ≥ 1.2 × peer runner",
                              at_least=40_000, limit_ratio=0.4, peer_ratio=1.2),
    "ours.lag_p50": Target("≤ 20 ms", at_most=20),
    "ours.lag_p99": Target("≤ 100 ms", at_most=100),
    "ours.page_p50": Target("≤ 2 ms", at_most=2),
    "ours.page_p99": Target("≤ 8 ms", at_most=8),
    "ours.page_as_of_p99": Target("≤ 50 ms", at_most=50),
    "ours.replay": Target("≥ 80,000 events/s", at_least=80_000),
    "ours.verify": Target("≥ 300,000 events/s", at_least=300_000),
    "ours.memory": Target("≤ 1,536 bytes/event (1.5 KB), log + read model", at_most=1536),
}

Entry = Figure | NotMeasured


def ratios(key: str, figures: dict[str, Entry]) -> dict[str, float]:
    """ours / limit, ours / the layout's limit (LAYOUT_OF) and ours / peer, by medians."""
    mine = figures.get(key)
    if not isinstance(mine, Figure):
        return {}
    out: dict[str, float] = {}
    limit = figures.get(LIMIT_OF.get(key, ""))
    if isinstance(limit, Figure) and limit.median:
        out["limit"] = mine.median / limit.median
    layout = figures.get(LAYOUT_OF.get(key, ""))
    if isinstance(layout, Figure) and layout.median:
        out["layout"] = mine.median / layout.median
    for peer_key in PEER_OF.get(key, ()):
        peer = figures.get(peer_key)
        if isinstance(peer, Figure) and peer.median:
            out[peer_key.removeprefix("peer.")] = mine.median / peer.median
    return out


def verdict(key: str, figures: dict[str, Entry]) -> dict[str, Any] | None:
    """Whether the median meets the target, and the factor by which it is missed
    (needed / got for rates, got / allowed for latencies and memory)."""
    target = TARGETS.get(key)
    mine = figures.get(key)
    if target is None:
        return None
    if not isinstance(mine, Figure):
        return {"target": target.text, "met": None}
    value, ratio = mine.median, ratios(key, figures)
    misses: list[float] = []
    if target.at_least is not None and value < target.at_least:
        misses.append(target.at_least / value if value else float("inf"))
    if target.at_most is not None and value > target.at_most:
        misses.append(value / target.at_most)
    if target.limit_ratio is not None and ratio.get("limit", 1e9) < target.limit_ratio:
        misses.append(target.limit_ratio / ratio["limit"])
    if target.peer_ratio is not None:
        first_peer = PEER_OF[key][0].removeprefix("peer.")
        if ratio.get(first_peer, 1e9) < target.peer_ratio:
            misses.append(target.peer_ratio / ratio[first_peer])
    return {"target": target.text, "met": not misses,
            "missed_by_factor": round(max(misses), 2) if misses else None}


def to_json(figures: dict[str, Entry], meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"meta": meta, "figures": {}, "ratios": {}, "targets": {}}
    for key, entry in figures.items():
        out["figures"][key] = entry.as_json()
        if key.startswith("ours."):
            if r := ratios(key, figures):
                out["ratios"][key] = {k: round(v, 3) for k, v in r.items()}
            if (v := verdict(key, figures)) is not None:
                out["targets"][key] = v
    return out


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")


def _limits(r: dict[str, float]) -> str:
    """The limit column: the limit, then the layout's floor where it applies."""
    if "layout" not in r:
        return f"{r['limit']:.2f}" if "limit" in r else ""
    return f"{r['limit']:.2f} / {r['layout']:.2f}" if "limit" in r else f"— / {r['layout']:.2f}"


def _num(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def table(figures: dict[str, Entry], scale: int) -> Table:
    t = Table(title=f"timeline benchmark, SCALE={scale:,} (median of runs; min–max)",
              title_justify="left")
    for column in ("figure", "median", "min–max", "unit", "× limit", "× peer", "target",
                   "met"):
        t.add_column(column, justify="right" if column in ("median", "min–max") else "left")
    for key, entry in figures.items():
        if isinstance(entry, NotMeasured):
            t.add_row(entry.label, "—", "", "", "", "", TARGETS[key].text if key in TARGETS
                      else "", f"[yellow]not measured: {entry.reason}[/yellow]")
            continue
        r = ratios(key, figures)
        peers = " / ".join(f"{r[p.removeprefix('peer.')]:.2f}"
                           for p in PEER_OF.get(key, ()) if p.removeprefix("peer.") in r)
        v = verdict(key, figures)
        met = ""
        if v is not None:
            met = "[green]yes[/green]" if v["met"] else f"[red]no (×{v['missed_by_factor']})[/red]"
        t.add_row(f"{entry.group}: {entry.label}", _num(entry.median, entry.unit),
                  f"{_num(min(entry.runs), entry.unit)}–{_num(max(entry.runs), entry.unit)}",
                  entry.unit, _limits(r), peers,
                  v["target"] if v else "", met)
    return t


def print_table(figures: dict[str, Entry], scale: int, console: Console | None = None) -> None:
    console = console or Console()
    console.print(table(figures, scale))
    console.print("× limit, × peer: ours ÷ theirs, by medians (for events/s higher is better, "
                  "for ms and bytes lower is better). For projection, replay and memory the "
                  "second × limit is to the read-model layout's own limit (bench/layout.py). "
                  "The peer is eventsourcing: its POPO / SQLite recorders for publishing, its "
                  "projection runner for projection and replay. Targets are stated for "
                  "SCALE=1,000,000 on 2 cores.")


def _md_num(value: float, unit: str) -> str:
    return f"{value:,.2f}" if unit == "ms" else f"{value:,.0f}"


def markdown(document: dict[str, Any]) -> str:
    """The results as a Markdown table (for docs/performance.md), from results.json."""
    lines = ["| figure | median | min–max | unit | × limit | × peer | target | met |",
             "|---|---:|---:|---|---:|---:|---|---|"]
    ratios_of, targets = document["ratios"], document["targets"]
    for key, fig in document["figures"].items():
        target = targets.get(key, {})
        if isinstance(fig, str):
            lines.append(f"| {key} | — | | | | | {target.get('target', '')} | {fig} |")
            continue
        r = ratios_of.get(key, {})
        limit = _limits(r)
        peers = " / ".join(f"{v:.2f}" for k, v in r.items() if k not in ("limit", "layout"))
        met = ""
        if target:
            met = "yes" if target["met"] else f"**no** (×{target['missed_by_factor']})"
        unit = fig["unit"]
        lines.append(
            f"| {fig['group']}: {fig['label']} | {_md_num(fig['median'], unit)} | "
            f"{_md_num(fig['min'], unit)}–{_md_num(fig['max'], unit)} | {unit} | {limit} | "
            f"{peers} | {target.get('target', '')} | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results.json")
    print(markdown(msgspec.json.decode(source.read_bytes())), end="")
