-- wrk script: POSTs BTC/USDT prints at the ten best bid levels (a SELL aggressor, 49999
-- down) and the ten best ask levels (a BUY aggressor, 50001 up) in turn, each small.
-- An answer that is not 200 is counted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(200)

local counter = 0

function request()
  counter = counter + 1
  local level = counter % 10
  local body
  if counter % 2 == 0 then
    body = string.format(
      '{"exchange":"binance","symbol":"BTC/USDT","price":%d,"qty":0.003,"aggressor_side":"SELL"}', 49999 - level)
  else
    body = string.format(
      '{"exchange":"binance","symbol":"BTC/USDT","price":%d,"qty":0.003,"aggressor_side":"BUY"}', 50001 + level)
  end
  return wrk.format("POST", "/execution/market-data/trades", {["Content-Type"] = "application/json"}, body)
end
