-- Apply one partition's batch of changes to the read model, in log order, once.
-- KEYS[1]: the pointer naming the active namespace (every key below shares its slot)
-- ARGV[1]: key base ("timeline:{rm}:"); ARGV[2]: namespace, "" for the active one;
-- ARGV[3]: the namespace the caller read its state from ("" = do not check);
-- ARGV[4]: partition; ARGV[5]: msgpack payload (projections/writes.py encode_batch):
--   {first, last, {{timeline, member...}...}, {key, doc...}, {amendment...},
--    {timeline, span...}, {id, name, stamp...}, {id, kind, stamp...}}
--   A new entry has no history: its one version is the entry itself (store.py reads it so).
--   an amendment: {sequence, key, member, doc, timelines, old_member, old_timelines,
--    span, history, names, alias, name_stamp, ever_suffix, old_open_suffix,
--    old_closed_suffix, old_doc_sequence}; the ever suffixes (projections/asof.py) are
--    "" where a version has no place in the as-of index.
-- The batch holds sequences first..last and applies whole or not at all: a batch
-- already applied changes nothing (redelivery), one that overlaps what is applied
-- is "stale" (the caller re-reads its state and re-folds), one that starts past the
-- next sequence is a gap. A batch folded from another namespace's state (the
-- pointer moved in between) is refused like a gap: the caller re-reads and re-folds.
-- KEYS[2]: the promote fence; ARGV[6] "1": refuse ("fenced") while a promote holds it,
-- for a batch folded without reading any state (no amendments), which did not wait for
-- the fence the state read waits for (projections/runner.py).
-- Reply: {"ok"|"done"|"gap"|"stale"|"fenced", applied, ns}; "done": every sequence of the
-- batch was applied before, nothing written.
local base, ns = ARGV[1], ARGV[2]
if ns == '' then ns = redis.call('GET', KEYS[1]) or 'blue' end
local function key(name) return base .. ns .. ':' .. name end
local applied_key, entries, history = key('applied'), key('entries'), key('history')
local maxspan, names, kinds, stamps = key('maxspan'), key('names'), key('kinds'), key('stamps')
local aliases, superseded = key('aliases'), key('superseded')
local tl, ever = key('tl:'), key('ever:')
local partition = ARGV[4]
local applied = tonumber(redis.call('HGET', applied_key, partition) or '0')
if ARGV[3] ~= '' and ARGV[3] ~= ns then
  return {'gap', applied, ns}
end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {'fenced', applied, ns}
end
local batch = cmsgpack.unpack(ARGV[5])
local first, last = batch[1], batch[2]
if last <= applied then return {'done', applied, ns} end
if first <= applied then return {'stale', applied, ns} end
if first ~= applied + 1 then return {'gap', applied, ns} end

-- One command for many arguments, in slices that stay under Lua's unpack() limit.
local function bulk(command, target, args, from, step)
  for i = from, #args, step do
    local call = {command, target}
    for j = i, math.min(i + step - 1, #args) do call[#call + 1] = args[j] end
    redis.call(unpack(call))
  end
end

-- HMGET of many fields, in slices like `bulk`; one reply in field order.
local function hmget(hash, fields)
  local found = {}
  for i = 1, #fields, 2000 do
    local slice = {}
    for j = i, math.min(i + 1999, #fields) do slice[#slice + 1] = fields[j] end
    local reply = redis.call('HMGET', hash, unpack(slice))
    for j = 1, #slice do found[#found + 1] = reply[j] end
  end
  return found
end

-- New entries: one ZADD per timeline, one HSET for their documents.
for _, members in ipairs(batch[3]) do
  if #members == 2 then -- most entity and pair timelines get one entry per batch
    redis.call('ZADD', tl .. members[1], 0, members[2])
  else
    local scored = {}
    for i = 2, #members do
      scored[#scored + 1] = 0
      scored[#scored + 1] = members[i]
    end
    bulk('ZADD', tl .. members[1], scored, 1, 2000)
  end
end
bulk('HSET', entries, batch[4], 1, 2000)

-- Amendments, one by one in log order, after the entries they amend exist.
for _, c in ipairs(batch[5]) do
  if c[6] ~= '' then
    local old_doc = redis.call('HGET', entries, c[2])
    if old_doc then
      redis.call('HSET', superseded, c[2] .. '\31' .. c[16], old_doc)
    end
    for _, name in ipairs(c[7]) do
      redis.call('ZREM', tl .. name, c[6])
      if c[14] ~= '' then redis.call('ZREM', ever .. name, c[6] .. c[14]) end
      redis.call('ZADD', ever .. name, 0, c[6] .. c[15])
    end
  end
  if c[3] ~= '' then
    for _, name in ipairs(c[5]) do
      redis.call('ZADD', tl .. name, 0, c[3])
      if c[13] ~= '' then redis.call('ZADD', ever .. name, 0, c[3] .. c[13]) end
    end
    redis.call('HSET', entries, c[2], c[4])
    redis.call('HSET', history, c[2], c[9])
  end
  if c[11] ~= '' then
    redis.call('HSET', aliases, c[11], c[2])
  end
end

-- The longest span per timeline only grows.
local spans = batch[6]
if #spans > 0 then
  local fields = {}
  for i = 1, #spans, 2 do fields[#fields + 1] = spans[i] end
  local known = hmget(maxspan, fields)
  local grown = {}
  for i = 1, #fields do
    local span = spans[2 * i]
    if not known[i] or tonumber(known[i]) < span then
      grown[#grown + 1] = fields[i]
      grown[#grown + 1] = span
    end
  end
  bulk('HSET', maxspan, grown, 1, 2000)
end

-- Latest by recorded time (then position), not by arrival: partitions are
-- applied concurrently, and a rebuild must pick the same name as the live copy.
-- (Stamps are equal-length digit strings: any collation orders them as numbers.)
local function remember(hash, prefix, found)
  if #found == 0 then return end
  local fields = {}
  for i = 1, #found, 3 do fields[#fields + 1] = prefix .. found[i] end
  local seen = hmget(stamps, fields)
  local values, stamped = {}, {}
  for i = 1, #fields do
    local at = found[3 * i]
    if not seen[i] or seen[i] <= at then
      values[#values + 1] = found[3 * i - 2]
      values[#values + 1] = found[3 * i - 1]
      stamped[#stamped + 1] = fields[i]
      stamped[#stamped + 1] = at
    end
  end
  bulk('HSET', hash, values, 1, 2000)
  bulk('HSET', stamps, stamped, 1, 2000)
end
remember(names, 'n:', batch[7])
remember(kinds, 'k:', batch[8])

redis.call('HSET', applied_key, partition, last)
return {'ok', last, ns}
