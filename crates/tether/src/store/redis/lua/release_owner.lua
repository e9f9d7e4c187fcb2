-- The connected sessions of a node whose lease lapsed (it died without
-- closing them), one chunk: ARGV = prefix, owner, now (ms), chunk. Each
-- still connected and owned by it becomes disconnected as of now (then the
-- recovery window applies and the purge takes it). The session JSON is
-- edited as text: serde writes its fields in order, `connected` and
-- `updated_ms` just before `owner`, which is last, and only the top level
-- has unescaped quotes. Returns 1 while more may be left.
local owner = ARGV[2]
local set = P .. ':so:' .. owner
local head = ',"connected":true,"updated_ms":'
local tail = ',"owner":"' .. owner .. '"}'
for _, pid in ipairs(redis.call('SRANDMEMBER', set, tonumber(ARGV[4]))) do
  local key = P .. ':s:' .. pid
  local json = redis.call('GET', key)
  if json and string.sub(json, -#tail) == tail then
    local i = string.find(json, head, 1, true)
    if i then
      json = string.sub(json, 1, i - 1) .. ',"connected":false,"updated_ms":' .. ARGV[3] .. '}'
      redis.call('SET', key, json)
      redis.call('ZADD', P .. ':sd', ARGV[3], pid)
    end
  end
  redis.call('SREM', set, pid)
end
if redis.call('SCARD', set) == 0 then
  redis.call('ZREM', P .. ':owners', owner)
  return 0
end
return 1
