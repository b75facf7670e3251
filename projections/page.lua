-- Read one page of a timeline with its filters, in one call, live or as of an instant.
-- KEYS[1]: the pointer naming the active namespace (every key below shares its slot)
-- ARGV: 1 key base, 2 namespace ("" = active), 3 timeline name, 4 with-entity name or "",
--       5 order ("asc"|"desc"), 6 lower lex bound, 7 upper lex bound,
--       8 minimum latest day (YYYYMMDD or ""), 9 types ("|t1|t2|" or ""),
--       10 include retracted ("1"|"0"), 11 limit, 12 most members to examine,
--       13 as-of stamp (20 digits) or "" for the live timeline
-- As of an instant the walk merges the live set (entries never amended, recorded by
-- then) with the "ever" set (versions of amended entries that held then), in the
-- same order (projections/asof.py). A cursor is the last member examined, of either.
-- Reply: {cursor member or "", doc, doc, ...}
local base, ns = ARGV[1], ARGV[2]
if ns == '' then ns = redis.call('GET', KEYS[1]) or 'blue' end
local function key(name) return base .. ns .. ':' .. name end
local as_of = ARGV[13]
local entries, superseded = key('entries'), key('superseded')
local desc = ARGV[5] == 'desc'
local low, high, min_latest, types = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local include_retracted = ARGV[10] == '1'
local limit, budget = tonumber(ARGV[11]), tonumber(ARGV[12])
local with_name = ARGV[4]
local OPEN = string.rep('9', 20)
local chunk = math.min(math.max(limit * 2, 64), 1000)

-- Byte order, as sorted sets order members (Lua's `<` follows the server's locale).
local function before(x, y)
  for i = 1, math.min(#x, #y) do
    local p, q = string.byte(x, i), string.byte(y, i)
    if p ~= q then return p < q end
  end
  return #x < #y
end

-- The hash and field holding the document of an accepted member, or nil.
-- `ever`: the member is a version from the as-of index.
local function accept(m, ever)
  local first = string.find(m, '\31', 1, true)
  local second = string.find(m, '\31', first + 1, true)
  local latest = string.sub(m, second + 1, second + 8)
  local flag = string.sub(m, second + 9, second + 9)
  local id = string.sub(m, 30, second - 1)
  local kind, hash, field, with_set = nil, entries, id, key('tl:' .. with_name)
  if ever then
    local sep = string.find(m, '\30', second, true)
    kind = string.sub(m, second + 10, sep - 1)
    local added = string.sub(m, sep + 1, sep + 20)
    local removed = string.sub(m, sep + 21, sep + 40)
    if before(as_of, added) or not before(as_of, removed) then return nil end
    if removed ~= OPEN then
      hash, field = superseded, id .. '\31' .. string.sub(m, sep + 41)
    end
    with_set = key('ever:' .. with_name)
  else
    kind = string.sub(m, second + 10)
    if as_of ~= '' and (flag ~= 'a' or before(as_of, string.sub(m, 10, 29))) then return nil end
  end
  if min_latest ~= '' and before(latest, min_latest) then return nil end
  if flag == 'r' and not include_retracted then return nil end
  if types ~= '' and not string.find(types, '|' .. kind .. '|', 1, true) then
    return nil
  end
  if with_name ~= '' and not redis.call('ZSCORE', with_set, m) then return nil end
  return hash, field
end

-- One sorted set walked in order, a chunk at a time.
local function walk(zset, ever)
  return {zset = zset, ever = ever, buf = {}, i = 1, lo = low, hi = high, done = false}
end

local function head(w)
  if w.i > #w.buf then
    if w.done then return nil end
    if desc then
      w.buf = redis.call('ZRANGE', w.zset, w.hi, w.lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
    else
      w.buf = redis.call('ZRANGE', w.zset, w.lo, w.hi, 'BYLEX', 'LIMIT', 0, chunk)
    end
    w.i = 1
    if #w.buf < chunk then w.done = true end
    if #w.buf == 0 then return nil end
    if desc then w.hi = '(' .. w.buf[#w.buf] else w.lo = '(' .. w.buf[#w.buf] end
  end
  return w.buf[w.i]
end

local walks = {walk(key('tl:' .. ARGV[3]), false)}
if as_of ~= '' then walks[2] = walk(key('ever:' .. ARGV[3]), true) end

local hashes, fields = {}, {}
local examined, cursor, ended = 0, '', false
while #fields < limit and examined < budget do
  local pick, m = nil, nil
  for _, w in ipairs(walks) do
    local candidate = head(w)
    if candidate and (not m or (desc and before(m, candidate))
                      or (not desc and before(candidate, m))) then
      pick, m = w, candidate
    end
  end
  if not pick then ended = true break end
  pick.i = pick.i + 1
  examined = examined + 1
  cursor = m
  local hash, field = accept(m, pick.ever)
  if hash then
    hashes[#hashes + 1] = hash
    fields[#fields + 1] = field
  end
end
-- Whether anything lies beyond the cursor tells whether a next page exists.
if ended then
  cursor = ''
elseif cursor ~= '' then
  local more = false
  for _, w in ipairs(walks) do
    if w.i <= #w.buf then more = true end
  end
  if not more then
    for _, w in ipairs(walks) do
      local rest
      if desc then
        rest = redis.call('ZRANGE', w.zset, '(' .. cursor, low, 'BYLEX', 'REV', 'LIMIT', 0, 1)
      else
        rest = redis.call('ZRANGE', w.zset, '(' .. cursor, high, 'BYLEX', 'LIMIT', 0, 1)
      end
      if #rest > 0 then more = true end
    end
  end
  if not more then cursor = '' end
end
local reply = {cursor}
for i, field in ipairs(fields) do
  reply[#reply + 1] = redis.call('HGET', hashes[i], field)
end
return reply
