-- wrk script: POSTs order intents, each with a fresh idempotency key, and counts
-- answers that are not 201 so a run that measured errors is caught.
local prefix = os.getenv("BENCH_KEY_PREFIX") or "bench"
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"idempotency_key":"%s-%d","exchange":"binance","symbol":"BTC/USDT",' ..
    '"side":"BUY","qty":0.01,"type":"MARKET","limit_price":null,"client_ts_utc":null}',
    prefix, counter)
  return wrk.format("POST", "/execution/order-intents", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 201 then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"unexpected": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, errors.connect + errors.read + errors.write + errors.timeout))
end
