-- `inbox_ack`: ARGV = prefix, user, upto.
local meta = P .. ':ia:' .. ARGV[2]
local upto = tonumber(ARGV[3])
local old = tonumber(redis.call('HGET', meta, 'upto') or '0')
if upto > old then redis.call('HSET', meta, 'upto', fmt(upto)) end
redis.call('ZREMRANGEBYSCORE', P .. ':i:' .. ARGV[2], '-inf', fmt(upto))
return 0
