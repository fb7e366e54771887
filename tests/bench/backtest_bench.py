"""Backtest speed: replayed decisions per second next to the live create rate.

Usage: ARBITER_ADMIN_URL=<superuser conninfo> backtest_bench.py BINARY [REAL [FACTOR]]

In a throwaway database: REAL cases (default 300) are opened over HTTP by
8 client threads (the create rate and latencies this client sees), then
copied FACTOR times (default 100) in SQL, open events and all, so that the
replay has REAL x FACTOR cases whose open events carry their inputs (the
shaped data set of tests/bench/shaped.sql predates them). Then
`arbiter backtest --json` replays all of them under the shipped policy
(every case must come back unchanged), timed: decisions per second on a
database nobody else writes to (the share, ARBITER_BACKTEST_SHARE %,
default 10, holds only while others write). `make bench` runs
tests/bench/backtest_load.py instead, on the cases its own run created. Last, REAL more creates while the server runs a
backtest job (POST /v1/policy/backtests), for the create p99 with and
without it. Prints one markdown table; never
asserts a speed (two shared cores make the figures noisy: compare ratios).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
import helpers as h  # noqa: E402

THREADS = 8


def creates(server: h.Server, n: int, tag: str) -> tuple[float, list[float]]:
    """n creates over THREADS threads: (creates per second, latencies in ms)."""
    kinds = [("refund", "quality_defect"), ("return", "changed_mind"), ("refund", "late_shipment"),
             ("complaint", "poor_service"), ("exchange", "wrong_item"), ("repair", "quality_defect")]

    def one(i: int) -> float:
        k, r = kinds[i % len(kinds)]
        b = h.case_body(shop_id=f"bench-{i % 40}", kind=k, reason=r,
                        description=f"{tag} case {i} of the backtest bench")
        if r == "late_shipment":
            b["order"].pop("shipped_at")
            b["order"].pop("delivered_at")
        t = time.perf_counter()
        resp = server.post("/v1/cases", b)
        ms = (time.perf_counter() - t) * 1000
        assert resp.status == 201, resp
        return ms

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(THREADS) as ex:
        lat = list(ex.map(one, range(n)))
    return n / (time.perf_counter() - t0), lat


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] if len(xs) >= 100 else max(xs)


def multiply(admin_url: str, factor: int) -> int:
    """Copies every case and its open event factor - 1 times (new ids, a
    millisecond apart); the copies' digests are not recomputed (verify is
    not the point of this throwaway database)."""
    h.psql(admin_url, f"""
SET session_replication_role = replica;
CREATE TEMP TABLE m AS SELECT c.id AS src, g,
       'c_' || substr(md5(c.id || ':' || g), 1, 32) AS id FROM cases c, generate_series(1, {factor - 1}) g;
DO $$DECLARE cols text; vals text; BEGIN
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
         string_agg(CASE attname WHEN 'id' THEN 'm.id' WHEN 'idem_key' THEN 'NULL'
                      WHEN 'idem_scope' THEN 'NULL'
                      WHEN 'created_at' THEN 'c.created_at + m.g * interval ''1 millisecond'''
                      ELSE 'c.' || quote_ident(attname) END, ', ' ORDER BY attnum)
    INTO cols, vals FROM pg_attribute
   WHERE attrelid = 'cases'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
  EXECUTE format('INSERT INTO cases (%s) SELECT %s FROM cases c JOIN m ON m.src = c.id', cols, vals);
END$$;
INSERT INTO case_events (case_id, shop_id, seq, at, actor_role, actor_id, action, from_state,
                         to_state, data, policy_version, prev_hash, hash)
SELECT m.id, e.shop_id, e.seq, e.at + m.g * interval '1 millisecond', e.actor_role, e.actor_id,
       e.action, e.from_state, e.to_state, e.data, e.policy_version, e.prev_hash, e.hash
  FROM case_events e JOIN m ON m.src = e.case_id WHERE e.seq = 1;
ANALYZE cases; ANALYZE case_events;
""", timeout=600)
    return int(h.psql_value(admin_url, "SELECT count(*) FROM cases;"))


def backtest(binary: str, url: str, policy: str) -> tuple[float, dict]:
    t = time.perf_counter()
    cp = h.run_bin(binary, ["backtest", "--policy", policy, "--json"], database_url=url, timeout=900)
    took = time.perf_counter() - t
    assert cp.returncode == 0, cp.stderr
    return took, json.loads(cp.stdout)


def main() -> None:
    binary = sys.argv[1]
    real = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    factor = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    admin = os.environ["ARBITER_ADMIN_URL"]
    db = h.TestDB(admin, prefix="arbiter_btbench_").create()
    logs = tempfile.mkdtemp(prefix="arbiter-btbench-")
    server = None
    try:
        db.migrate(binary)
        server = h.Server(binary, db.service_url, logs, name="btbench", policy=h.DEFAULT_POLICY)
        server.start()
        rate, lat_alone = creates(server, real, "first")
        total = multiply(db.admin_url, factor)
        took, rep = backtest(binary, db.service_url, h.DEFAULT_POLICY)
        assert rep["cases"]["seen"] == total and rep["cases"]["unchanged"] == total, rep["cases"]
        # creates while a job of the server (its niced thread) reads
        admin_key = db.keys["admin"]
        policy = server.get("/v1/policy", key=admin_key).body
        job = server.post("/v1/policy/backtests", {"policy": policy}, key=admin_key)
        assert job.status == 202, job
        time.sleep(0.3)
        rate_during, lat_during = creates(server, real, "during")
        still = server.get(job.headers["Location"], key=admin_key).body["state"] == "running"
        while server.get(job.headers["Location"], key=admin_key).body["state"] == "running":
            time.sleep(0.5)
        print("| backtest bench | value |")
        print("| --- | --- |")
        print(f"| cases replayed (real x copies) | {total} ({real} x {factor}) |")
        print(f"| replay wall time | {took:.2f} s |")
        print(f"| replayed decisions per second (1 connection; {rep['run']['under_share_ms']} ms under the {rep['run']['share_percent']} % share) | {total / took:,.0f} |")
        print(f"| creates per second ({THREADS} client threads, HTTP) | {rate:,.0f} |")
        print(f"| replay / create rate | {total / took / rate:.1f} x |")
        print(f"| 1 M cases at this rate | {1e6 / (total / took):.0f} s |")
        print(f"| create p99 alone / during a backtest | {p99(lat_alone):.1f} ms / {p99(lat_during):.1f} ms"
              f" ({p99(lat_during) / p99(lat_alone):.2f} x; the backtest {'outlasted' if still else 'ended before'}"
              f" the creates) |")
    finally:
        if server:
            server.stop()
        db.drop()


if __name__ == "__main__":
    main()
