-- `append_batch`: ARGV = prefix, epoch, count, then per entry:
-- has_key ('0'/'1'), key, nsp, room count, rooms..., rooms JSON, except JSON,
-- event, args, attachments. Returns per entry its position, negated for a
-- duplicate (the first append's position).
if not epoch_ok() then return redis.error_reply(EPOCH_ERR) end
local ts = now_ms()
local last_ts = tonumber(redis.call('GET', P .. ':ts') or '0')
if ts < last_ts then ts = last_ts end
local ttl = tonumber(redis.call('GET', P .. ':idem_ttl') or '0')
local out = {}
local appended = false
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local has_key, key, nsp, nrooms = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first_room = i + 4
  local j = first_room + nrooms
  i = j + 5
  local ikey = nil
  local prev = false
  if has_key == '1' then
    ikey = idem_key(nsp, key)
    prev = redis.call('GET', ikey)
  end
  if prev then
    out[#out + 1] = -tonumber(prev)
  else
    local seq = redis.call('INCR', P .. ':seq')
    local s = fmt(seq)
    if ikey then
      redis.call('XADD', P .. ':log', s .. '-0', 'n', nsp, 'r', ARGV[j], 'x', ARGV[j + 1],
        'e', ARGV[j + 2], 'a', ARGV[j + 3], 'b', ARGV[j + 4], 't', fmt(ts), 'k', key)
      if ttl > 0 then
        redis.call('SET', ikey, s, 'PX', ttl)
      else
        redis.call('SET', ikey, s)
      end
    else
      redis.call('XADD', P .. ':log', s .. '-0', 'n', nsp, 'r', ARGV[j], 'x', ARGV[j + 1],
        'e', ARGV[j + 2], 'a', ARGV[j + 3], 'b', ARGV[j + 4], 't', fmt(ts))
    end
    if nrooms == 0 then
      redis.call('ZADD', room_key(nsp, ''), seq, s)
    else
      for r = first_room, j - 1 do
        redis.call('ZADD', room_key(nsp, ARGV[r]), seq, s)
      end
    end
    redis.call('ZADD', ns_key(nsp), seq, s)
    redis.call('SADD', P .. ':nss', nsp)
    appended = true
    out[#out + 1] = seq
  end
end
if appended then redis.call('SET', P .. ':ts', fmt(ts)) end
return out
