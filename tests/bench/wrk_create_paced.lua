-- POST /v1/cases as wrk_create.lua, paced: each connection waits so that
-- all of them together send about BENCH_CREATE_RATE creates a second (a
-- concurrent create load while the SLA bench measures firing lag, not a
-- peak). Env: as wrk_create.lua, plus BENCH_CREATE_RATE, BENCH_CONNS (wrk -c).
dofile(os.getenv("BENCH_LUA_DIR") .. "/wrk_create.lua")

local pace_ms
local base_init = init

function init(args)
	base_init(args)
	pace_ms = math.floor(1000 * env_num("BENCH_CONNS") / env_num("BENCH_CREATE_RATE"))
end

-- wrk asks before each request of a connection how long to wait (ms)
function delay()
	return pace_ms
end
