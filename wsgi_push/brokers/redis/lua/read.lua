-- Read a channel after an id, in one round trip.
-- KEYS: last, log, run. ARGV: after, limit (-1: all), max_age_ms (0: none).
-- Returns {last id, oldest retained id (0: none), members after `after`...}.
local last = channel_last(KEYS[1], KEYS[2], KEYS[3], run_id(), false)
trim_age(KEYS[2], tonumber(ARGV[3]), now_ms())
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local found = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
table.insert(found, 1, tonumber(oldest[2] or '0'))
table.insert(found, 1, last)
return found
