"""bench/scaling.json as a rich table (printed after a run) and as the Markdown
tables docs/scaling.md quotes (`python -m bench.scaling --markdown FILE`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

Document = dict[str, Any]


def _figure(document: Document, key: str) -> dict[str, Any] | None:
    figure = document["figures"].get(key)
    return figure if isinstance(figure, dict) else None


def _span(document: Document, key: str, digits: int = 0) -> str:
    """The median with the range of the runs, or a dash when the figure is missing."""
    figure = _figure(document, key)
    if figure is None:
        return "—"

    def fmt(value: float) -> str:
        return f"{round(value, digits) + 0.0:,.{digits}f}"  # + 0.0: no "-0"

    if len(figure["runs"]) == 1:
        return fmt(figure["median"])
    return f"{fmt(figure['median'])} ({fmt(figure['min'])}–{fmt(figure['max'])})"


def _median(document: Document, key: str) -> float:
    figure = _figure(document, key)
    return figure["median"] if figure else 0.0


def _nodes(document: Document, role: str) -> list[str]:
    return [n["name"] for n in document["meta"]["cluster"]["nodes"] if n["role"] == role]


def _cpu_split(document: Document, prefix: str, first: str) -> str:
    """`first / masters / replicas` CPU µs per event, from medians per process."""
    def summed(names: list[str]) -> float:
        return sum(_median(document, f"{prefix}.cpu.{n}") for n in names)

    return (f"{_median(document, f'{prefix}.cpu.{first}'):,.0f} / "
            f"{summed(_nodes(document, 'master')):,.0f} / "
            f"{summed(_nodes(document, 'replica')):,.0f}")


def _ceiling(document: Document, prefix: str) -> str:
    """`m0 104 → 9,600`: the busiest process, its CPU per event (median) and the rate
    it could sustain with a whole core."""
    figure = _figure(document, f"{prefix}.busiest")
    if figure is None or not figure["median"]:
        return "—"
    names = sorted(set(figure["process"]))
    return f"{'/'.join(names)} {figure['median']:,.0f} → {1e6 / figure['median']:,.0f}"


def throughput_rows(document: Document) -> list[list[str]]:
    header = ["what", "events/s, median (min–max)", "start-up s",
              "CPU µs/event, all processes", "of which client or workers / masters / replicas",
              "busiest process: µs/event → ceiling events/s", "cores busy",
              "partitions per worker"]
    rows = [header, ["append, 1 process, 500/batch", _span(document, "append"), "",
                     _span(document, "append.cpu"), _cpu_split(document, "append", "client"),
                     _ceiling(document, "append"), "", ""]]
    for workers in document["meta"]["workers"]:
        prefix = f"projection.{workers}"
        figure = _figure(document, prefix) or {}
        startups = figure.get("startup_seconds", [])
        splits = {"/".join(map(str, s)) for s in figure.get("partitions_per_worker", [])}
        rows.append([f"projection, {workers} worker(s)", _span(document, prefix),
                     f"{sorted(startups)[len(startups) // 2]:.1f}" if startups else "",
                     _span(document, f"{prefix}.cpu"), _cpu_split(document, prefix, "workers"),
                     _ceiling(document, prefix), _span(document, f"{prefix}.cores", 2),
                     ", ".join(sorted(splits))])
    return rows


def memory_rows(document: Document) -> list[list[str]]:
    rows = [["node", "role", "slots / master", "log partitions", "log bytes/event",
             "read-model bytes/event"]]
    for node in document["meta"]["cluster"]["nodes"]:
        name = node["name"]
        owns = ", ".join(f"p{p}" for p in node["partitions"])
        if node["read_model"]:
            owns += " + `{rm}`"
        rows.append([name, node["role"], node["slots"], owns,
                     _span(document, f"memory.log.{name}"),
                     _span(document, f"memory.read_model.{name}")])
    for total, label in (("masters", "sum over masters"), ("all", "sum over all nodes")):
        rows.append([label, "", "", "", _span(document, f"memory.log.{total}"),
                     _span(document, f"memory.read_model.{total}")])
    return rows


def _md(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return lines


def markdown(document: Document) -> str:
    meta = document["meta"]
    machine = meta["machine"]
    load = [(machine[k] or ["?"])[0] for k in ("loadavg_at_start", "loadavg_at_end")]
    lines = [f"`{meta['command']}` ({meta['date']}; {meta['scale']:,} events of "
             f"~{meta['event_bytes_mean']} bytes, {meta['runs']} run(s) per figure, "
             f"{meta['partitions']} partitions; {machine['nproc']} cores ({machine['cpu']}), "
             f"Valkey {machine['server']}; 1-minute load {load[0]} at start, {load[1]} at "
             f"end; {meta['seconds']} s)", ""]
    lines += _md(throughput_rows(document))
    lines += ["", "Memory: growth of INFO `used_memory` less the replication, client and AOF "
              "buffers, per node, divided by the events (log: from empty to appended; read "
              "model: from appended to projected, so it also holds the consumer groups and "
              "leases).", ""]
    lines += _md(memory_rows(document))
    return "\n".join(lines) + "\n"


def table(document: Document) -> Table:
    meta = document["meta"]
    t = Table(title=f"local cluster (3 masters + 3 replicas), SCALE={meta['scale']:,}, "
                    f"median (min–max) of {meta['runs']} run(s)", title_justify="left")
    rows = throughput_rows(document)
    for i, column in enumerate(rows[0]):
        t.add_column(column, no_wrap=i == 0)
    for row in rows[1:]:
        t.add_row(*row)
    memory = Table(title="memory per event per node", title_justify="left")
    rows = memory_rows(document)
    for i, column in enumerate(rows[0]):
        memory.add_column(column, no_wrap=i == 0)
    for row in rows[1:]:
        memory.add_row(*row)
    outer = Table.grid()
    outer.add_row(t)
    outer.add_row(memory)
    return outer
