-- Publish messages (one, or a batch across channels): assign each its id,
-- store it, trim its channel's log, notify once per channel.
-- KEYS: per message, its channel's last, log and run keys (3 per message).
-- ARGV: max_messages, max_age_ms (0: none), notify channel, then per
-- message its channel name and payload (JSON [event, data]).
-- Returns the ids, in order.
local run = run_id()
local now = now_ms()
local max_messages = tonumber(ARGV[1])
local max_age_ms = tonumber(ARGV[2])
local ids, newest, channels = {}, {}, {}
for i = 1, #KEYS / 3 do
  local last_key, log_key, run_key = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local channel, payload = ARGV[2 * i + 2], ARGV[2 * i + 3]
  channel_last(last_key, log_key, run_key, run, true)
  local id = redis.call('INCR', last_key)
  redis.call('ZADD', log_key, id, string.format('%d %d %s', id, now, payload))
  redis.call('ZREMRANGEBYRANK', log_key, 0, -max_messages - 1)
  if max_age_ms > 0 then
    trim_age(log_key, max_age_ms, now)
    redis.call('PEXPIRE', log_key, max_age_ms)
  end
  ids[i] = id
  if newest[channel] == nil then table.insert(channels, channel) end
  newest[channel] = id
end
for _, channel in ipairs(channels) do
  redis.call('PUBLISH', ARGV[3], string.format('%d %s', newest[channel], channel))
end
return ids
