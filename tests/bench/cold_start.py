"""Cold start: what the first requests after a restart cost.

Usage: ARBITER_ADMIN_URL=<superuser conninfo> cold_start.py BINARY [RUNS]
(`make bench-cold` runs it against the private cluster).

In a throwaway database, RUNS times: start `arbiter serve`, time it to the
first /readyz 200 (5 ms polls), then send 16 creates at once, and once they
are answered 16 more. The first 16 meet whatever the pool has not warmed;
the second 16 are the baseline of the same run. Prints one markdown table;
never asserts a speed.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
import helpers as h  # noqa: E402

BURST = 16


def get_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def create_ms(port: int, key: str) -> float:
    body = json.dumps(h.case_body()).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/cases", data=body, method="POST",
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json",
                 "Idempotency-Key": uuid.uuid4().hex})
    t = time.monotonic()
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status != 201:
            raise RuntimeError(f"create answered {r.status}")
    return (time.monotonic() - t) * 1000


def burst(pool: cf.ThreadPoolExecutor, port: int, key: str) -> list[float]:
    return sorted(pool.map(lambda _: create_ms(port, key), range(BURST)))


def one_run(binary: str, url: str, key: str, pool: cf.ThreadPoolExecutor) -> tuple:
    port = h.free_port()
    env = dict(os.environ, ARBITER_DATABASE_URL=url, ARBITER_LISTEN=f"127.0.0.1:{port}",
               ARBITER_POLICY=h.DEFAULT_POLICY)
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while get_status(port, "/readyz") != 200:
            if proc.poll() is not None or time.monotonic() - t0 > 30:
                raise RuntimeError("arbiter did not become ready")
            time.sleep(0.005)
        ready = (time.monotonic() - t0) * 1000
        return ready, burst(pool, port, key), burst(pool, port, key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    if len(sys.argv) < 2 or "ARBITER_ADMIN_URL" not in os.environ:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    db = h.TestDB(os.environ["ARBITER_ADMIN_URL"], prefix="arbiter_cold_").create()
    try:
        db.migrate(binary)
        key = db.keys["frontend"]
        print(f"| run | ready | first {BURST} creates: median | max "
              f"| next {BURST}: median | max |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        with cf.ThreadPoolExecutor(BURST) as pool:
            for i in range(runs):
                ready, first, second = one_run(binary, db.service_url, key, pool)
                print(f"| {i + 1} | {ready:.0f} ms | {statistics.median(first):.1f} ms "
                      f"| {first[-1]:.1f} ms | {statistics.median(second):.1f} ms "
                      f"| {second[-1]:.1f} ms |", flush=True)
    finally:
        db.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
