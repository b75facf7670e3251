"""A replay's rebuild split across processes, a few partitions each.

The rebuild's own process is its bottleneck: folding and encoding the log in
Python takes more CPU than the server spends applying it (docs/performance-history.md,
"Changes after 09:58"). Partitions can be rebuilt apart: an amendment names its
target's subject, so it lives in its target's partition, and every other write
commutes across partitions (timeline members have score 0; spans keep a
maximum; names keep the latest stamp), which the live workers rely on already.
So each helper process rebuilds its own partitions, holding back its own
members (projections/deferred.py), into the same namespace.

Parent side: `rebuild_in_helpers`. Helper side: `python -m services.audit.parallel`,
which reads its job as one line of JSON on stdin and answers on stdout, one line
each: `progress N` (events applied), then `checked PARTITION SEQUENCE HASH` for
each of its partitions (it checked that partition's hash chain from its first
entry through SEQUENCE, whose stored hash is HASH: the parent's catch-up checks
on from there) and `ok`, or `replay-error MESSAGE` (the log cannot be replayed)
or `error MESSAGE`. The parent keeps the helper's stdin open:
when it closes (the parent died), the helper exits at once rather than write into
a namespace nobody holds the replay lock for any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

import msgspec

from projections.deferred import HOLD_LIMIT

PARALLEL_FROM = 50_000  # events: below this, starting a process costs more than it saves
STOP_GRACE_SECONDS = 60.0  # a helper asked to stop finishes its page (or its flush) first
MAX_MESSAGE = 2000  # characters of a helper's error line

T = TypeVar("T")
Checked = Callable[[int, int, str], object]  # partition, sequence, its hash: see the docstring


def usable_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class Helpers(msgspec.Struct, frozen=True):
    """Where helpers connect, and how many to start at most."""

    url: str
    cluster: bool = False
    processes: int = msgspec.field(default_factory=usable_cores)


class Job(msgspec.Struct, frozen=True):
    url: str
    cluster: bool
    namespace: str
    heads: dict[int, int]  # partition -> last sequence to apply
    hold: int  # members held back before they are written (a share of HOLD_LIMIT)


class HelperFailed(RuntimeError):
    """A helper ended without rebuilding its partitions; its error is on stderr."""


class Unreplayable(RuntimeError):
    """A helper found its partitions' log cannot be replayed (a gap, a foreign entry)."""


def deal(heads: dict[int, int], groups: int) -> list[dict[int, int]]:
    """The partitions in at most `groups` groups of about as many events, largest
    partition first to the group with the fewest; empty partitions are left out."""
    found: list[dict[int, int]] = [{} for _ in range(max(1, min(groups, len(heads))))]
    for partition, head in sorted(heads.items(), key=lambda item: -item[1]):
        if head:
            min(found, key=lambda group: sum(group.values()))[partition] = head
    return [group for group in found if group]


async def rebuild_in_helpers(
    helpers: Helpers, namespace: str, groups: list[dict[int, int]],
    on_progress: Callable[[int], object], on_checked: Checked,
) -> None:
    """One helper process per group; on the first failure (or a cancel) the others are
    asked to stop after the page in hand and waited for, so that no write is on its
    way once this returns or raises."""
    hold = HOLD_LIMIT // len(groups)  # the memory one replaying process would use, shared
    processes: list[asyncio.subprocess.Process] = []
    tasks: list[asyncio.Future[None]] = []
    try:
        for group in groups:
            job = Job(helpers.url, helpers.cluster, namespace, group, hold)
            processes.append(await _start(job))
        tasks = [asyncio.ensure_future(_follow(p, on_progress, on_checked))
                 for p in processes]
        await until_first_failure(tasks)
    finally:
        await to_the_end(_stop(processes, tasks))


async def until_first_failure(tasks: list[asyncio.Future[None]]) -> None:
    """Wait for every task, or for the first to fail, and raise its failure.

    Not gather: on a cancel, gather cancels the tasks too, and the caller could then
    not let them finish the page in hand (or a helper its page) before it drops the
    rebuild."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if (failure := task.exception()) is not None:
            raise failure


async def to_the_end(step: Awaitable[T]) -> T:
    """Await `step` even through cancels (raised once it is over): stopping must not be
    cut short (by a server shutting down while a replay it runs is already stopping,
    say), or the rebuild would be dropped while a write into it is still on its way."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


async def _stop(processes: list[asyncio.subprocess.Process],
                tasks: list[asyncio.Future[None]]) -> None:
    """Every helper ended: asked to stop after its page, then killed if it has not."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    if tasks:
        await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:  # the first failure is raised already; the rest are consequences
        if not task.cancelled():
            task.exception()
    for process in processes:
        if process.returncode is None:  # no reader yet (a later start failed)
            await process.communicate()


async def _start(job: Job) -> asyncio.subprocess.Process:
    # A session of its own: a Ctrl-C at the terminal reaches the parent only, which
    # stops its helpers itself (they cannot ignore SIGINT until they are imported).
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.audit.parallel",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    assert process.stdin is not None
    process.stdin.write(msgspec.json.encode(job) + b"\n")  # kept open: see the docstring
    return process


async def _follow(process: asyncio.subprocess.Process,
                  on_progress: Callable[[int], object], on_checked: Checked) -> None:
    assert process.stdout is not None
    outcome = ""
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith("progress "):
            on_progress(int(line.removeprefix("progress ")))
        elif line.startswith("checked "):
            partition, sequence, head = line.split()[1:]
            on_checked(int(partition), int(sequence), head)
        else:
            outcome = line
    code = await process.wait()
    kind, _, message = outcome.partition(" ")
    if kind == "ok" and code == 0:
        return
    if kind == "replay-error":
        raise Unreplayable(message)
    raise HelperFailed(f"a rebuild helper failed (exit {code}): {message or 'no answer'}")


async def _helper(job: Job, out: TextIO) -> None:
    # Imported here: the parent imports this module from services.audit.replay.
    from projections.store import ReadModel
    from services import heap
    from services.audit.replay import Replay, ReplayError
    from services.redis import connection

    def progress(count: int) -> None:
        out.write(f"progress {count}\n")
        out.flush()

    heap.for_batches()  # as the replaying process does (services/heap.py)
    client = connection.client(job.url, job.cluster)
    replay = Replay(client, 0, progress)  # 0: `rebuild` reads no heads; the job has them
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, replay.stop)
    loop.add_reader(0, _exit_if_orphaned)
    try:
        await replay.rebuild(ReadModel(client, job.namespace), job.heads, job.hold)
        if replay.stopped:
            out.write("error stopped\n")
        else:
            for partition, chain in replay.chains.items():
                out.write(f"checked {partition} {chain.last_sequence} {chain.head}\n")
            out.write("ok\n")
    except ReplayError as exc:
        out.write(f"replay-error {_one_line(exc)}\n")
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def _exit_if_orphaned() -> None:
    """stdin readable: the parent closed it, so it is gone."""
    if not os.read(0, 4096):
        os._exit(3)


def _read_job() -> Job:
    """The first line of stdin, read without a buffer: the rest of stdin is watched."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            break
        line += chunk
    return msgspec.json.decode(line, type=Job)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:MAX_MESSAGE]


def main() -> None:
    """The helper: its job on stdin, its answers on the stdout it was given; anything
    else that writes to stdout (a log line) goes to stderr instead."""
    from services.redis import loop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us (SIGTERM)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    job = _read_job()
    try:
        loop.run(_helper(job, out))
    except Exception as exc:  # reported to the parent, which raises it
        traceback.print_exc()
        out.write(f"error {type(exc).__name__}: {_one_line(exc)}\n")
        out.flush()
        raise SystemExit(1) from None
    out.flush()


if __name__ == "__main__":
    main()
