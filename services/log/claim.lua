-- Claim (source, id) identities for partitions, first come first served.
-- The dedupe index lives inside each partition, but an identity names one event
-- forever: the same (source, id) under another subject would land in another
-- partition, so this one small map says which partition owns each identity.
-- KEYS[1]: the owners hash. ARGV[1]: msgpack list key1, partition1, key2, partition2, ...
-- Reply: the owning partition of each key, in order.
-- One HMGET and one HSET for the whole batch, not a call per identity: the script runs
-- atomically, so an identity unclaimed at the read is still unclaimed at the write.
local claims = cmsgpack.unpack(ARGV[1])
local names, owners, fresh, first_claim = {}, {}, {}, {}
for i = 1, #claims, 2 do names[#names + 1] = claims[i] end
local CHUNK = 500
for first = 1, #names, CHUNK do
  local found = redis.call('HMGET', KEYS[1], unpack(names, first, math.min(first + CHUNK - 1, #names)))
  for j, value in ipairs(found) do owners[first + j - 1] = value end
end
for i, key in ipairs(names) do
  local owner = owners[i] or first_claim[key]
  if not owner then -- unclaimed: this call claims it (the first of repeats in the batch wins)
    owner = claims[2 * i]
    first_claim[key] = owner
    fresh[#fresh + 1] = key
    fresh[#fresh + 1] = owner
  end
  owners[i] = tonumber(owner)
end
for first = 1, #fresh, 2 * CHUNK do
  redis.call('HSET', KEYS[1], unpack(fresh, first, math.min(first + 2 * CHUNK - 1, #fresh)))
end
return owners
