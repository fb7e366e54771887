"""The backtest workload of `make bench` (tests/bench/run.sh, issue 28).

Usage: backtest_load.py RES BIN DB_URL BASE_URL ADMIN_KEY SINCE RATE DURATION LUA_DIR OUT

Replays the cases the bench created over HTTP (created at or after SINCE:
their open events carry the inputs a replay needs; the bulk-loaded ones
predate them) under the running service's own policy:
  1. `arbiter backtest --json --share 100` on all of them (N) and on a
     tenth (--sample): decisions per second unthrottled (the engine's
     speed) and the CLI's maximum resident set for both (memory must not
     grow with the cases);
  2. the same through the server at its default share (ARBITER_BACKTEST_SHARE),
     no creates running: POST /v1/policy/backtests, polled until done;
     decisions per second from the job's own created_at/finished_at;
  3. creates at a fixed RATE (wrk_paced.lua + wrk_create.lua) for DURATION/2
     s alone, then again while the server runs backtest jobs back to back,
     BT_ROUNDS (8) times in turn: the create p99 without and with, and the
     median of the rounds' ratios (issue 28: at most 1.2x; reported, not
     asserted).
Each figure is appended to RES (report.py's records). Exits non-zero only
when something does not work (a run fails, a non-2xx, a job fails).
"""
from __future__ import annotations

import json
import statistics
import os
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime


def http(base: str, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + key,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), json.loads(r.read() or b"null")


def append(res: str, rec: dict) -> None:
    with open(res, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def cli(binary: str, db: str, since: str, extra: list[str]) -> tuple[dict, float]:
    """(report, wall seconds) of one `arbiter backtest`."""
    env = dict(os.environ, ARBITER_DATABASE_URL=db)
    env.pop("ARBITER_READ_DATABASE_URL", None)
    t = time.perf_counter()
    p = subprocess.Popen([binary, "backtest", "--policy", os.environ["BT_POLICY"], "--since", since,
                          "--json", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit("arbiter backtest failed: " + err.decode()[-400:])
    return json.loads(out), took


def cli_rss(binary: str, db: str, since: str, extra: list[str]) -> tuple[dict, float, int]:
    """cli() in a fresh child process, so that RUSAGE_CHILDREN's maximum
    resident set is this run's alone: (cases and run of the report, wall
    seconds, max RSS in kB)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        rep, took = cli(binary, db, since, extra)
        with open(os.path.join(os.environ["BT_OUT"], "backtest_cli%s.json" % "_".join(extra)), "w") as f:
            json.dump(rep, f, indent=1)
        import resource
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        os.write(w, json.dumps({"cases": rep["cases"], "run": rep.get("run"), "took": took,
                                "rss": rss}).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise SystemExit("arbiter backtest failed")
    d = json.loads(data)
    return d, d["took"], d["rss"]


def job(base: str, key: str, policy: dict, since: str) -> dict:
    st, hdr, body = http(base, key, "POST", "/v1/policy/backtests",
                         {"policy": policy, "selection": {"created_after": since}})
    if st != 202:
        raise SystemExit("POST /v1/policy/backtests: %s %s" % (st, body))
    loc = hdr["Location"]
    while body["state"] == "running":
        time.sleep(0.2)
        _, _, body = http(base, key, "GET", loc)
    if body["state"] != "done":
        raise SystemExit("backtest job failed: %s" % body.get("error"))
    return body


def paced(lua_dir: str, base: str, rate: int, duration: int, out: str, salt: str) -> dict:
    env = dict(os.environ, BENCH_THREADS="2", BENCH_LUA_DIR=lua_dir, BENCH_RUN_SALT=salt,
               BENCH_PACED="wrk_create.lua", BENCH_RATE=str(rate))
    cp = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % duration, "--timeout", "10s", "-s",
                         os.path.join(lua_dir, "wrk_paced.lua"), base],
                        env=env, capture_output=True, text=True)
    with open(out, "w") as f:
        f.write(cp.stdout + cp.stderr)
    line = [x for x in cp.stdout.splitlines() if x.startswith("BENCH_RESULT ")]
    if cp.returncode != 0 or not line:
        raise SystemExit("paced creates failed: " + (cp.stdout + cp.stderr)[-400:])
    r = json.loads(line[0].split(" ", 1)[1])
    if r["non2xx"]:
        raise SystemExit("paced creates: %d non-2xx (%s)" % (r["non2xx"], r["non2xx_sample"]))
    return r


def main() -> None:
    res, binary, db, base, key, since, rate, duration, lua_dir, out = sys.argv[1:11]
    rate_i, dur_i = int(rate), int(duration)
    _, _, policy = http(base, key, "GET", "/v1/policy")
    with open(os.path.join(out, "backtest_policy.json"), "w") as f:
        json.dump(policy, f)
    os.environ["BT_POLICY"] = os.path.join(out, "backtest_policy.json")
    os.environ["BT_OUT"] = out

    # the engine's speed: the CLI unthrottled (right after the creates the
    # database still writes, autovacuum mostly, which the share would
    # count as traffic); the server job below runs with the default
    full, took, rss_full = cli_rss(binary, db, since, ["--share", "100"])
    n = full["cases"]["seen"]
    if n < 10:
        raise SystemExit("only %d cases created over HTTP to replay" % n)
    tenth, _, rss_tenth = cli_rss(binary, db, since, ["--share", "100", "--sample", str(n // 10)])
    cmd = "arbiter backtest --policy (the service's) --since (the run's start) --json --share 100"
    append(res, {"kind": "figure", "name": "backtest_cli", "value": n / took, "cases": n,
                 "unchanged": full["cases"]["unchanged"], "share": full["run"]["share_percent"],
                 "label": "backtest decisions/s, CLI at --share 100, the engine's speed (%d cases"
                          " created over HTTP in this run, %.2f s, %d unchanged)" % (
                              n, took, full["cases"]["unchanged"]),
                 "cmd": cmd})
    append(res, {"kind": "figure", "name": "backtest_rss",
                 "value": {"n": n // 10, "rss_n": rss_tenth, "n10": n, "rss_n10": rss_full},
                 "label": "backtest CLI maximum resident set, N and 10 N cases",
                 "cmd": cmd + " [--sample N]; getrusage(RUSAGE_CHILDREN).ru_maxrss"})

    done = job(base, key, policy, since)
    secs = max(ts(done["finished_at"]) - ts(done["created_at"]), 0.001)
    seen = done["progress"]["seen"]
    append(res, {"kind": "figure", "name": "backtest_job", "value": seen / secs, "cases": seen,
                 "label": "backtest decisions/s, server job (%d cases, %.2f s from created_at to"
                          " finished_at; no other traffic: %d ms of it under the %d %% share)" % (
                              seen, secs, done["report"]["run"]["under_share_ms"],
                              done["report"]["run"]["share_percent"]),
                 "cmd": "POST /v1/policy/backtests {policy, selection: {created_after}}; poll GET"})

    # Alone and during alternate, BT_ROUNDS (8) pairs of DURATION / 2 s
    # each, so that a drift of the shared machine falls on both sides: the
    # figure is the median of the pairs' p99 ratios, beside the median p99
    # of each side.
    rounds = max(int(os.environ.get("BT_ROUNDS", "8")), 1)
    step = max(dur_i // 2, 2)
    stop = threading.Event()
    running = threading.Event()
    in_job = threading.Event()
    busy = [0.0]
    errors: list[str] = []
    runs: list[dict] = []

    def jobs() -> None:
        while not stop.is_set():
            running.wait()
            if stop.is_set():
                return
            t = time.perf_counter()
            in_job.set()
            try:
                runs.append(job(base, key, policy, since)["report"]["run"])
            except BaseException as e:  # reported after the run
                errors.append(str(e))
                return
            finally:
                in_job.clear()
            busy[0] += time.perf_counter() - t

    th = threading.Thread(target=jobs)
    th.start()
    pairs, alone_lat, during_lat, alone_req, during_req, alone_us, during_us = [], [], [], 0, 0, 0, 0
    wall = 0.0
    for i in range(rounds):
        running.clear()
        # the job in flight when a round ends finishes first: the next
        # alone round starts with the database to itself
        while in_job.is_set() and not errors:
            time.sleep(0.1)
        a = paced(lua_dir, base, rate_i, step, os.path.join(out, "wrk_bt_alone%d.out" % i),
                  "btalone%d_%d" % (time.time(), i))
        running.set()
        time.sleep(0.3)
        t0 = time.perf_counter()
        d = paced(lua_dir, base, rate_i, step, os.path.join(out, "wrk_bt_during%d.out" % i),
                  "btduring%d_%d" % (time.time(), i))
        wall += time.perf_counter() - t0
        pairs.append(d["p99_us"] / max(a["p99_us"], 1))
        alone_lat.append(a["p99_us"])
        during_lat.append(d["p99_us"])
        alone_req += a["requests"]
        during_req += d["requests"]
        alone_us += a["duration_us"]
        during_us += d["duration_us"]
    running.clear()
    stop.set()
    running.set()
    th.join()
    if errors:
        raise SystemExit(errors[0])
    ratio = statistics.median(pairs)
    # the jobs' speed while the share held (the creates ran): their cases
    # replayed in batches begun under it over the time it held
    under_ms = sum(r["under_share_ms"] for r in runs)
    under_rate = sum(r["cases_under_share"] for r in runs) * 1000 / under_ms if under_ms else None
    share = runs[0]["share_percent"] if runs else None
    append(res, {"kind": "figure", "name": "backtest_p99",
                 "value": {"alone_us": statistics.median(alone_lat),
                           "during_us": statistics.median(during_lat), "ratio": ratio,
                           "pairs": [round(x, 3) for x in pairs], "rate": rate_i,
                           "alone_rps": alone_req * 1e6 / max(alone_us, 1),
                           "share": share, "under_share_rate": under_rate,
                           "under_share_s": under_ms / 1000,
                           "during_rps": during_req * 1e6 / max(during_us, 1)},
                 "label": "create p99 at %d/s paced, alone / while the server runs backtest jobs back to"
                          " back: median of %d alternating pairs of %d s (%.0f s of jobs over %.0f s"
                          " of runs with them)" % (rate_i, rounds, step, min(busy[0], wall), wall),
                 "cmd": "BENCH_PACED=wrk_create.lua BENCH_RATE=%d wrk -t2 -c8 -d%ds -s"
                        " tests/bench/wrk_paced.lua, %d times without and with jobs, alternating"
                        % (rate_i, step, rounds)})
    alone = {"p99_us": statistics.median(alone_lat)}
    during = {"p99_us": statistics.median(during_lat)}
    print("backtest: CLI %.0f/s (%d cases), job %.0f/s, RSS %d kB (N/10) / %d kB (N),"
          " create p99 %.1f / %.1f ms (%.2fx), under the %s %% share %s decisions/s" % (
              n / took, n, seen / secs, rss_tenth, rss_full, alone["p99_us"] / 1000,
              during["p99_us"] / 1000, ratio, share,
              "%.0f" % under_rate if under_rate is not None else "none"))


if __name__ == "__main__":
    main()
