-- Read one page of a timeline with its filters, in one call.
-- KEYS: timeline zset, entries hash, with-entity zset (or the timeline again)
-- ARGV: 1 order ("asc"|"desc"), 2 lower lex bound, 3 upper lex bound,
--       4 minimum latest day (YYYYMMDD or ""), 5 types ("|t1|t2|" or ""),
--       6 include retracted ("1"|"0"), 7 use with-entity ("1"|"0"), 8 limit,
--       9 most members to examine
-- Reply: {cursor member or "", doc, doc, ...}
local zset, entries, with_set = KEYS[1], KEYS[2], KEYS[3]
local desc = ARGV[1] == 'desc'
local low, high, min_latest, types = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local include_retracted, use_with = ARGV[6] == '1', ARGV[7] == '1'
local limit, budget = tonumber(ARGV[8]), tonumber(ARGV[9])

local function accept(m)
  local first = string.find(m, '\31', 1, true)
  local second = string.find(m, '\31', first + 1, true)
  local latest = string.sub(m, second + 1, second + 8)
  local flag = string.sub(m, second + 9, second + 9)
  if min_latest ~= '' and latest < min_latest then return nil end
  if flag == 'r' and not include_retracted then return nil end
  if types ~= '' and not string.find(types, '|' .. string.sub(m, second + 10) .. '|', 1, true) then
    return nil
  end
  if use_with and not redis.call('ZSCORE', with_set, m) then return nil end
  return string.sub(m, 30, second - 1)
end

local keys, members = {}, {}
local examined, cursor, chunk = 0, '', math.min(math.max(limit * 2, 64), 1000)
local lo, hi = low, high
while #keys < limit and examined < budget do
  local batch
  if desc then
    batch = redis.call('ZRANGE', zset, hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  else
    batch = redis.call('ZRANGE', zset, lo, hi, 'BYLEX', 'LIMIT', 0, chunk)
  end
  if #batch == 0 then break end
  for _, m in ipairs(batch) do
    examined = examined + 1
    cursor = m
    local key = accept(m)
    if key then
      keys[#keys + 1] = key
      members[#members + 1] = m
      if #keys == limit then break end
    end
  end
  if desc then hi = '(' .. cursor else lo = '(' .. cursor end
  if #batch < chunk and #keys < limit then cursor = '' break end
end
-- One more look ahead tells whether a next page exists at all.
if cursor ~= '' then
  local rest
  if desc then
    rest = redis.call('ZRANGE', zset, '(' .. cursor, lo, 'BYLEX', 'REV', 'LIMIT', 0, 1)
  else
    rest = redis.call('ZRANGE', zset, '(' .. cursor, hi, 'BYLEX', 'LIMIT', 0, 1)
  end
  if #rest == 0 then cursor = '' end
end
local reply = {cursor}
if #keys > 0 then
  local docs = redis.call('HMGET', entries, unpack(keys))
  for _, d in ipairs(docs) do reply[#reply + 1] = d end
end
return reply
