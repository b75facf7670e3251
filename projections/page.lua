-- Read one page of a timeline with its filters, in one call, live or as of an instant.
-- KEYS[1]: the pointer naming the active namespace (every key below shares its slot)
-- ARGV: 1 key base, 2 namespace ("" = active), 3 timeline name, 4 with-entity name or "",
--       5 order ("asc"|"desc"), 6 lower lex bound or "" (from the minimum latest day and
--       the timeline's longest span), 7 upper lex bound,
--       8 minimum latest day (YYYYMMDD or ""), 9 types ("|t1|t2|" or ""),
--       10 include retracted ("1"|"0"), 11 limit, 12 most members to examine,
--       13 as-of stamp (20 digits) or "" for the live timeline
-- As of an instant the walk merges the live set (entries never amended, recorded by
-- then) with the "ever" set (versions of amended entries that held then), in the
-- same order (projections/asof.py). A cursor is the last member examined, of either.
-- Reply: {cursor member or "", {doc, doc, ...}}
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
local find, sub, byte = string.find, string.sub, string.byte
local RETRACTED, ACTIVE = byte('r'), byte('a')
-- Unfiltered, limit + 1 members make a page and tell whether another follows; an
-- eighth more lets a page skip a few retracted members without a second chunk.
local chunk = math.min(limit + 1 + math.ceil(limit / 8), 1000)
-- Accepted and examined members so far: what the next chunk is sized from.
local n, examined = 0, 0

-- Byte order of two members, as sorted sets order them. Lua's `<` follows the
-- server's locale, but any collation orders equal-length digit strings as numbers:
-- the 29-digit prefixes (days, precision, recorded time) and stamps are compared
-- with `<`, the rest byte by byte.
local function before(x, y)
  local p, q = sub(x, 1, 29), sub(y, 1, 29)
  if p ~= q then return p < q end
  for i = 30, math.min(#x, #y) do
    local a, b = byte(x, i), byte(y, i)
    if a ~= b then return a < b end
  end
  return #x < #y
end

-- Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's
-- days_from_civil / civil_from_days).
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- Entries overlapping `from` start no earlier than the timeline's longest span
-- before it (never before 0001-01-01): the lower bound of the walk.
local function lower_bound(day)
  local span = tonumber(redis.call('HGET', key('maxspan'), ARGV[3]) or '0')
  local z = days(tonumber(string.sub(day, 1, 4)), tonumber(string.sub(day, 5, 6)),
                 tonumber(string.sub(day, 7, 8)))
  local y, m, d = civil(math.max(days(1, 1, 1), z - span))
  return string.format('[%04d%02d%02d', y, m, d)
end

if low == '' then
  low = min_latest ~= '' and lower_bound(min_latest) or '-'
end

-- The hash and field holding the document of an accepted member, or nil.
-- `ever`: the member is a version from the as-of index. Fields are cut out of the
-- member only when a filter needs them: most pages filter on nothing.
local function accept(m, ever)
  -- the source starts after day (8), precision (1) and recorded time (20)
  local first = find(m, '\31', 30, true)
  local second = find(m, '\31', first + 1, true)
  local flag = byte(m, second + 9)
  local hash, field, sep = entries, nil, nil
  if ever then
    sep = find(m, '\30', second, true)
    local added = sub(m, sep + 1, sep + 20)
    local removed = sub(m, sep + 21, sep + 40)
    if as_of < added or as_of >= removed then return nil end
    if removed ~= OPEN then
      hash, field = superseded, sub(m, 30, second - 1) .. '\31' .. sub(m, sep + 41)
    end
  elseif as_of ~= '' and (flag ~= ACTIVE or as_of < sub(m, 10, 29)) then
    return nil
  end
  if flag == RETRACTED and not include_retracted then return nil end
  if min_latest ~= '' and sub(m, second + 1, second + 8) < min_latest then
    return nil
  end
  if types ~= '' then
    local kind = sub(m, second + 10, sep and sep - 1 or -1)
    if not find(types, '|' .. kind .. '|', 1, true) then return nil end
  end
  if with_name ~= '' then
    local with_set = key((ever and 'ever:' or 'tl:') .. with_name)
    if not redis.call('ZSCORE', with_set, m) then return nil end
  end
  return hash, field or sub(m, 30, second - 1)
end

-- A walk's first chunk is `chunk`; each later one is what the page still needs (and
-- one more, to tell whether a next page exists), scaled by the share of members
-- accepted so far, with a quarter to spare. A few retracted or filtered-out members
-- then cost a small second chunk, not one twice the first; a filter that accepts
-- nothing grows it to 1000.
local function next_size()
  local need = (limit - n + 1) * examined / math.max(n, 1)
  return math.max(16, math.min(1000, math.ceil(need * 1.25)))
end

-- One sorted set walked in order, a chunk at a time.
local function walk(zset, ever)
  return {zset = zset, ever = ever, buf = {}, i = 1, lo = low, hi = high, done = false,
          started = false}
end

local function head(w)
  if w.i > #w.buf then
    if w.done then return nil end
    local size = w.started and next_size() or chunk
    w.started = true
    if desc then
      w.buf = redis.call('ZRANGE', w.zset, w.hi, w.lo, 'BYLEX', 'REV', 'LIMIT', 0, size)
    else
      w.buf = redis.call('ZRANGE', w.zset, w.lo, w.hi, 'BYLEX', 'LIMIT', 0, size)
    end
    w.i = 1
    if #w.buf < size then w.done = true end
    if #w.buf == 0 then return nil end
    if desc then w.hi = '(' .. w.buf[#w.buf] else w.lo = '(' .. w.buf[#w.buf] end
  end
  return w.buf[w.i]
end

local walks = {walk(key('tl:' .. ARGV[3]), false)}
if as_of ~= '' then walks[2] = walk(key('ever:' .. ARGV[3]), true) end

-- Accepted fields in walk order; `is_old[i]`: field i names a superseded copy.
local fields, is_old, old = {}, {}, 0
local cursor, ended = '', false
local live, versions = walks[1], walks[2]
while n < limit and examined < budget do
  local pick, m = live, head(live)
  if versions then
    local other = head(versions)
    if other and (not m or (desc and before(m, other)) or (not desc and before(other, m))) then
      pick, m = versions, other
    end
  end
  if not m then ended = true break end
  pick.i = pick.i + 1
  examined = examined + 1
  cursor = m
  local hash, field = accept(m, pick.ever)
  if hash then
    n = n + 1
    fields[n] = field
    if hash == superseded then
      is_old[n] = true
      old = old + 1
    end
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
-- One HMGET per hash (live documents, superseded copies), answered in walk order.
if n == 0 then return {cursor, {}} end
if old == 0 then return {cursor, redis.call('HMGET', entries, unpack(fields))} end
local copies, current = {}, {}
for i = 1, n do
  local list = is_old[i] and copies or current
  list[#list + 1] = fields[i]
end
copies = redis.call('HMGET', superseded, unpack(copies))
current = #current > 0 and redis.call('HMGET', entries, unpack(current)) or {}
local docs, c, l = {}, 0, 0
for i = 1, n do
  if is_old[i] then
    c = c + 1
    docs[i] = copies[c]
  else
    l = l + 1
    docs[i] = current[l]
  end
end
return {cursor, docs}
