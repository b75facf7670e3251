-- Append one batch to one partition atomically, or write nothing.
-- KEYS: log, ids, versions, head
-- ARGV[1]: the head the caller chained from ("sequence|hashhex")
-- ARGV[2]: msgpack list of {key, digest, type, subject, expectedversion (-1: none), json,
--          hashhex, sequence, target key of an amendment or ""}
-- Reply: {"ok", {status, sequence}...} after writing, or
--        {"recheck", {status, sequence}...} when some entries are not new (nothing written), or
--        {"head", "sequence|hashhex"} when the chain moved (nothing written).
-- status: 0 appended, 1 duplicate, 2 id-reused, 3 version, 4 target missing (an amendment
-- whose target is neither stored nor appended earlier in this batch)
local log, ids, versions, head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entries = cmsgpack.unpack(ARGV[2])

local statuses, all_new = {}, true
local counts, appending = {}, {}
for i, e in ipairs(entries) do
  local known = redis.call('HGET', ids, e[1])
  if e[9] ~= '' and not appending[e[9]] and redis.call('HEXISTS', ids, e[9]) == 0 then
    statuses[i] = {4, 0}
    all_new = false
  elseif known then
    local seq, digest = string.match(known, '^(%d+)|([^|]*)|')
    statuses[i] = {digest == e[2] and 1 or 2, tonumber(seq)}
    all_new = false
  else
    local subject = e[4]
    if counts[subject] == nil then
      counts[subject] = tonumber(redis.call('HGET', versions, subject) or '0')
    end
    if e[5] >= 0 and e[5] ~= counts[subject] then
      statuses[i] = {3, counts[subject]}
      all_new = false
    else
      counts[subject] = counts[subject] + 1
      appending[e[1]] = true
      statuses[i] = {0, 0}
    end
  end
end
if not all_new then
  return {'recheck', statuses}
end

local current = redis.call('HMGET', head, 'sequence', 'hash')
local current_head = (current[1] or '0') .. '|' .. (current[2] or string.rep('0', 64))
if current_head ~= ARGV[1] then
  return {'head', current_head}
end

local seq = tonumber(current[1] or '0')
for i, e in ipairs(entries) do
  seq = seq + 1
  redis.call('XADD', log, seq .. '-0', 'event', e[6], 'hash', e[7])
  redis.call('HSET', ids, e[1], seq .. '|' .. e[2] .. '|' .. e[3] .. '|' .. e[4])
  redis.call('HINCRBY', versions, e[4], 1)
  statuses[i] = {0, seq}
end
redis.call('HSET', head, 'sequence', seq, 'hash', entries[#entries][7])
return {'ok', statuses}
