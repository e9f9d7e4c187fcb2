-- `inbox_push`: ARGV = prefix, epoch, user, payload. Returns the position.
if not epoch_ok() then return redis.error_reply(EPOCH_ERR) end
local meta = P .. ':ia:' .. ARGV[3]
local upto = tonumber(redis.call('HGET', meta, 'upto') or '0')
local last = tonumber(redis.call('HGET', meta, 'last') or '0')
local seq = math.max(upto, last) + 1
redis.call('HSET', meta, 'last', fmt(seq))
redis.call('ZADD', P .. ':i:' .. ARGV[3], seq, fmt(seq) .. ':' .. fmt(now_ms()) .. ':' .. ARGV[4])
return seq
