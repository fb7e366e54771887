"""A throwaway database with one server on it, and one wrk run against it:
what the alternating-round benchmarks (stats_cost.py, stats_when.py) share.

    with served("arbiter_x_", "x") as (db, server, url):
        rate = wrk(url, "wrk_create.lua", {"BENCH_FE_KEY": ...}, 8, 16, "x")

served() reads ARBITER_BIN and ARBITER_ADMIN_URL, migrates, starts the
server with the default policy, and stops it and drops the database on
the way out, whatever happened.
"""
import contextlib
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "api"))
import helpers as h  # noqa: E402


@contextlib.contextmanager
def served(prefix: str, name: str):
    binary, admin = os.environ["ARBITER_BIN"], os.environ["ARBITER_ADMIN_URL"]
    db = h.TestDB(admin, prefix=prefix).create()
    server = None
    try:
        db.migrate(binary)
        server = h.Server(binary, db.service_url, tempfile.mkdtemp(prefix=name + "-"),
                          name=name, policy=h.DEFAULT_POLICY)
        server.start()
        yield db, server, "http://%s:%d" % (server.host, server.port)
    finally:
        if server:
            server.stop()
        db.drop()


def wrk(url: str, script: str, env: dict, secs: int, conns: int, who: str) -> float:
    """Requests/s of one wrk run of tests/bench/<script> (2 threads); exits
    with wrk's output if it failed or any reply was not a 2xx."""
    env = dict(os.environ, BENCH_LUA_DIR=HERE, BENCH_THREADS="2", **env)
    cp = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s",
                         "-s", os.path.join(HERE, script), url],
                        capture_output=True, text=True, env=env)
    m = re.search(r"Requests/sec:\s+([\d.]+)", cp.stdout)
    if cp.returncode != 0 or not m or '"non2xx":0,' not in cp.stdout:
        raise SystemExit(f"{who}: wrk failed:\n" + cp.stdout + cp.stderr)
    return float(m.group(1))
