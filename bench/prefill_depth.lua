-- wrk script: POSTs BENCH_ORDERS LIMIT orders on BTC/USDT at the prices of the book that
-- bench/post_books.lua sends, none crossing it, so they rest in its queues: BUYs at the
-- bids (49999 down) and SELLs at the asks (50001 up), spread over BENCH_LEVELS levels a
-- side. After that it only asks /healthz until wrk's duration ends. Prints how many
-- were created.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")

local wanted = tonumber(os.getenv("BENCH_ORDERS") or "10000")
local levels = tonumber(os.getenv("BENCH_LEVELS") or "1000")
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
  local level = math.floor(counter / 2) % levels
  local side, price = "BUY", 49999 - level
  if counter % 2 == 1 then
    side, price = "SELL", 50001 + level
  end
  local body = string.format(
    '{"idempotency_key":"%s-%d","exchange":"binance","symbol":"BTC/USDT","side":"%s",' ..
    '"qty":0.01,"type":"LIMIT","limit_price":%d}', prefix, counter, side, price)
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
