-- wrk script: POSTs BTC/USDT quotes (bid and ask moving a little each time) and counts
-- answers that are not 200.
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
  local bid = 50000 + (counter % 100)
  local body = string.format(
    '{"exchange":"binance","symbol":"BTC/USDT","bid":%d,"ask":%d,"bid_size":1.5,"ask_size":2}', bid, bid + 1)
  return wrk.format("POST", "/execution/market-data/quotes", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then
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
