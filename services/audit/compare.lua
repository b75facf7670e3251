-- Comparison of two copies (namespaces) of the read model, server-side: only the
-- differences travel back, so comparing copies costs the server's time, not ours.
-- Every key touched shares the read model's slot ({rm}), named by KEYS[1].
--
-- ARGV[1] = "hash": one chunk of a hash, both ways in two walks.
--   KEYS[1]: the hash walked (a); KEYS[2]: the hash checked against it (b)
--   ARGV[2]: "differs" (fields of a whose value in b differs or is absent)
--            | "missing" (fields of a absent from b); ARGV[3]: HSCAN cursor; ARGV[4]: count
--   reply: {next cursor, {field, a value, b value | nil}...}
--
-- ARGV[1] = "lengths": the field counts of the hashes KEYS[1] and KEYS[2], read at once.
--
-- ARGV[1] = "zsets": many sorted sets (timelines), each walked in both copies at once.
--   KEYS[1]: any key of the slot (routing)
--   ARGV[2]: key prefix of copy a; ARGV[3]: of copy b; ARGV[4]: members per chunk;
--   ARGV[5]: budget (members read per call); ARGV[6]: msgpack of the pairs, flat:
--   key suffix, cursor ("-" to start), ... (one argument: thousands of separate ones
--   cost the client more to pack than the server to walk)
--   Walks the pairs in order until the budget is spent (at least one pair).
--   reply: {pairs walked, then for each walked pair that differs or is unfinished:
--          {its index (1-based), {members only in a}, {members only in b},
--           next cursor, "" when that pair is done,
--           {{member, score in a, score in b}...: members scored other than 0}}}
local mode = ARGV[1]

local function set_of(list, last)
  local set = {}
  for i = 1, last do set[list[i]] = true end
  return set
end

local function absent(list, last, other)
  local found = {}
  for i = 1, last do
    if not other[list[i]] then found[#found + 1] = list[i] end
  end
  return found
end

-- The same members in the same order (Lua compares interned strings at once).
local function identical(ma, mb)
  if #ma ~= #mb then return false end
  for i = 1, #ma do
    if ma[i] ~= mb[i] then return false end
  end
  return true
end

-- One chunk of two sorted sets from `cursor` (lex ranges: every score is 0), up to
-- the nearer of the two chunks' last members, so that range is complete on both
-- sides. Positions come from ZLEXCOUNT, never from comparing strings in Lua
-- (which collates by locale, not byte order as the sets do).
local function zchunk(a, b, cursor, n)
  local ma = redis.call('ZRANGE', a, cursor, '+', 'BYLEX', 'LIMIT', 0, n)
  local mb = redis.call('ZRANGE', b, cursor, '+', 'BYLEX', 'LIMIT', 0, n)
  local na, nb, upto = #ma, #mb, nil
  if identical(ma, mb) then -- the usual chunk: both ranges end at the same member
    return {}, {}, na == n and ('(' .. ma[na]) or '', na + nb
  end
  if na == n and (nb < n or redis.call('ZLEXCOUNT', a, cursor, '[' .. mb[nb]) >= n) then
    upto = ma[na]
    nb = math.min(nb, redis.call('ZLEXCOUNT', b, cursor, '[' .. upto))
  elseif nb == n then
    upto = mb[nb]
    na = math.min(na, redis.call('ZLEXCOUNT', a, cursor, '[' .. upto))
  end
  local only_a = absent(ma, na, set_of(mb, nb))
  local only_b = absent(mb, nb, set_of(ma, na))
  return only_a, only_b, upto and ('(' .. upto) or '', na + nb
end

-- The members either set holds with a score other than 0 (up to n of each sign in
-- each), with their score in a and in b (nil where absent). The projection writes
-- every score 0, and pages and this walk read lex ranges, which are only ordered (or
-- complete) when every score is 0: such a member reorders or hides entries.
local function scored(a, b, n)
  local found, seen = {}, {}
  for _, key in ipairs({a, b}) do
    for _, range in ipairs({{'-inf', '(0'}, {'(0', '+inf'}}) do
      for _, m in ipairs(redis.call('ZRANGE', key, range[1], range[2], 'BYSCORE', 'LIMIT', 0, n)) do
        if not seen[m] then
          seen[m] = true
          found[#found + 1] = {m, redis.call('ZSCORE', a, m), redis.call('ZSCORE', b, m)}
        end
      end
    end
  end
  return found
end

-- Whether two sorted sets certainly hold the same members, in one read of each:
-- both small (most as-of indexes do not exist, most pair timelines hold one or
-- two members) and identical. Anything else is walked. Also: how many it read.
local function same(a, b, small)
  local ma = redis.call('ZRANGE', a, 0, small)
  if #ma > small then return false, #ma end
  local mb = redis.call('ZRANGE', b, 0, small)
  return identical(ma, mb), #ma + #mb
end

if mode == 'zsets' then
  local prefix_a, prefix_b = ARGV[2], ARGV[3]
  local n, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
  local out = {0}
  local walks = cmsgpack.unpack(ARGV[6])
  local i = 1
  while i < #walks and budget > 0 do
    local a, b, cursor = prefix_a .. walks[i], prefix_b .. walks[i], walks[i + 1]
    local done, seen, rescored = false, 0, {}
    if cursor == '-' then
      rescored = scored(a, b, n)
      done = #rescored > 0 -- a lex walk of it would be meaningless: the scores are reported
      if not done then done, seen = same(a, b, n) end
    end
    budget = budget - seen - #rescored
    if done then
      budget = budget - 1
      if #rescored > 0 then out[#out + 1] = {(i + 1) / 2, {}, {}, '', rescored} end
    else
      local only_a, only_b = {}, {}
      repeat
        local more_a, more_b, following, read = zchunk(a, b, cursor, n)
        for _, m in ipairs(more_a) do only_a[#only_a + 1] = m end
        for _, m in ipairs(more_b) do only_b[#only_b + 1] = m end
        cursor, budget = following, budget - read - 1
      until cursor == '' or budget <= 0
      if #only_a > 0 or #only_b > 0 or cursor ~= '' then
        out[#out + 1] = {(i + 1) / 2, only_a, only_b, cursor, {}}
      end
    end
    out[1] = out[1] + 1
    i = i + 2
  end
  return out
end

if mode == 'lengths' then
  return {redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2])}
end

local a, b, walk, cursor, count = KEYS[1], KEYS[2], ARGV[2], ARGV[3], tonumber(ARGV[4])
local found = {}
local reply = redis.call('HSCAN', a, cursor, 'COUNT', count)
local items = reply[2]
-- HMGET in slices: Lua's unpack() takes a few thousand values at most
for first = 1, #items, 2000 do
  local fields = {}
  for j = first, math.min(first + 1999, #items), 2 do fields[#fields + 1] = items[j] end
  local others = redis.call('HMGET', b, unpack(fields))
  for k, field in ipairs(fields) do
    local value, other = items[first + 2 * k - 1], others[k]
    if walk == 'missing' then
      if not other then found[#found + 1] = {field, value} end
    elseif other ~= value then
      found[#found + 1] = {field, value, other}
    end
  end
end
return {reply[1], found}
