-- wrk script: POSTs BTC/USDT books of BENCH_LEVELS levels a side (bids from 49999 down,
-- asks from 50001 up, a level a dollar), the same prices each time and the sizes
-- changing: BENCH_VARIANTS bodies are made once, then sent in turn. An answer that is
-- not 200 is counted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(200)

local levels = tonumber(os.getenv("BENCH_LEVELS") or "1000")
local variants = tonumber(os.getenv("BENCH_VARIANTS") or "16")
local bodies = {}
local counter = 0

local function side(first, step, seed)
  local parts = {}
  for i = 0, levels - 1 do
    -- Sizes from 0.5 to 5.0 that differ from one variant to the next.
    local size = 0.5 + ((i * 7919 + seed * 104729) % 4500) / 1000
    parts[#parts + 1] = string.format("[%d,%.3f]", first + step * i, size)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function init(args)
  unexpected = 0
  for v = 1, variants do
    bodies[v] = string.format(
      '{"exchange":"binance","symbol":"BTC/USDT","bids":%s,"asks":%s}', side(49999, -1, v), side(50001, 1, v))
  end
end

function request()
  counter = counter + 1
  local body = bodies[counter % variants + 1]
  return wrk.format("POST", "/execution/market-data/books", {["Content-Type"] = "application/json"}, body)
end
