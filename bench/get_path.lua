-- wrk script: GETs one path (BENCH_PATH) again and again; an answer that is not 200 is
-- counted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_common.lua")
expect_status(200)

local path = os.getenv("BENCH_PATH")

function request()
  return wrk.format("GET", path)
end
