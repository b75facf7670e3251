"""The live feed: every entry the projection applies, on one capped stream.

The worker publishes a batch's entries after the apply and before the
acknowledgement, so a crash in between publishes them again on redelivery: the
feed is at-least-once. Each message is the entry as the read model held it when
it was published (an entry is published only while its stored document is the
one sent), so a reader applies messages in order, the later replacing the
earlier. (source, id, version) does not tell versions apart: a retraction keeps
the version it retracts. The stream is capped (MAXLEN ~): it serves reconnects
of the last few minutes; the timelines themselves are the history.

The same round trip records the batch's duration into a small histogram hash,
because the worker is its own process and the HTTP API's `/metrics` reads it
from there.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from projections.entry import Entry, entry_decoder, timelines
from projections.outages import worth_waiting
from projections.store import ACTIVE, BASE, ReadModel
from projections.writes import Fresh

LIVE = "timeline:live"
MAXLEN = 10_000
BATCH_STATS = "timeline:stats:projection-batches"
# Upper bounds (seconds) of the batch-duration histogram; a batch counts in the first
# bucket it fits, and "+Inf" holds the rest. Readers make them cumulative.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# One call for the whole batch: per-command client CPU, not Redis, is the cost
# that matters on this path (DESIGN 2).
# KEYS[1]: the live stream; KEYS[2], on one server: the pointer naming the active namespace.
# ARGV: maxlen, key base, namespace ("" = the active one), then per entry: entry key,
# document, timelines, timelines left ("" for none).
# With KEYS[2] an entry is published only while its stored document is the one sent. A
# worker that applied a batch and then stalled past its lease would otherwise publish
# after the partition's next owner had published a newer version, and the feed would end
# on the old one. On a cluster the stream and the read model live in different slots:
# there the check is a call of its own just before (_CURRENT).
_PUBLISH = """
local stored = {}
if KEYS[2] then
  local ns = ARGV[3]
  if ns == '' then ns = redis.call('GET', KEYS[2]) or 'blue' end
  local keys = {}
  for i = 4, #ARGV, 4 do keys[#keys + 1] = ARGV[i] end
  for first = 1, #keys, 1000 do  -- HMGET in chunks: unpack's stack is bounded
    local docs = redis.call('HMGET', ARGV[2] .. ns .. ':entries',
                            unpack(keys, first, math.min(first + 999, #keys)))
    for j = 1, #docs do stored[first + j - 1] = docs[j] end
  end
end
local published = 0
for i = 4, #ARGV, 4 do
  if not KEYS[2] or stored[(i - 4) / 4 + 1] == ARGV[i + 1] then
    if ARGV[i + 3] == '' then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                 'entry', ARGV[i + 1], 'timelines', ARGV[i + 2])
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                 'entry', ARGV[i + 1], 'timelines', ARGV[i + 2], 'left', ARGV[i + 3])
    end
    published = published + 1
  end
end
return published
"""
# KEYS[1]: the pointer naming the active namespace. ARGV: key base, namespace ("" = the
# active one), then per entry: entry key, SHA-1 of its document. 1 where the stored
# document is that one. An EVAL like _PUBLISH: no script check or load of its own.
_CURRENT = """
local ns = ARGV[2]
if ns == '' then ns = redis.call('GET', KEYS[1]) or 'blue' end
local entries = ARGV[1] .. ns .. ':entries'
local flags = {}
for i = 3, #ARGV, 2 do
  local doc = redis.call('HGET', entries, ARGV[i])
  flags[#flags + 1] = (doc and redis.sha1hex(doc) == ARGV[i + 1]) and 1 or 0
end
return flags
"""
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_MAX_ID_PART = 2**64 - 1  # a stream id is two unsigned 64-bit numbers
_names_encoder = msgspec.json.Encoder()
_names_decoder = msgspec.json.Decoder(list[str])
log = structlog.get_logger("projection")
_Item = tuple[str, str | bytes, list[str], list[str]]


class LiveMessage(msgspec.Struct):
    """One entry as the live stream carries it; `id` is its stream id. `left`: the
    timelines a correction has just taken it off (none on a redelivery)."""

    id: str
    entry: Entry
    timelines: list[str]
    left: list[str] = msgspec.field(default_factory=list)


def bucket_of(seconds: float) -> str:
    return next((str(b) for b in BUCKETS if seconds <= b), "+Inf")


class LiveFeed:
    """Publishes applied entries to the live stream (the projection worker's side)."""

    def __init__(self, client: Any, read_model: ReadModel) -> None:
        self.client = client
        self.read_model = read_model

    async def publish(self, fresh: dict[str, Fresh], earlier: list[str],
                      events: int, seconds: float,
                      acknowledge: tuple[str, str, list[bytes]] | None = None) -> None:
        """Publish the current entry of everything a batch touched; record the batch.

        `fresh` holds the entries the apply has just written, so a correction is
        published as the entry it produced (with the timelines it left), and an
        entry changed twice in one batch once. `earlier` names entries of events a
        previous delivery applied (it crashed before acknowledging): those are read
        back from the read model, so a redelivered batch is published again.
        `acknowledge` (stream, group, entry ids): acknowledged in the same round trip,
        after the feed is written (one connection runs a pipeline in order).
        """
        on_cluster = isinstance(self.client, RedisCluster)
        items = await self._items(fresh, earlier)
        if on_cluster and items:
            items = await self._still_current(items)
        args: list[Any] = [MAXLEN, BASE, self.read_model.namespace or ""]
        for key, document, names, left in items:
            args += [key, document, _names_encoder.encode(names),
                     _names_encoder.encode(left) if left else ""]
        entries = len(items)
        pipe = self.client.pipeline(transaction=False)
        refused: BaseException | None = None
        # EVAL, not a registered script: in a pipeline redis-py sends SCRIPT EXISTS
        # first, a round trip of its own per batch, and after a restart EVALSHA answers
        # NOSCRIPT and costs a SCRIPT LOAD. The server caches the compiled body by its digest.
        feed_in_pipe = bool(entries) and not on_cluster
        if feed_in_pipe:
            pipe.eval(_PUBLISH, 2, LIVE, ACTIVE, *args)
        elif entries:
            # The live stream and the partition's stream are in different slots:
            # on a cluster the feed goes in a call of its own, before the ack.
            try:
                await self.client.eval(_PUBLISH, 1, LIVE, *args)
            except ResponseError as exc:
                refused = _unless_waiting(exc)
        _record_batch(pipe, events, seconds)
        if acknowledge is not None:
            stream, group, ids = acknowledge
            pipe.xack(stream, group, *ids)
        results = await pipe.execute(raise_on_error=False)
        if acknowledge is not None and isinstance(results[-1], BaseException):
            raise results[-1]  # not acknowledged: the batch comes again
        if feed_in_pipe and isinstance(results[0], ResponseError):
            refused = _unless_waiting(results[0])
        if refused is not None:
            log.error("live feed publish failed", error=str(refused), entries=entries)
        stats = [r for r in results[feed_in_pipe:feed_in_pipe + 4] if isinstance(r, Exception)]
        if stats:  # a histogram short of a batch: not worth publishing the feed again
            log.warning("batch statistics not recorded", error=str(stats[0]))

    async def _items(self, fresh: dict[str, Fresh], earlier: list[str]) -> list[_Item]:
        """(entry key, document, timelines, timelines left) of each entry to publish;
        the earlier ones as the read model holds them, byte for byte (the check compares
        bytes)."""
        items: list[_Item] = [(key, changed.doc, changed.timelines, changed.left)
                              for key, changed in fresh.items()]
        missing = [k for k in dict.fromkeys(earlier) if k not in fresh]
        for doc in await self.read_model.docs_of(missing) if missing else []:
            entry = entry_decoder.decode(doc)
            items.append((entry.key, doc, timelines(entry), []))
        return items

    async def _still_current(self, items: list[_Item]) -> list[_Item]:
        """The items whose stored document is the one to publish (on a cluster, where
        _PUBLISH cannot read the read model's slot)."""
        pairs = [x for key, doc, _, _ in items
                 for x in (key, hashlib.sha1(_bytes(doc)).hexdigest())]
        flags = await self.client.eval(_CURRENT, 1, ACTIVE, BASE,
                                       self.read_model.namespace or "", *pairs)
        return [item for item, flag in zip(items, flags, strict=True) if flag == 1]


def _unless_waiting(exc: ResponseError) -> ResponseError:
    """The feed's refusal, to log; raised instead when the server refuses only for a
    while (out of memory, say), so the caller waits and publishes again. On one server
    the acknowledgement may have gone through meanwhile (XACK is taken out of memory):
    a second one changes nothing. Connection errors propagate the same way."""
    if worth_waiting(exc):
        raise exc
    # Refused for good (say, a key of the wrong type): retrying cannot help, and the
    # feed is secondary, so the projection flows on.
    return exc


def _record_batch(pipe: Any, events: int, seconds: float) -> None:
    """Four commands: the batch-duration histogram /metrics reads."""
    pipe.hincrby(BATCH_STATS, "count", 1)
    pipe.hincrby(BATCH_STATS, "events", events)
    pipe.hincrbyfloat(BATCH_STATS, "sum", seconds)
    pipe.hincrby(BATCH_STATS, f"le:{bucket_of(seconds)}", 1)


def is_stream_id(text: str) -> bool:
    return bool(_STREAM_ID.fullmatch(text)) and max(_id_tuple(text)) <= _MAX_ID_PART


def matches(message: LiveMessage, entity: str | None = None, topic: str | None = None) -> bool:
    """Whether the entry is, or was until this change, on a timeline the filters name:
    a client following that timeline also learns that an entry left it."""
    names = [*message.timelines, *message.left]
    if entity and f"entity:{entity}" not in names:
        return False
    return not (topic and f"topic:{topic}" not in names)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class LiveReader:
    """Reads the live stream (the HTTP `/v1/live` and `timeline tail` side)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def last_id(self) -> str:
        """The id of the newest entry, so a reader starts after it ("0-0" when empty)."""
        newest = await self.client.xrevrange(LIVE, "+", "-", count=1)
        return _text(newest[0][0]) if newest else "0-0"

    async def missed_since(self, after: str) -> bool:
        """Whether entries after `after` may have been trimmed before this reader came back.

        Trimming leaves no record of what it removed (max-deleted-entry-id counts only
        XDEL), so this errs on the safe side: it says yes when `after` itself is gone.
        A reader that saw nothing ("0-0") missed whatever was ever trimmed.
        """
        try:
            info = await self.client.xinfo_stream(LIVE)
        except ResponseError as exc:  # no stream yet: nothing was ever trimmed
            if "no such key" in str(exc).lower():
                return False
            raise
        if after == "0-0":
            return int(info.get("entries-added", 0)) > int(info.get("length", 0))
        first = info.get("first-entry")
        if first:
            return _id_tuple(_text(first[0])) > _id_tuple(after)
        return _id_tuple(_text(info.get("last-generated-id") or "0-0")) > _id_tuple(after)

    async def read_checked(
        self, after: str, block_ms: int, count: int = 200
    ) -> tuple[list[LiveMessage], bool, str]:
        """Entries after `after`, whether some after it may have been trimmed unread
        (the entries returned then start past the gap): a reader slower than the cap,
        and the id to read after next: past every row read, those that could not be
        decoded too.

        Checked after the read: `after` still in the stream then was there at the read
        too, as trimming only drops the oldest entries.
        """
        messages, through = await self._read(after, block_ms, count)
        return messages, bool(through != after) and await self.missed_since(after), through

    async def read(self, after: str, block_ms: int, count: int = 200) -> list[LiveMessage]:
        """Entries after `after`, waiting up to `block_ms` for the first one."""
        return (await self._read(after, block_ms, count))[0]

    async def _read(
        self, after: str, block_ms: int, count: int
    ) -> tuple[list[LiveMessage], str]:
        reply = await self.client.xread({LIVE: after}, count=count, block=block_ms)
        if not reply:
            return [], after
        _, rows = reply[0]
        messages = [m for m in (_message(_text(i), fields) for i, fields in rows) if m]
        return messages, _text(rows[-1][0])


def _message(ident: str, fields: dict[bytes, bytes]) -> LiveMessage | None:
    """The row as a message; None for one this code cannot read (written by a worker of
    another version, say), skipped: every reader that reached it failed, in a loop."""
    try:
        return LiveMessage(ident, entry_decoder.decode(fields[b"entry"]),
                           _names_decoder.decode(fields[b"timelines"]),
                           _names_decoder.decode(fields.get(b"left", b"[]")))
    except (KeyError, msgspec.DecodeError) as exc:  # ValidationError is a DecodeError
        log.warning("live entry unreadable, skipped", stream_id=ident, error=str(exc))
        return None


def _id_tuple(ident: str) -> tuple[int, int]:
    ms, _, seq = ident.partition("-")
    return int(ms), int(seq or 0)
