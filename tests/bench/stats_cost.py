#!/usr/bin/env python3
"""What the stats counters (sql/026) cost the create path, measured.

One throwaway database and one server; wrk runs the create workload
(wrk_create.lua, shops Zipf-distributed) in alternating rounds with the
counter triggers enabled and disabled (ALTER TABLE ... DISABLE TRIGGER by
the owner, between rounds: a measurement device here, not a setting the
service has), so that drift on a shared machine falls on both sides.
Prints each round, the ratio of the medians (with / without) and the
median of each round's ratio (the steadier figure under other load).

  ARBITER_BIN=... ARBITER_ADMIN_URL=... stats_cost.py [ROUNDS] [SECONDS] [CONNS]
"""
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scratch import h, served, wrk  # noqa: E402

TRIGGERS = [("cases", "cases_stats_insert"), ("cases", "cases_stats_update"),
            ("case_events", "case_events_stats")]


def set_triggers(db, on: bool) -> None:
    h.psql(db.admin_url, "".join("ALTER TABLE %s %s TRIGGER %s;\n" % (t, "ENABLE" if on else "DISABLE", g)
                                 for t, g in TRIGGERS))


def creates(url, key, secs, conns, salt) -> float:
    return wrk(url, "wrk_create.lua", dict(BENCH_FE_KEY=key, BENCH_SHOPS="800",
                                           BENCH_BUYERS="100000", BENCH_RUN_SALT=salt,
                                           BENCH_SHOP_ZIPF="1.1"), secs, conns, "stats_cost")


def main(argv):
    rounds = int(argv[1]) if len(argv) > 1 else 3
    secs = int(argv[2]) if len(argv) > 2 else 8
    conns = int(argv[3]) if len(argv) > 3 else 16
    with served("arbiter_statscost_", "stats-cost") as (db, _, url):
        creates(url, db.keys["frontend"], 3, conns, "warm")
        got = {True: [], False: []}
        for i in range(rounds):
            for on in (True, False) if i % 2 == 0 else (False, True):
                set_triggers(db, on)
                r = creates(url, db.keys["frontend"], secs, conns, "r%d%s" % (i, on))
                got[on].append(r)
                print("stats_cost: round %d, counters %s: %.0f creates/s" % (i, "on " if on else "off", r),
                      flush=True)
        set_triggers(db, True)
        top = h.psql_value(db.admin_url, "SELECT round(100.0 * max(n) / sum(n), 1) FROM"
                           " (SELECT count(*) AS n FROM cases GROUP BY shop_id) x")
    on, off = statistics.median(got[True]), statistics.median(got[False])
    pairs = statistics.median(a / b for a, b in zip(got[True], got[False]))
    print("stats_cost: %d connections, Zipf(1.1) over 800 shops (hottest shop %s %% of cases):"
          " with counters %.0f/s, without %.0f/s (medians of %d rounds of %d s): ratio %.3f;"
          " median of the rounds' ratios %.3f" % (conns, top, on, off, rounds, secs, on / off, pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
