-- One chunk of a comparison of two copies of a read-model key (same slot).
-- KEYS[1]: the key walked (a); KEYS[2]: the key checked against it (b)
-- ARGV[1]: "hash" | "hash-missing" | "zset"; ARGV[2]: cursor ("0" / "-" to start);
-- ARGV[3]: chunk size
-- hash:         fields of a whose value differs in b: {next cursor, {field, a, b|nil}...}
-- hash-missing: fields of a absent from b:         {next cursor, {field, a}...}
-- zset:         members of a absent from b:        {last member or "", {member...}}
-- Only differences travel back, so comparing copies costs the server's time, not ours.
local a, b, mode, cursor, count = KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3])
local found = {}
if mode == 'zset' then
  local members = redis.call('ZRANGE', a, cursor, '+', 'BYLEX', 'LIMIT', 0, count)
  for _, m in ipairs(members) do
    if not redis.call('ZSCORE', b, m) then found[#found + 1] = m end
  end
  local last = ''
  if #members == count then last = '(' .. members[#members] end
  return {last, found}
end
local reply = redis.call('HSCAN', a, cursor, 'COUNT', count)
local pairs_ = reply[2]
for i = 1, #pairs_, 2 do
  local field, value = pairs_[i], pairs_[i + 1]
  local other = redis.call('HGET', b, field)
  if mode == 'hash-missing' then
    if not other then found[#found + 1] = {field, value} end
  elseif other ~= value then
    found[#found + 1] = {field, value, other}
  end
end
return {reply[1], found}
