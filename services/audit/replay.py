"""Replay: rebuild the read model from the log into the inactive namespace,
compare it with the live one, and optionally promote it (blue/green).

1. A lock (with expiry, kept alive while running) refuses a second replay.
2. The inactive namespace is emptied and rebuilt from XRANGE pages with the
   projection's own fold and apply script (projections.runner.Projector on a
   ReadModel bound to that namespace), while the live copy keeps serving and
   the workers keep projecting into it. New entries' members of large timelines
   are held back and inserted sorted (projections/deferred.py), which the server
   does faster than in log order. Each page's hash chain is checked first, as
   `audit verify` checks it (services/audit/chain.py), from each partition's
   first entry on: an altered log is refused, never rebuilt nor promoted.
3. Once the live copy has caught up with the log as it was at the start, the
   rebuild is caught up to the live copy's positions and the two are compared
   (services/audit/compare.py). Whatever differs is compared once more under the
   promote fence, with both copies at the same positions, so a difference that
   was only the live copy moving on is not reported.
4. Promote: under the fence (workers wait before folding their next batch), the
   rebuild catches up to the live positions and one script flips the `active`
   pointer only if no live position is ahead of the rebuild (else: catch up,
   retry). Queries read whichever namespace the pointer names in the same call,
   so each sees one complete copy, never a half-built one. The old copy is
   then dropped. Without promote, the rebuild is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from events.stored import StoredEvent, stored_decoder
from projections.deferred import HOLD_LIMIT, HeldMembers
from projections.runner import GapError, Projector
from projections.store import ACTIVE, BASE, FENCE, ReadModel, namespace_key, other_namespace
from services import heap
from services.audit.chain import PartitionChain
from services.audit.compare import Comparer, Difference
from services.audit.parallel import (
    PARALLEL_FROM,
    Helpers,
    Unreplayable,
    deal,
    rebuild_in_helpers,
    to_the_end,
    until_first_failure,
)
from services.log import keys
from services.log.reader import BadHead, LogReader, RawRange

LOCK = BASE + "replay"
LOCK_TTL_MS = 30_000
FENCE_TTL_MS = 10_000
FENCE_GRACE_SECONDS = 0.2  # lets a batch folded just before the fence land first
PAGE = 1000
LIVE_WAIT_SECONDS = 30.0
MAX_SHOWN = 1000
PROMOTE_ATTEMPTS = 50

FLIP = """
-- KEYS[1]: active pointer; KEYS[2]: fence. ARGV: key base, from namespace, to namespace,
-- then partition, log head pairs: no copy can be ahead of its log (a live position past
-- it is damage, which the rebuild repairs).
local current = redis.call('GET', KEYS[1]) or 'blue'
if current ~= ARGV[2] then return {'moved', current} end
local heads = {}
for i = 4, #ARGV, 2 do heads[ARGV[i]] = tonumber(ARGV[i + 1]) end
local live = redis.call('HGETALL', ARGV[1] .. ARGV[2] .. ':applied')
for i = 1, #live, 2 do
  local rebuilt = tonumber(redis.call('HGET', ARGV[1] .. ARGV[3] .. ':applied', live[i]) or '0')
  if rebuilt < math.min(tonumber(live[i + 1]), heads[live[i]] or 0) then
    return {'behind', live[i]}
  end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
return {'ok', ARGV[3]}
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class ReplayRunning(RuntimeError):
    """Another replay holds the lock."""


class ReplayError(RuntimeError):
    """The log cannot be replayed (a gap, a foreign entry, a broken hash chain):
    `audit verify` says where."""


class ReplayReport(msgspec.Struct):
    identical: bool
    events: int
    seconds: float
    differences: list[Difference]
    differences_total: int
    promoted: bool
    namespace: str  # the namespace queries read when the replay ended
    live_behind: dict[str, int]  # partition -> entries the live copy had not projected


Progress = Callable[[int], object]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sequence(stream_id: bytes | str) -> int:
    """Log entry ids are `<sequence>-0`."""
    return int(_text(stream_id).partition("-")[0])


async def _abandon(task: asyncio.Future[Any]) -> None:
    """Stop a read nobody needs any more, keeping whatever it raised to itself."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


def _before_hole(applied: int, page: Any) -> int:
    """The last sequence of `page` (read after `applied`) before its first missing one."""
    for expected, (stream_id, _) in enumerate(page, applied + 1):
        if _sequence(stream_id) != expected:
            return expected - 1
    return applied + len(page)


def _decoded(partition: int, applied: int, page: Any) -> list[StoredEvent]:
    """The events of raw entries the chain took in: fields `event` and `hash`, in
    either order."""
    try:
        return [stored_decoder.decode(fields[1] if fields[0] == b"event" else fields[3])
                for _, fields in page]
    except msgspec.DecodeError as exc:
        raise ReplayError(f"partition {partition}: an entry after {applied} is not in "
                          f"our layout ({exc}); run `timeline audit verify`") from None


async def flip(client: Any, live_ns: str, rebuilt_ns: str, heads: dict[int, int]) -> list[Any]:
    """Make the rebuild active if it is not behind the live copy, as far as the log goes
    (the FLIP script)."""
    pairs = [str(n) for partition, head in heads.items() for n in (partition, head)]
    reply: list[Any] = await client.register_script(FLIP)(
        keys=[ACTIVE, FENCE], args=[BASE, live_ns, rebuilt_ns, *pairs])
    return reply


async def beyond_the_log(live: ReadModel, client: Any, partitions: int) -> list[Difference]:
    """Partitions the live copy says it applied past the end of their log: a read model
    kept over a wiped or older log. Workers would skip what is appended up to there."""
    heads = await LogReader(client, partitions).heads()
    return [Difference("applied", "differs", f"partition {p}", live=n, rebuilt=heads.get(p, 0))
            for p, n in sorted((await live.applied()).items()) if n > heads.get(p, 0)]


async def _inactive(client: Any) -> str:
    return other_namespace(await ReadModel(client).active())


async def drop_namespace(client: Any, namespace: str) -> int:
    """Delete every key of an inactive namespace; refuses the active one."""
    if namespace == await ReadModel(client).active():
        raise ValueError(f"namespace {namespace} is active")
    dropped = 0
    batch: list[Any] = []
    async for name in client.scan_iter(match=namespace_key(namespace, "*"), count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            dropped += await client.unlink(*batch)
            batch = []
    if batch:
        dropped += await client.unlink(*batch)
    return int(dropped)


@contextlib.asynccontextmanager
async def _lock(client: Any) -> AsyncIterator[None]:
    token = uuid.uuid4().hex
    if not await client.set(LOCK, token, nx=True, px=LOCK_TTL_MS):
        raise ReplayRunning("a replay is already running; wait for it to finish")
    renew = client.register_script(RENEW)

    async def keep() -> None:
        while True:
            await asyncio.sleep(LOCK_TTL_MS / 3000)
            await renew(keys=[LOCK], args=[token, LOCK_TTL_MS])

    keeper = asyncio.create_task(keep())
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await client.register_script(RELEASE)(keys=[LOCK], args=[token])


@contextlib.asynccontextmanager
async def fenced(client: Any) -> AsyncIterator[None]:
    """Workers wait before folding a new batch until this ends (or the fence expires)."""
    await client.set(FENCE, "promote", px=FENCE_TTL_MS)
    try:
        await asyncio.sleep(FENCE_GRACE_SECONDS)
        yield
    finally:
        await client.delete(FENCE)


class Replay:
    def __init__(self, client: Any, partitions: int, on_progress: Progress,
                 helpers: Helpers | None = None) -> None:
        self.client = client
        self.partitions = partitions
        self.on_progress = on_progress
        self.helpers = helpers
        self._ending = False  # a step failed or `_all` was cancelled: each stops after its page
        self.xrange = RawRange(client)  # entries as the server sends them, as verify reads
        self.chains: dict[int, PartitionChain] = {}  # partition -> its chain, checked so far
        self.stopped = False  # asked to stop: every partition stops after its page

    def stop(self) -> None:
        """A helper's SIGTERM (services/audit/parallel.py): stop after the page in hand."""
        self.stopped = True

    async def _all(self, *steps: Coroutine[Any, Any, None]) -> None:
        """Run `steps` concurrently; on the first failure, or a cancel, let the others
        finish the page in hand and stop (so no write is still on its way when the
        rebuild is dropped), then raise it."""
        tasks = [asyncio.ensure_future(step) for step in steps]
        if not tasks:
            return
        try:
            await until_first_failure(tasks)
        finally:
            self._ending = True
            try:
                await to_the_end(asyncio.wait(tasks))
            finally:
                self._ending = False
                for task in tasks:  # the first failure is raised; the rest are its consequences
                    task.exception()

    async def advance(self, projector: Projector, partition: int, applied: int,
                      upto: int, count: bool = True) -> None:
        """Apply the log of `partition` from after `applied` through `upto`, reading
        the next page while the current one is folded and applied."""
        reading = self._read(partition, applied, upto)
        try:
            while applied < upto and not self._ending and not self.stopped:
                page = await reading
                last = _sequence(page[-1][0])
                if last - applied != len(page):  # ids only grow: a hole or a foreign id
                    raise ReplayError(f"partition {partition}: the log has a gap after "
                                      f"{_before_hole(applied, page)}; run `timeline audit "
                                      "verify`")
                reading = self._read(partition, last, upto)  # the apply below ends there
                self._check(partition, applied, page)
                events = _decoded(partition, applied, page)
                try:
                    applied = await projector.apply(partition, events)
                except GapError as gap:
                    raise ReplayError(f"partition {partition}: the log has a gap after "
                                      f"{gap.applied}; run `timeline audit verify`") from None
                if applied != last:  # not where the page ended: read on from where it did
                    await _abandon(reading)
                    reading = self._read(partition, applied, upto)
                if count:
                    self.on_progress(len(page))
        finally:
            await _abandon(reading)

    def _check(self, partition: int, applied: int, page: Any) -> None:
        """Check the hash chain of `page` (the entries after `applied`) with what came
        before it: whatever is applied, and so whatever may be promoted, is the log
        `audit verify` vouches for."""
        chain = self.chains.setdefault(partition, PartitionChain(partition))
        seen = chain.expected - 1 - applied  # entries of a page read again already checked
        if seen < 0:  # a bug, not the log: nothing may be applied unchecked
            raise RuntimeError(f"partition {partition}: the chain is checked up to "
                               f"{chain.expected - 1}, the rebuild applied {applied}")
        chain.feed_page(page[seen:])
        if chain.problems:
            first = chain.problems[0]
            raise ReplayError(f"partition {partition}: {first.kind} at sequence "
                              f"{first.sequence}: {first.message}; run `timeline audit "
                              "verify`")

    def _read(self, partition: int, applied: int, upto: int) -> asyncio.Future[Any]:
        """The page after `applied` (a task, so it is read while the caller works)."""
        async def page() -> Any:
            if applied >= upto:
                return []
            entries = await self.xrange(keys.log(partition), f"{applied + 1}-0",
                                        f"{upto}-0", PAGE)
            if not entries:
                raise ReplayError(f"partition {partition}: no entries after {applied} up to "
                                  f"{upto}; run `timeline audit verify`")
            return entries
        return asyncio.ensure_future(page())

    async def rebuild(self, rebuilt: ReadModel, heads: dict[int, int],
                      hold: int = HOLD_LIMIT) -> None:
        """The log of each partition in `heads` through its head, the new members of
        large timelines held back (up to `hold` at a time) and written sorted."""
        held = HeldMembers(rebuilt, hold)
        bulk = Projector(rebuilt, held)
        await self._all(*(self.advance(bulk, p, 0, s) for p, s in heads.items()))
        if not self.stopped:
            await to_the_end(held.flush())  # a cancel must not cut a write in flight

    async def rebuild_anywhere(self, rebuilt: ReadModel, heads: dict[int, int]) -> None:
        """`rebuild`, split across helper processes when there are helpers and the log
        is large enough to repay starting them (services/audit/parallel.py)."""
        groups: list[dict[int, int]] = []
        if self.helpers is not None and sum(heads.values()) >= PARALLEL_FROM:
            groups = deal(heads, self.helpers.processes)
        if self.helpers is None or len(groups) < 2:
            await self.rebuild(rebuilt, heads)
            return
        if rebuilt.namespace is None:  # helpers would write wherever `active` points
            raise ValueError("a rebuild writes into a named namespace")
        try:
            await rebuild_in_helpers(self.helpers, rebuilt.namespace, groups, self.on_progress,
                                     self.checked_elsewhere)
        except Unreplayable as exc:
            raise ReplayError(str(exc)) from None

    def checked_elsewhere(self, partition: int, sequence: int, head: str) -> None:
        """A helper checked `partition`'s chain through `sequence`: catching up goes on
        from there."""
        self.chains[partition] = PartitionChain.after(partition, sequence, head)

    async def catch_up(self, projector: Projector, live: ReadModel) -> dict[int, int]:
        """Apply what the live copy has applied and the rebuild has not, up to the log's
        heads (returned): a live position past its log, which only damage makes, is
        reported by `beyond_the_log`, not chased into an error."""
        heads = await LogReader(self.client, self.partitions).heads()
        target = {p: min(upto, heads.get(p, 0)) for p, upto in (await live.applied()).items()}
        applied = await projector.read_model.applied()
        await self._all(*(self.advance(projector, p, applied.get(p, 0), upto, count=False)
                          for p, upto in target.items() if upto > applied.get(p, 0)))
        return heads

    async def wait_for_live(self, live: ReadModel, heads: dict[int, int]) -> dict[str, int]:
        deadline = time.monotonic() + LIVE_WAIT_SECONDS
        while True:
            applied = await live.applied()
            behind = {str(p): s - applied.get(p, 0) for p, s in heads.items()
                      if applied.get(p, 0) < s}
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(0.05)

    async def promote(self, projector: Projector, live_ns: str, rebuilt_ns: str) -> None:
        live = ReadModel(self.client, live_ns)
        async with fenced(self.client):
            for _ in range(PROMOTE_ATTEMPTS):
                heads = await self.catch_up(projector, live)
                # Once sent, the flip runs whether or not we wait: a cancel must not
                # leave us guessing which copy is active when we drop the other.
                reply = await to_the_end(flip(self.client, live_ns, rebuilt_ns, heads))
                outcome = _text(reply[0])
                if outcome == "ok":
                    return
                if outcome == "moved":
                    raise ReplayError(f"the active namespace changed to {_text(reply[1])} "
                                      "during the replay")
                await self.client.pexpire(FENCE, FENCE_TTL_MS)
        raise ReplayError("the rebuild could not catch up with the live projection")

    async def run(self, promote: bool) -> ReplayReport:
        started = time.perf_counter()
        live_ns = await ReadModel(self.client).active()
        rebuilt_ns = other_namespace(live_ns)
        await drop_namespace(self.client, rebuilt_ns)  # what a crashed replay left
        live = ReadModel(self.client, live_ns)
        rebuilt = ReadModel(self.client, rebuilt_ns)
        projector = Projector(rebuilt)
        heads = await LogReader(self.client, self.partitions).heads()
        try:
            await self.rebuild_anywhere(rebuilt, heads)
            behind = await self.wait_for_live(live, heads)
            await self.catch_up(projector, live)
            comparer = Comparer(self.client, live_ns, rebuilt_ns)
            differences = await comparer.everything()
            if differences:
                async with fenced(self.client):
                    await self.catch_up(projector, live)
                    differences = await comparer.recheck(differences)
            differences += await beyond_the_log(live, self.client, self.partitions)
            if promote:
                await self.promote(projector, live_ns, rebuilt_ns)
        except BaseException:
            # The rebuild, or the old copy if a cancel came once the flip had run.
            with contextlib.suppress(ResponseError, ValueError):
                await drop_namespace(self.client, await _inactive(self.client))
            raise
        await drop_namespace(self.client, live_ns if promote else rebuilt_ns)
        return ReplayReport(
            identical=not differences, events=sum(heads.values()),
            seconds=round(time.perf_counter() - started, 3),
            differences=differences[:MAX_SHOWN], differences_total=len(differences),
            promoted=promote, namespace=rebuilt_ns if promote else live_ns, live_behind=behind,
        )


async def replay(
    client: Any, partitions: int, promote: bool = False,
    on_total: Progress = lambda n: None, on_progress: Progress = lambda n: None,
    helpers: Helpers | None = None,
) -> ReplayReport:
    """Rebuild, compare and (with `promote`) switch; ReplayRunning if one is under way.
    With `helpers`, a large log is rebuilt by several processes."""
    async with _lock(client):
        try:
            on_total(sum((await LogReader(client, partitions).heads()).values()))
            with heap.relaxed():
                return await Replay(client, partitions, on_progress, helpers).run(promote)
        except BadHead as exc:
            raise ReplayError(str(exc)) from None
