-- Shared by the wrk scripts: thread numbering, status counting, and a
-- one-line JSON result printed by done() (run.sh collects it).
--
-- Environment: BENCH_THREADS (wrk -t), plus each script's own variables.

threads = {}
local n_setup = 0

function setup(thread)
	thread:set("tid", n_setup)
	n_setup = n_setup + 1
	table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
non2xx = 0
statuses = ""        -- "412,412,500" first few non-2xx, for the report
n_statuses = 0

function count_status(status)
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
		if n_statuses < 20 then
			statuses = statuses .. (n_statuses > 0 and "," or "") .. status
			n_statuses = n_statuses + 1
		end
		return false
	end
	return true
end

function env_num(name, dflt)
	local v = os.getenv(name)
	if v == nil or v == "" then
		if dflt == nil then error("missing environment variable " .. name) end
		return dflt
	end
	return tonumber(v)
end

function env_str(name)
	local v = os.getenv(name)
	if v == nil or v == "" then error("missing environment variable " .. name) end
	return v
end

function read_lines(path)
	local t = {}
	for line in io.lines(path) do
		if line ~= "" then t[#t + 1] = line end
	end
	if #t == 0 then error("no lines in " .. path) end
	return t
end

function done(summary, latency, requests)
	local bad, sts = 0, {}
	for _, t in ipairs(threads) do
		bad = bad + (t:get("non2xx") or 0)
		local s = t:get("statuses")
		if s and s ~= "" then sts[#sts + 1] = s end
	end
	local e = summary.errors
	io.write(string.format(
		'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
		'"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
		'"non2xx":%d,"non2xx_sample":"%s","errors":{"connect":%d,"read":%d,' ..
		'"write":%d,"status":%d,"timeout":%d}}\n',
		summary.requests, summary.duration, summary.bytes,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9), latency.max, latency.mean, bad, table.concat(sts, ","),
		e.connect, e.read, e.write, e.status, e.timeout))
end
