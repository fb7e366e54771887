-- GET /v1/cases?shop_id=&state=awaiting_seller (default limit 50): a seller
-- listing its own shop's open cases. BENCH_SELLERS_FILE has "key shop" per
-- line (one seller key per shop); each request picks one at random.
-- Env: BENCH_LUA_DIR, BENCH_SELLERS_FILE
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs

function init(args)
	reqs = {}
	for _, line in ipairs(read_lines(env_str("BENCH_SELLERS_FILE"))) do
		local key, shop = line:match("^(%S+)%s+(%S+)$")
		reqs[#reqs + 1] = wrk.format("GET", "/v1/cases?shop_id=" .. shop .. "&state=awaiting_seller",
			{ ["Authorization"] = "Bearer " .. key })
	end
	math.randomseed(os.time() + 15485863 * (tid + 1))
end

function request()
	return reqs[math.random(1, #reqs)]
end

function response(status, headers, body)
	count_status(status)
end
