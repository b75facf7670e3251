-- Small reads of the read model, each resolving the namespace in the same call,
-- so a read never mixes the copy before a promote with the one after.
-- KEYS[1]: the pointer naming the active namespace; KEYS[2]: the promote fence
-- ARGV[1]: key base; ARGV[2]: namespace ("" = active); ARGV[3]: operation; then its arguments
-- Every reply starts with the namespace read.
local base, ns = ARGV[1], ARGV[2]
if ns == '' then ns = redis.call('GET', KEYS[1]) or 'blue' end
local function key(name) return base .. ns .. ':' .. name end
local op = ARGV[3]
local rest = {}
for i = 4, #ARGV do rest[#rest + 1] = ARGV[i] end

if op == 'state' then
  -- rest: check fence ("1"|"0"), partition, entry keys...
  -- While a promote holds the fence, a worker waits rather than fold from a copy
  -- that is about to stop being the live one.
  if rest[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {ns, 'fenced'} end
  local applied = redis.call('HGET', key('applied'), rest[2]) or '0'
  local docs, hists = {}, {}
  if #rest > 2 then
    local wanted = {}
    for i = 3, #rest do wanted[#wanted + 1] = rest[i] end
    docs = redis.call('HMGET', key('entries'), unpack(wanted))
    hists = redis.call('HMGET', key('history'), unpack(wanted))
  end
  return {ns, applied, docs, hists}
elseif op == 'applied' then
  return {ns, redis.call('HGETALL', key('applied'))}
elseif op == 'entry' then
  -- rest: entry key (an amendment's key resolves to its target's)
  local target = redis.call('HGET', key('aliases'), rest[1]) or rest[1]
  return {ns, target, redis.call('HGET', key('entries'), target),
          redis.call('HGET', key('history'), target)}
elseif op == 'superseded' then
  return {ns, redis.call('HGET', key('superseded'), rest[1])}
elseif op == 'names' then
  return {ns, redis.call('HMGET', key('names'), unpack(rest))}
elseif op == 'kind' then
  return {ns, redis.call('HGET', key('kinds'), rest[1])}
elseif op == 'members' then
  return {ns, redis.call('ZRANGE', key('tl:' .. rest[1]), 0, -1)}
elseif op == 'docs' then
  return {ns, redis.call('HMGET', key('entries'), unpack(rest))}
elseif op == 'timelines' then
  return {ns, redis.call('HKEYS', key('maxspan'))}
end
return redis.error_reply('unknown read operation ' .. tostring(op))
