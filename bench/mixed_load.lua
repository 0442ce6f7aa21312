-- wrk script for bench/soak.py: a mix of new intents, duplicates, invalid bodies,
-- quotes and reads. Each request's X-Request-ID names its kind; the service echoes it,
-- so each answer is checked against the status its kind must get, whichever
-- connection it came back on. The order ids of the 201s are written to a file, and
-- the keys of the new intents still in flight when the run stopped (wrk drops those
-- answers) to another, for the check that the store holds exactly the acknowledged
-- orders and, of the rest, at most those in flight.
local threads = {}
local EXPECTED = {new = 201, dup = 409, bad = 400, quote = 200, read = 200}
local JSON = {["Content-Type"] = "application/json"}
local INVALID = {
  '{"idempotency_key": "x", "exchange": "binance"',  -- truncated JSON
  '{"idempotency_key": "x", "exchange": "binance", "symbol": "BTC/USDT", "side": "BUY", "qty": -1, "type": "MARKET"}',
  '{"idempotency_key": "x", "exchange": "binance", "symbol": "DOGE/USDT", "side": "BUY", "qty": 1, "type": "MARKET"}',
  '[1, 2, 3]',
  '{"idempotency_key": "x", "exchange": "binance", "symbol": "BTC/USDT", "side": "BUY", "qty": 1, "type": "LIMIT"}',
}

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = os.getenv("BENCH_KEY_PREFIX") or "soak"
  counter = 0
  created_keys = {}  -- keys whose 201 came back: safe to send again as duplicates
  order_ids = {}
  pending = {}  -- new intents sent and not yet answered: in flight when the run stops
  by_kind = {}
  unexpected = 0
  math.randomseed(number * 7919 + os.time())
end

local function key_of(n)
  return string.format("%s-%d-%d", prefix, number, n)
end

function request()
  counter = counter + 1
  local roll = math.random(100)
  local kind, method, path, body
  if roll <= 50 or (roll <= 60 and #created_keys == 0) then
    kind, method, path = "new", "POST", "/execution/order-intents"
    pending[counter] = true
    local side = (counter % 2 == 0) and "BUY" or "SELL"
    if counter % 3 == 0 then
      body = string.format('{"idempotency_key": "%s", "exchange": "binance", "symbol": "BTC/USDT", ' ..
        '"side": "%s", "qty": 0.01, "type": "LIMIT", "limit_price": %d}', key_of(counter), side, 95 + counter % 10)
    else
      body = string.format('{"idempotency_key": "%s", "exchange": "binance", "symbol": "BTC/USDT", ' ..
        '"side": "%s", "qty": 0.01, "type": "MARKET"}', key_of(counter), side)
    end
  elseif roll <= 60 then
    kind, method, path = "dup", "POST", "/execution/order-intents"
    body = string.format('{"idempotency_key": "%s", "exchange": "binance", "symbol": "BTC/USDT", ' ..
      '"side": "BUY", "qty": 5, "type": "MARKET"}', created_keys[math.random(#created_keys)])
  elseif roll <= 70 then
    kind, method, path = "bad", "POST", "/execution/order-intents"
    body = INVALID[math.random(#INVALID)]
  elseif roll <= 80 then
    kind, method, path = "quote", "POST", "/execution/market-data/quotes"
    local bid = 95 + math.random(0, 10)
    body = string.format('{"exchange": "binance", "symbol": "BTC/USDT", "bid": %d, "ask": %d, ' ..
      '"bid_size": 0.05, "ask_size": 0.05}', bid, bid + 1)
  else
    kind, method = "read", "GET"
    local which = roll % 3
    if which == 0 and #order_ids > 0 then
      path = "/execution/orders/" .. order_ids[math.random(#order_ids)]
    elseif which == 1 then
      path = "/execution/orders?limit=20"
    else
      path = "/execution/positions"
    end
  end
  local headers = {["Content-Type"] = "application/json", ["X-Request-ID"] = string.format("%s.%d", kind, counter)}
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  local id = headers["x-request-id"] or headers["X-Request-ID"] or ""
  local kind, n = string.match(id, "^(%a+)%.(%d+)$")
  if kind == nil then
    unexpected = unexpected + 1
    return
  end
  if kind == "new" then
    pending[tonumber(n)] = nil
  end
  local key = kind .. ":" .. status
  by_kind[key] = (by_kind[key] or 0) + 1
  if status ~= EXPECTED[kind] then
    unexpected = unexpected + 1
    return
  end
  if kind == "new" then
    table.insert(created_keys, key_of(tonumber(n)))
    table.insert(order_ids, string.match(body, '"order_id":"([^"]+)"'))
  end
end

function done(summary, latency, requests)
  local ids = io.open(os.getenv("BENCH_IDS_FILE"), "w")
  local unanswered = io.open(os.getenv("BENCH_UNANSWERED_FILE"), "w")
  local counts = {}
  local total_unexpected = 0
  for _, thread in ipairs(threads) do
    for _, order_id in ipairs(thread:get("order_ids")) do
      ids:write(order_id, "\n")
    end
    local prefix, number = thread:get("prefix"), thread:get("number")
    for n, _ in pairs(thread:get("pending")) do
      unanswered:write(string.format("%s-%d-%d", prefix, number, n), "\n")
    end
    for key, count in pairs(thread:get("by_kind")) do
      counts[key] = (counts[key] or 0) + count
    end
    total_unexpected = total_unexpected + thread:get("unexpected")
  end
  ids:close()
  unanswered:close()
  local parts = {}
  for key, count in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', key, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"unexpected": %d, "socket_errors": %d, "by_kind": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total_unexpected, errors.connect + errors.read + errors.write + errors.timeout, table.concat(parts, ", ")))
end
