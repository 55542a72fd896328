-- wrk script: POST /audit_logs/events with a fresh Idempotency-Key per request, as the
-- official SDKs send. ORGANIZATION_ID and API_KEY come from the environment (see ingest.sh).
local counter = 0
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end
init = function(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  run_id = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
wrk.body = '{"organization_id":"' .. os.getenv("ORGANIZATION_ID") .. '","event":{"action":"user.signed_in",'
  .. '"occurred_at":"2026-01-15T12:00:00.000Z","version":1,"actor":{"id":"user_01GBNJC3MX9ZZJW1FSTF4C5938",'
  .. '"type":"user","name":"Jon Smith","metadata":{"role":"admin"}},"targets":[{"id":"team_01GBNJD4MKHVKJGEWK42JNMBGS",'
  .. '"type":"team","name":"Engineering"}],"context":{"location":"123.123.123.123","user_agent":'
  .. '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36"},"metadata":{"invoice_id":'
  .. '"inv_01GBNJE2Q7X9ZQW0V6KH3N1A2B","plan":"enterprise"}}}'
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "workos-node-" .. run_id .. "-" .. thread_id .. "-" .. counter
  return wrk.format()
end
