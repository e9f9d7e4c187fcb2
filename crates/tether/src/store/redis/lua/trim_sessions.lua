-- Old disconnected sessions, one chunk: ARGV = prefix, before (ms), chunk.
-- Returns how many went.
local idx = P .. ':sd'
local pids = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, pid in ipairs(pids) do
  redis.call('DEL', P .. ':s:' .. pid)
  redis.call('ZREM', idx, pid)
end
return #pids
