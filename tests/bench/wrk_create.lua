-- POST /v1/cases: a refund / quality_defect case like tests/api's
-- case_body(), with a unique order id and Idempotency-Key per request, a
-- random shop, buyer and SKU (5,000 SKUs) of the loaded population, and a
-- description that names the order (buyers do not all write the same
-- sentence).
-- Env: BENCH_LUA_DIR, BENCH_FE_KEY, BENCH_SHOPS, BENCH_BUYERS, BENCH_RUN_SALT;
-- BENCH_SHOP_ZIPF (an exponent, e.g. 1.1): shops drawn Zipf-distributed
-- (shop 1000000 the hottest) instead of uniformly.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local key, nshops, nbuyers, salt, counter, dates, zipf_cdf

-- the cumulative Zipf weights of shop ranks 1..n, for a binary search
local function zipf_table(n, s)
	local cdf, sum = {}, 0
	for k = 1, n do
		sum = sum + 1 / k ^ s
		cdf[k] = sum
	end
	for k = 1, n do cdf[k] = cdf[k] / sum end
	return cdf
end

local function shop_rank()
	if not zipf_cdf then return math.random(0, nshops - 1) end
	local u, lo, hi = math.random(), 1, nshops
	while lo < hi do
		local mid = math.floor((lo + hi) / 2)
		if zipf_cdf[mid] < u then lo = mid + 1 else hi = mid end
	end
	return lo - 1
end

local function iso(t)
	return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function init(args)
	key = env_str("BENCH_FE_KEY")
	nshops = env_num("BENCH_SHOPS")
	nbuyers = env_num("BENCH_BUYERS")
	salt = env_str("BENCH_RUN_SALT")
	math.randomseed(os.time() + 7919 * (tid + 1))
	counter = 0
	local z = env_num("BENCH_SHOP_ZIPF", 0)
	if z > 0 then zipf_cdf = zipf_table(nshops, z) end
	local now = os.time()
	dates = { iso(now - 4 * 86400), iso(now - 2 * 86400), iso(now - 3 * 86400), iso(now - 86400) }
end

local tmpl = '{"kind":"refund","reason":"quality_defect",' ..
	'"description":"The kettle leaks from the seam after the first boil (order %s).",' ..
	'"order":{"id":"%s","shop_id":"%d","buyer_id":"%d","sku":"SKU-%d",' ..
	'"category":"kitchen","price_cents":%d,"shipping_fee_cents":800,"free_shipping":false,' ..
	'"paid_at":"%s","promised_ship_by":"%s","shipped_at":"%s","delivered_at":"%s"},' ..
	'"evidence":[{"kind":"photo","url":"https://img.example.com/ev/%s-1.jpg",' ..
	'"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}'

function request()
	counter = counter + 1
	local oid = string.format("w%s-%d-%d-%d", salt, tid, counter, math.random(1, 1000000000))
	local body = string.format(tmpl, oid, oid,
		1000000 + shop_rank(), 50000000 + math.random(0, nbuyers - 1),
		math.random(0, 4999),
		1000 + 100 * math.random(0, 490), dates[1], dates[2], dates[3], dates[4], oid)
	return wrk.format("POST", "/v1/cases", {
		["Authorization"] = "Bearer " .. key,
		["Content-Type"] = "application/json",
		["Idempotency-Key"] = oid,
	}, body)
end

function response(status, headers, body)
	count_status(status)
end
