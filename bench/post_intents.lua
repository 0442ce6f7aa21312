-- wrk script: POSTs order intents, each with a fresh idempotency key; an answer that is
-- not 201 is counted, so a run that measured errors is caught.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(201)

local prefix = os.getenv("BENCH_KEY_PREFIX") or "bench"
-- The fields after the key and instrument: a MARKET BUY unless the bench says otherwise.
local fields = os.getenv("BENCH_INTENT_FIELDS") or '"side":"BUY","qty":0.01,"type":"MARKET","limit_price":null'
local counter = 0

function request()
  counter = counter + 1
  local body = string.format(
    '{"idempotency_key":"%s-%d","exchange":"binance","symbol":"BTC/USDT",%s,"client_ts_utc":null}',
    prefix, counter, fields)
  return wrk.format("POST", "/execution/order-intents", {["Content-Type"] = "application/json"}, body)
end
