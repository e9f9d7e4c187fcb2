-- Shared by every script: `ARGV[1]` is always the key prefix.
local P = ARGV[1]
local function fmt(n) return string.format('%d', n) end
local function room_key(nsp, room) return P .. ':r:' .. #nsp .. ':' .. nsp .. ':' .. room end
local function ns_key(nsp) return P .. ':n:' .. nsp end
local function idem_key(nsp, key) return P .. ':k:' .. #nsp .. ':' .. nsp .. ':' .. key end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function epoch_ok()
  return redis.call('GET', P .. ':epoch') == ARGV[2]
end
local EPOCH_ERR = 'TETHERRESET the store was reset (its epoch changed): the node adopts the new one'
