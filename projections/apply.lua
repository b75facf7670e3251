-- Apply one partition's changes to the read model, in log order, once.
-- KEYS[1]: the pointer naming the active namespace (every key below shares its slot)
-- ARGV[1]: key base ("timeline:{rm}:"); ARGV[2]: namespace, "" for the active one;
-- ARGV[3]: the namespace the caller read its state from ("" = do not check);
-- ARGV[4]: partition; ARGV[5]: msgpack list of changes:
--   {sequence, key, member, doc, timelines, old_member, old_timelines, span, history,
--    names {{id, name, kind}}, alias, name_stamp, ever_suffix, old_open_suffix,
--    old_closed_suffix, old_doc_sequence}
--   The ever suffixes (projections/asof.py) are "" where a version has no place in the
--   as-of index: an entry enters it with its first amendment, its first version closed.
-- A change whose sequence is already applied is skipped, so redelivery of any
-- suffix changes nothing. A batch folded from another namespace's state (the
-- pointer moved in between) is refused like a gap: the caller re-reads and re-folds.
-- Reply: {"ok", applied, ns} or {"gap", applied, ns}.
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
local changes = cmsgpack.unpack(ARGV[5])

-- Latest by recorded time (then position), not by arrival: partitions are
-- applied concurrently, and a rebuild must pick the same name as the live copy.
local function remember(hash, field, value, at)
  local seen = redis.call('HGET', stamps, field)
  -- (equal-length digit strings: any collation orders them as numbers)
  if not seen or seen <= at then
    redis.call('HSET', hash, string.sub(field, 3), value)
    redis.call('HSET', stamps, field, at)
  end
end

for _, c in ipairs(changes) do
  local seq = c[1]
  if seq > applied then
    if seq ~= applied + 1 then
      redis.call('HSET', applied_key, partition, applied)
      return {'gap', applied, ns}
    end
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
        local span = tonumber(redis.call('HGET', maxspan, name) or '-1')
        if c[8] > span then
          redis.call('HSET', maxspan, name, c[8])
        end
      end
      redis.call('HSET', entries, c[2], c[4])
      redis.call('HSET', history, c[2], c[9])
    end
    for _, n in ipairs(c[10]) do
      if n[2] ~= '' then remember(names, 'n:' .. n[1], n[2], c[12]) end
      if n[3] ~= '' then remember(kinds, 'k:' .. n[1], n[3], c[12]) end
    end
    if c[11] ~= '' then
      redis.call('HSET', aliases, c[11], c[2])
    end
    applied = seq
  end
end
redis.call('HSET', applied_key, partition, applied)
return {'ok', applied, ns}
