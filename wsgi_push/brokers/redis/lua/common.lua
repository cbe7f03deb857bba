-- Helpers shared by the wsgi_push scripts: every script is this file
-- followed by its own (see scripts.py and docs/redis.md).

-- Redis's own clock in milliseconds: every process and host ages messages
-- by the same clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Drop messages older than max_age_ms from the oldest end of a log whose
-- members are "<id> <published ms> <payload>".
local function trim_age(log, max_age_ms, now)
  if max_age_ms <= 0 then return end
  local cutoff = now - max_age_ms
  while true do
    local oldest = redis.call('ZRANGE', log, 0, 63)
    local expired = 0
    for _, member in ipairs(oldest) do
      if tonumber(string.match(member, '^%d+ (%d+) ')) >= cutoff then break end
      expired = expired + 1
    end
    if expired > 0 then redis.call('ZREMRANGEBYRANK', log, 0, expired - 1) end
    if expired < 64 then return end
  end
end

-- The id of this Redis server process: a new one after every restart (and
-- on another server after a failover).
local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end

-- A channel's newest id, opening a new era first when its ids may have
-- been lost. KEYS last_key, log_key, run_key of one channel; run: run_id().
-- The run key holds the run_id under which the channel's ids were issued.
-- A missing last key (a new channel, FLUSHALL, a restart without
-- persistence) or a run key from another run (a restart, perhaps from an
-- older snapshot, or a failover) means that ids above the stored one may
-- have been issued and lost: the era's ids start above every earlier id,
-- at Redis's clock in ms * 1000 (below 2^53 until the year 2255), and the
-- old history goes, so an old id sits below the oldest retained message.
-- A read (create false) of a channel without a last key changes nothing.
local function channel_last(last_key, log_key, run_key, run, create)
  local last = redis.call('GET', last_key)
  if last and redis.call('GET', run_key) == run then return tonumber(last) end
  if not (last or create) then return 0 end
  local floor = now_ms() * 1000
  if last and tonumber(last) > floor then floor = tonumber(last) end -- the clock went back
  redis.call('SET', last_key, string.format('%d', floor))
  redis.call('SET', run_key, run)
  redis.call('DEL', log_key)
  return floor
end
