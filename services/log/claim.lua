-- Claim (source, id) identities for partitions, first come first served.
-- The dedupe index lives inside each partition, but an identity names one event
-- forever: the same (source, id) under another subject would land in another
-- partition, so this one small map says which partition owns each identity.
-- KEYS[1]: the owners hash. ARGV: key1, partition1, key2, partition2, ...
-- Reply: the owning partition of each key, in order.
local owners = {}
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  owners[#owners + 1] = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
end
return owners
