-- Write one batch of a restored partition, chained on from the head we left.
-- KEYS: log, ids, versions, head (one partition: one slot)
-- ARGV[1]: the head this batch continues ("sequence|hashhex"; "0|000..." for the first)
-- ARGV[2]: msgpack list of {sequence, event json, hash, ids key, ids value, subject}
-- Reply: {"ok"} after writing, {"head", current} (nothing written) if the partition moved.
local current = redis.call('HMGET', KEYS[4], 'sequence', 'hash')
local head = (current[1] or '0') .. '|' .. (current[2] or string.rep('0', 64))
if head ~= ARGV[1] then
  return {'head', head}
end
local entries = cmsgpack.unpack(ARGV[2])
for _, e in ipairs(entries) do
  redis.call('XADD', KEYS[1], e[1] .. '-0', 'event', e[2], 'hash', e[3])
  redis.call('HSET', KEYS[2], e[4], e[5])
  redis.call('HINCRBY', KEYS[3], e[6], 1)
end
local last = entries[#entries]
redis.call('HSET', KEYS[4], 'sequence', last[1], 'hash', last[3])
return {'ok'}
