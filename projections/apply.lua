-- Apply one partition's changes to the read model, in log order, once.
-- KEYS: applied, entries, history, maxspan, names, kinds, aliases (all in one slot)
-- ARGV[1]: partition; ARGV[2]: key prefix of timelines (same hash tag);
-- ARGV[3]: msgpack list of {sequence, key, member, doc, timelines, old_member,
--          old_timelines, span, history, names, alias}
-- A change whose sequence is already applied is skipped, so redelivery of any
-- suffix changes nothing. Reply: {"ok", applied} or {"gap", applied}.
local applied_key, entries, history, maxspan, names, kinds, aliases =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local partition, prefix = ARGV[1], ARGV[2]
local changes = cmsgpack.unpack(ARGV[3])
local applied = tonumber(redis.call('HGET', applied_key, partition) or '0')

for _, c in ipairs(changes) do
  local seq = c[1]
  if seq > applied then
    if seq ~= applied + 1 then
      redis.call('HSET', applied_key, partition, applied)
      return {'gap', applied}
    end
    if c[6] ~= '' then
      for _, name in ipairs(c[7]) do
        redis.call('ZREM', prefix .. name, c[6])
      end
    end
    if c[3] ~= '' then
      for _, name in ipairs(c[5]) do
        redis.call('ZADD', prefix .. name, 0, c[3])
        local span = tonumber(redis.call('HGET', maxspan, name) or '-1')
        if c[8] > span then
          redis.call('HSET', maxspan, name, c[8])
        end
      end
      redis.call('HSET', entries, c[2], c[4])
      redis.call('HSET', history, c[2], c[9])
    end
    for _, n in ipairs(c[10]) do
      if n[2] ~= '' then redis.call('HSET', names, n[1], n[2]) end
      if n[3] ~= '' then redis.call('HSET', kinds, n[1], n[3]) end
    end
    if c[11] ~= '' then
      redis.call('HSET', aliases, c[11], c[2])
    end
    applied = seq
  end
end
redis.call('HSET', applied_key, partition, applied)
return {'ok', applied}
