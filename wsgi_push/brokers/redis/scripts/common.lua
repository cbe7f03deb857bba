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
