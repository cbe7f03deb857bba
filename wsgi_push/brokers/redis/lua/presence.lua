-- Write this process's subscriber counts and sum one channel's over the
-- live processes.
-- KEYS: live processes (zset, score = expiry ms), this process's counts (hash).
-- ARGV: process id, counts key prefix, ttl ms, replace ('1': rewrite all),
-- channel to count ('': none), then channel/count pairs.
-- Returns the channel's subscribers summed over live processes.
local now = now_ms()
local ttl = tonumber(ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
for i = 6, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[5] == '' then return 0 end
local total = 0
for _, process in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + tonumber(redis.call('HGET', ARGV[2] .. process, ARGV[5]) or '0')
end
return total
