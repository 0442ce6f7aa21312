-- Shared by the wrk scripts (loaded with dofile): counts answers whose status is not
-- the expected one, per thread, and prints one BENCH_RESULT line for bench/run.py.
local threads = {}
local expected = 200

function expect_status(status)
  expected = status
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function sum_over_threads(name)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get(name)
  end
  return total
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"unexpected": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    sum_over_threads("unexpected"), errors.connect + errors.read + errors.write + errors.timeout))
end
