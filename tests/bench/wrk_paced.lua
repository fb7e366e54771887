-- Any workload script at a constant offered rate (wrk2-style pacing): each
-- wrk thread hands out send times on a fixed schedule, BENCH_RATE / threads
-- a second, and a connection waits for its slot before each request. A
-- slot is the schedule's next one, not "latency + a pause" after the last
-- reply, so a slow reply does not lower the offered rate while idle
-- connections remain; when every connection is busy the schedule runs
-- behind, which the achieved rate (reported) shows.
-- Env: BENCH_PACED (the workload script's file name), BENCH_RATE (req/s in
-- all), BENCH_THREADS, plus the workload's own variables.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
	ffi.C.clock_gettime(1, ts)   -- CLOCK_MONOTONIC
	return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

dofile(os.getenv("BENCH_LUA_DIR") .. "/" .. os.getenv("BENCH_PACED"))

local interval_us, next_us
local base_init = init

function init(args)
	if base_init then base_init(args) end
	interval_us = 1e6 * env_num("BENCH_THREADS") / env_num("BENCH_RATE")
end

function delay()
	local t = now_us()
	if next_us == nil then next_us = t end
	local slot = next_us
	next_us = next_us + interval_us
	local wait_ms = (slot - t) / 1000
	return wait_ms > 0 and math.floor(wait_ms) or 0
end
