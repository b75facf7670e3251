-- Add members to timelines of one named namespace: a rebuild's held-back insertions
-- (projections/deferred.py), sorted, which the server inserts faster than in log
-- order. Every member has score 0, as apply.lua writes them.
-- KEYS[1]: the active pointer (only to name the read model's slot)
-- ARGV[1]: key base; ARGV[2]: namespace (never "": only a rebuild's copy is filled);
-- ARGV[3]: msgpack {timeline, {member...}, timeline, {member...}, ...}
local prefix = ARGV[1] .. ARGV[2] .. ':tl:'
local groups = cmsgpack.unpack(ARGV[3])
for g = 1, #groups, 2 do
  local key, members = prefix .. groups[g], groups[g + 1]
  -- Slices of 1000 members stay under Lua's unpack() limit.
  for i = 1, #members, 1000 do
    local call = {'ZADD', key}
    for j = i, math.min(i + 999, #members) do
      call[#call + 1] = 0
      call[#call + 1] = members[j]
    end
    redis.call(unpack(call))
  end
end
