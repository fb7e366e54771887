#!/usr/bin/env python3
"""What the stats update trigger's WHEN costs the note path, 027's against 030's.

027's WHEN compared the decision's severity on every case update that
changed nothing else it watches (a note on an open case), parsing the
decision's json text twice; 030's compares it only for a complaint. One throwaway
database and one server: creates (wrk_create.lua, Zipf shops) make the
cases, then wrk runs the note workload (wrk_note.lua, an agent key with
If-Match) in alternating rounds under each trigger, recreated by the owner
between rounds from the two migrations' own CREATE TRIGGER statements (a
measurement device, not a setting of the service), so drift on a shared
machine falls on both sides. Then the WHEN alone, in one backend: an UPDATE
of every open case's updated_at, which fires the trigger for none, under
each. Prints each round, the medians and the median of the rounds' ratios
(030 / 027).

  ARBITER_BIN=... ARBITER_ADMIN_URL=... stats_when.py [ROUNDS] [SECONDS] [CONNS]
"""
import os
import re
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from scratch import h, served, wrk  # noqa: E402


def create_trigger(migration: str) -> str:
    """The migration's DROP and CREATE of cases_stats_update, as written."""
    with open(os.path.join(REPO, "sql", migration), encoding="utf-8") as f:
        sql = f.read()
    m = re.search(r"^DROP TRIGGER cases_stats_update ON cases;\n"
                  r"CREATE TRIGGER cases_stats_update .*?;\n", sql, re.S | re.M)
    if not m:
        raise SystemExit(f"stats_when: no cases_stats_update trigger in sql/{migration}")
    return "BEGIN;\n" + m.group(0) + "COMMIT;\n"


def open_cases(db, path: str) -> None:
    """Writes "id version" of each open case, for wrk_note.lua's If-Match."""
    with open(path, "w") as f:
        f.write(h.psql(db.admin_url, "SELECT id || ' ' || version FROM cases"
                       " WHERE state = 'awaiting_seller'").stdout)


def alternate(rounds: int, run) -> dict:
    """run(which) under 027's trigger and 030's, in alternating order."""
    got = {"027": [], "030": []}
    for i in range(rounds):
        for which in ("027", "030") if i % 2 == 0 else ("030", "027"):
            got[which].append(run(i, which))
    return got


def main(argv):
    rounds = int(argv[1]) if len(argv) > 1 else 5
    secs = int(argv[2]) if len(argv) > 2 else 8
    conns = int(argv[3]) if len(argv) > 3 else 16
    triggers = {"027": create_trigger("027_stats_open_gauges.sql"),
                "030": create_trigger("030_stats_trigger_severity_for_complaints.sql")}
    with served("arbiter_statswhen_", "stats-when") as (db, _, url):
        wrk(url, "wrk_create.lua", dict(BENCH_FE_KEY=db.keys["frontend"], BENCH_SHOPS="800",
                                        BENCH_BUYERS="100000", BENCH_RUN_SALT="cases",
                                        BENCH_SHOP_ZIPF="1.1"), 10, conns, "stats_when")
        size = h.psql_value(db.admin_url, "SELECT count(*) || ' cases, decision '"
                            " || round(avg(pg_column_size(decision))) || ' bytes stored, '"
                            " || round(avg(octet_length(decision::text))) || ' as text'"
                            " FROM cases WHERE state = 'awaiting_seller'")
        actions = os.path.join(tempfile.mkdtemp(prefix="stats-when-"), "actions.txt")
        note = dict(BENCH_KEY=db.keys["agent"], BENCH_ACTION_FILE=actions)
        open_cases(db, actions)
        wrk(url, "wrk_note.lua", note, 3, conns, "stats_when")

        def notes(i, which):
            h.psql(db.admin_url, triggers[which])
            open_cases(db, actions)     # the versions moved on in the last round
            r = wrk(url, "wrk_note.lua", note, secs, conns, "stats_when")
            print("stats_when: round %d, %s's WHEN: %.0f notes/s" % (i, which, r), flush=True)
            return r

        def update_ms(i, which):
            # the WHEN alone, in one backend: an UPDATE of every open case's
            # updated_at fires the trigger for none of them (rolled back)
            h.psql(db.admin_url, triggers[which])
            out = h.psql(db.admin_url, "BEGIN; EXPLAIN (ANALYZE, FORMAT JSON) UPDATE cases"
                         " SET updated_at = updated_at + interval '1 microsecond'"
                         " WHERE state = 'awaiting_seller'; ROLLBACK;").stdout
            return float(re.search(r'"Execution Time": ([\d.]+)', out).group(1))

        got = alternate(rounds, notes)
        ms = alternate(rounds, update_ms)
        h.psql(db.admin_url, triggers["030"])
        shutil.rmtree(os.path.dirname(actions))
    per = {k: statistics.median(v) for k, v in ms.items()}
    upd = statistics.median(b / a for a, b in zip(ms["027"], ms["030"]))
    print("stats_when: UPDATE of the open cases' updated_at (the WHEN alone, %d rounds):"
          " 027's %.1f ms, 030's %.1f ms (medians); median of the rounds' ratios (030 / 027) %.3f"
          % (rounds, per["027"], per["030"], upd))
    old, new = statistics.median(got["027"]), statistics.median(got["030"])
    pairs = statistics.median(b / a for a, b in zip(got["027"], got["030"]))
    print("stats_when: %s; %d connections: notes/s with 030's WHEN %.0f, 027's %.0f"
          " (medians of %d rounds of %d s): ratio %.3f; median of the rounds' ratios %.3f"
          % (size, conns, new, old, rounds, secs, new / old, pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
