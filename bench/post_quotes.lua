-- wrk script: POSTs BTC/USDT quotes (bid and ask moving a little each time); an answer
-- that is not 200 is counted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(200)

local counter = 0

function request()
  counter = counter + 1
  local bid = 50000 + (counter % 100)
  local body = string.format(
    '{"exchange":"binance","symbol":"BTC/USDT","bid":%d,"ask":%d,"bid_size":1.5,"ask_size":2}', bid, bid + 1)
  return wrk.format("POST", "/execution/market-data/quotes", {["Content-Type"] = "application/json"}, body)
end
