-- POST /v1/cases/{id}/actions {"action":"note"} by an agent key, with
-- If-Match. BENCH_ACTION_FILE has "id version" per line, read just before
-- the run. Thread t owns the lines with (line - 1) % BENCH_THREADS == t and
-- walks them round-robin, never sending for a case whose previous request
-- has not answered yet; each 2xx answer carries the case id (first field
-- of the body) and the new version (ETag), which the next note on that case
-- sends as If-Match. A case whose request failed is never used again (the
-- failure is counted; its version is unknown).
-- Env: BENCH_LUA_DIR, BENCH_KEY, BENCH_ACTION_FILE, BENCH_THREADS
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ids, ver, busy, pos_of, pos, key, counter, untracked

function init(args)
	local nthreads = env_num("BENCH_THREADS")
	key = "Bearer " .. env_str("BENCH_KEY")
	ids, ver, busy, pos_of = {}, {}, {}, {}
	for i, line in ipairs(read_lines(env_str("BENCH_ACTION_FILE"))) do
		if (i - 1) % nthreads == tid then
			local id, v = line:match("^(%S+)%s+(%d+)$")
			ids[#ids + 1] = id
			ver[#ids] = tonumber(v)
			busy[#ids] = false
			pos_of[id] = #ids
		end
	end
	if #ids == 0 then error("no cases for thread " .. tid) end
	pos, counter, untracked = 0, 0, 0
end

function request()
	for _ = 1, #ids do
		pos = pos % #ids + 1
		if not busy[pos] then
			busy[pos] = true
			counter = counter + 1
			return wrk.format("POST", "/v1/cases/" .. ids[pos] .. "/actions", {
				["Authorization"] = key,
				["Content-Type"] = "application/json",
				["If-Match"] = '"' .. ver[pos] .. '"',
			}, '{"action":"note","text":"benchmark note ' .. counter .. ' from thread ' .. tid .. '"}')
		end
	end
	error("every case of thread " .. tid .. " is busy or failed")
end

function response(status, headers, body)
	if count_status(status) then
		local id = body:match('^{%s*"id"%s*:%s*"([^"]+)"')
		local p = id and pos_of[id]
		local etag = headers["ETag"] or headers["etag"]
		local v = etag and etag:match("(%d+)")
		if p and v then
			ver[p] = tonumber(v)
			busy[p] = false
		else
			untracked = untracked + 1
		end
	end
end
