-- wrk script: POSTs BENCH_ORDERS LIMIT BUY orders on ETH/USDT far below any quote, so
-- they rest (keys start with BENCH_KEY_PREFIX); after that it only asks /healthz until
-- wrk's duration ends (wrk cannot stop on a count). Prints how many were created.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")

local wanted = tonumber(os.getenv("BENCH_ORDERS") or "100000")
local prefix = os.getenv("BENCH_KEY_PREFIX") or "rest"
local counter = 0

function init(args)
  created = 0
end

function request()
  counter = counter + 1
  -- wrk calls request() once before sending anything, to see whether it is static,
  -- and throws that first one away.
  if counter > wanted + 1 then
    return wrk.format("GET", "/healthz")
  end
  local body = string.format(
    '{"idempotency_key":"%s-%d","exchange":"binance","symbol":"ETH/USDT","side":"BUY",' ..
    '"qty":1,"type":"LIMIT","limit_price":%d.5}', prefix, counter, 1 + counter % 500)
  return wrk.format("POST", "/execution/order-intents", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format('PREFILL_RESULT {"created": %d}\n', sum_over_threads("created")))
end
