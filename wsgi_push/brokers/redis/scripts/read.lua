-- Read a channel after an id, in one round trip.
-- KEYS: last, log. ARGV: after, limit (-1: all), max_age_ms (0: none).
-- Returns {last id, oldest retained id (0: none), members after `after`...}.
trim_age(KEYS[2], tonumber(ARGV[3]), now_ms())
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local found = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, ARGV[2])
table.insert(found, 1, tonumber(oldest[2] or '0'))
table.insert(found, 1, last)
return found
