-- Publish one message: assign the id, store, trim, notify.
-- KEYS: last, log. ARGV: payload (JSON [event, data]), max_messages,
-- max_age_ms (0: none), notify channel, channel name.
-- Returns {id, published ms}.
local id = redis.call('INCR', KEYS[1])
local now = now_ms()
redis.call('ZADD', KEYS[2], id, string.format('%d %d %s', id, now, ARGV[1]))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
local max_age_ms = tonumber(ARGV[3])
if max_age_ms > 0 then
  trim_age(KEYS[2], max_age_ms, now)
  redis.call('PEXPIRE', KEYS[2], max_age_ms)
end
redis.call('PUBLISH', ARGV[4], string.format('%d %s', id, ARGV[5]))
return {id, now}
