-- GET /v1/cases/{id} over ids of loaded cases fetched beforehand (one per
-- line in BENCH_IDS_FILE), by an agent key that sees every shop.
-- Env: BENCH_LUA_DIR, BENCH_KEY, BENCH_IDS_FILE
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ids, hdr

function init(args)
	ids = read_lines(env_str("BENCH_IDS_FILE"))
	hdr = { ["Authorization"] = "Bearer " .. env_str("BENCH_KEY") }
	math.randomseed(os.time() + 104729 * (tid + 1))
end

function request()
	return wrk.format("GET", "/v1/cases/" .. ids[math.random(1, #ids)], hdr)
end

function response(status, headers, body)
	count_status(status)
end
