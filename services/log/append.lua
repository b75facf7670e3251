-- Append one batch to one partition atomically, or write nothing.
-- KEYS: log, ids, versions, head, and optionally the owners hash (see below)
-- ARGV[1]: the head the caller chained from ("sequence|hashhex")
-- ARGV[2]: msgpack list of {key, digest, type, subject, expectedversion (-1: none), json,
--          hashhex, target key of an amendment or "", the target's type the amendment was
--          checked against or ""}
-- ARGV[3]: with KEYS[5], this partition's number: the script also claims each identity
--          for it, as claim.lua does (an identity another partition owns: status 2), but
--          only with the write: an entry refused (a version, a missing target) leaves its
--          identity free for a re-send under the right subject. Only where every key is in
--          one slot (not on a cluster): one round trip, not two.
-- Reply: {"ok", first sequence} after writing (entry i got first + i - 1), or
--        {"recheck", {status, sequence}...} when some entries are not new (nothing written), or
--        {"head", "sequence|hashhex"} when the chain moved (nothing written).
-- status: 0 appended, 1 duplicate, 2 id-reused, 3 version, 4 target missing (an amendment
-- whose target is neither stored nor appended earlier in this batch with the type and
-- subject it was checked against: the copy it was checked against was not written)
-- The server's cost is mostly per redis.call: per event only XADD; the dedupe and
-- version reads and the index writes are one call per CHUNK entries.
local log, ids, versions, head = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entries = cmsgpack.unpack(ARGV[2])
local CHUNK = 500 -- arguments per call stay far below Lua's unpack limit

local function each_chunk(list, per_item, call)
  for first = 1, #list, CHUNK do
    local args = {}
    for i = first, math.min(first + CHUNK - 1, #list) do
      per_item(args, list[i])
    end
    call(args)
  end
end

local foreign, fresh = {}, {}
local owners, home = KEYS[5], ARGV[3]
if owners then
  local owned, claimed = {}, {}
  each_chunk(entries, function(args, e) args[#args + 1] = e[1] end, function(args)
    local found = redis.call('HMGET', owners, unpack(args))
    for _, value in ipairs(found) do owned[#owned + 1] = value end
  end)
  for i, e in ipairs(entries) do
    local owner = owned[i] or claimed[e[1]]
    if not owner then
      claimed[e[1]] = home
      fresh[#fresh + 1] = e
    elseif owner ~= home then
      foreign[i] = true
    end
  end
end

local known = {}
each_chunk(entries, function(args, e) args[#args + 1] = e[1] end, function(args)
  local found = redis.call('HMGET', ids, unpack(args))
  for _, value in ipairs(found) do known[#known + 1] = value end
end)

local counts = {}
for i, e in ipairs(entries) do
  if not known[i] then counts[e[4]] = false end -- read below, in one call
end
local subjects = {}
for subject in pairs(counts) do subjects[#subjects + 1] = subject end
each_chunk(subjects, function(args, subject) args[#args + 1] = subject end, function(args)
  local found = redis.call('HMGET', versions, unpack(args))
  for j, value in ipairs(found) do counts[args[j]] = tonumber(value or '0') end
end)

-- identity -> "type|subject" of each entry this batch appends
local appending = {}

-- Whether an amendment's target is written (stored, or appended earlier in this batch)
-- as the caller checked it: another request may have stored the same identity since,
-- as something else, after the copy in this request the check judged by was refused.
local function target_as_checked(e)
  local record = appending[e[8]]
  if not record then
    local stored = redis.call('HGET', ids, e[8])
    if not stored then return false end
    record = string.match(stored, '^%d+|[^|]*|(.*)$')
  end
  return record == e[9] .. '|' .. e[4]
end

-- Statuses as two arrays of numbers: no table per entry when, as usual, all are new.
local codes, seqs, all_new = {}, {}, true
for i, e in ipairs(entries) do
  local code, seq = 0, 0
  if foreign[i] then
    code = 2
  elseif e[8] ~= '' and not target_as_checked(e) then
    code = 4
  elseif known[i] then
    local stored_seq, digest = string.match(known[i], '^(%d+)|([^|]*)|')
    code, seq = digest == e[2] and 1 or 2, tonumber(stored_seq)
  elseif e[5] >= 0 and e[5] ~= counts[e[4]] then
    code, seq = 3, counts[e[4]]
  else
    counts[e[4]] = counts[e[4]] + 1
    appending[e[1]] = e[3] .. '|' .. e[4]
  end
  codes[i], seqs[i] = code, seq
  all_new = all_new and code == 0
end
if not all_new then
  local statuses = {}
  for i = 1, #entries do statuses[i] = {codes[i], seqs[i]} end
  return {'recheck', statuses}
end

local current = redis.call('HMGET', head, 'sequence', 'hash')
local current_head = (current[1] or '0') .. '|' .. (current[2] or string.rep('0', 64))
if current_head ~= ARGV[1] then
  return {'head', current_head}
end

each_chunk(fresh, function(args, e)
  args[#args + 1] = e[1]
  args[#args + 1] = home
end, function(args) redis.call('HSET', owners, unpack(args)) end)
local first = tonumber(current[1] or '0') + 1
local seq = first - 1
for _, e in ipairs(entries) do
  seq = seq + 1
  redis.call('XADD', log, seq .. '-0', 'event', e[6], 'hash', e[7])
end
seq = first - 1
each_chunk(entries, function(args, e)
  seq = seq + 1
  args[#args + 1] = e[1]
  args[#args + 1] = seq .. '|' .. e[2] .. '|' .. e[3] .. '|' .. e[4]
end, function(args) redis.call('HSET', ids, unpack(args)) end)
each_chunk(subjects, function(args, subject)
  args[#args + 1] = subject
  args[#args + 1] = counts[subject]
end, function(args) redis.call('HSET', versions, unpack(args)) end)
redis.call('HSET', head, 'sequence', seq, 'hash', entries[#entries][7])
return {'ok', first}
