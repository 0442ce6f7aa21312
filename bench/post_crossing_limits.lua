-- wrk script: POSTs LIMIT BUY intents that cross the quote the bench posted first (so
-- every tick, lot, quantity, notional and position rule has something to check), each
-- with a fresh idempotency key; an answer that is not 201 is counted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(201)

local prefix = os.getenv("BENCH_KEY_PREFIX") or "bench"
local counter = 0

function request()
  counter = counter + 1
  local body = string.format(
    '{"idempotency_key":"%s-%d","exchange":"binance","symbol":"BTC/USDT",' ..
    '"side":"BUY","qty":0.01,"type":"LIMIT","limit_price":50010.5,"client_ts_utc":null}',
    prefix, counter)
  return wrk.format("POST", "/execution/order-intents", {["Content-Type"] = "application/json"}, body)
end
