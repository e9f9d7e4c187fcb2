-- Count retention of one namespace, one chunk: ARGV = prefix, nsp, keep,
-- chunk. Returns {removed, more}.
local nk = ns_key(ARGV[2])
local excess = redis.call('ZCARD', nk) - tonumber(ARGV[3])
if excess <= 0 then return {0, 0} end
local take = math.min(excess, tonumber(ARGV[4]))
local seqs = redis.call('ZRANGE', nk, 0, take - 1)
local removed = 0
for _, s in ipairs(seqs) do
  local items = redis.call('XRANGE', P .. ':log', s .. '-0', s .. '-0')
  if #items > 0 then
    del_entry(items[1][1], fields_of(items[1][2]))
    removed = removed + 1
  else
    redis.call('ZREM', nk, s)
  end
end
if redis.call('EXISTS', nk) == 0 then redis.call('SREM', P .. ':nss', ARGV[2]) end
finish()
return {removed, excess > take and 1 or 0}
