-- Age retention, one chunk: ARGV = prefix, max age (ms), chunk. Entries are
-- in position order and timestamps never go back, so the expired ones are a
-- prefix of the log. Returns {removed, more}.
local chunk = tonumber(ARGV[3])
local cutoff = now_ms() - tonumber(ARGV[2])
local items = redis.call('XRANGE', P .. ':log', '-', '+', 'COUNT', chunk)
local removed = 0
local more = #items == chunk
for _, item in ipairs(items) do
  local f = fields_of(item[2])
  if tonumber(f['t']) >= cutoff then
    more = false
    break
  end
  del_entry(item[1], f)
  removed = removed + 1
end
finish()
return {removed, more and 1 or 0}
