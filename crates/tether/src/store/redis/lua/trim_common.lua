-- Removing entries, shared by the trim scripts.
local trimmed_max = 0
local function fields_of(flat)
  local f = {}
  for j = 1, #flat, 2 do f[flat[j]] = flat[j + 1] end
  return f
end
local function del_entry(id, f)
  local s = string.match(id, '^(%d+)')
  local seq = tonumber(s)
  local nsp = f['n']
  local rooms = cjson.decode(f['r'])
  if #rooms == 0 then
    redis.call('ZREM', room_key(nsp, ''), s)
  else
    for _, room in ipairs(rooms) do redis.call('ZREM', room_key(nsp, room), s) end
  end
  redis.call('ZREM', ns_key(nsp), s)
  if redis.call('EXISTS', ns_key(nsp)) == 0 then redis.call('SREM', P .. ':nss', nsp) end
  if f['k'] then
    local ikey = idem_key(nsp, f['k'])
    if redis.call('GET', ikey) == s then redis.call('DEL', ikey) end
  end
  redis.call('XDEL', P .. ':log', id)
  if seq > trimmed_max then trimmed_max = seq end
end
local function finish()
  if trimmed_max > 0 then
    local old = tonumber(redis.call('GET', P .. ':trimmed') or '0')
    if trimmed_max > old then redis.call('SET', P .. ':trimmed', fmt(trimmed_max)) end
  end
end
