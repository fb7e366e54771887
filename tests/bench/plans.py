#!/usr/bin/env python3
"""Plans that prove the request path is bounded (issue 21).

Runs EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of every statement a request
runs, with the parameters that cost most on production-shaped data
(tests/bench/shaped.sh): the hottest shop, the commonest canned text, the
busiest buyer, the hot flagged SKU, a shop with few cases. The prepared
statements (db_stmt in src/) are run under both a custom and a generic plan
(the service prepares them once per connection, so PostgreSQL may switch to
the generic one); the list and desk queries are sent unnamed by the service,
so only custom. Writes run in a transaction that is rolled back.

A statement fails the check when its plan
  - has a Seq Scan on a big table (cases, case_events, case_deadlines,
    idempotency_keys, text_shop_days, stats_counts), or
  - reads more rows from those tables (rows returned + removed by filters,
    times loops) than its bound, or
  - touches more shared buffers (hit + read + dirtied) than its bound;
and the bounds are constants that do not grow with the data: the same
figures hold at 200 k cases (make plan-check) and at 5 M (make bench).
Median execution times over RUNS executions are reported, not checked.

  plans.py --db CONNINFO [--out FILE]     a loaded shaped database (superuser)
  plans.py --make N [--out FILE]          a throwaway database on
                                          ARBITER_ADMIN_URL's server, migrated
                                          with ARBITER_BIN, N shaped cases;
                                          arbiter verify runs on it too
Exit 1 when any statement fails its check.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "api"))
sys.path.insert(0, HERE)

BIG = {"cases", "case_events", "case_deadlines", "idempotency_keys", "text_shop_days", "stats_counts"}
RUNS = 5


def statement(name):
    """A registered statement's SQL (a db_stmt in whichever file of src/)."""
    from report import statement as registered
    return registered(os.path.join(REPO, "src"), name)


def c_source(path):
    """src/path with its string macros (`#define NAME "..." "..."`) written
    out where they are used, so that c_literals reads through them."""
    src = open(os.path.join(REPO, "src", path), encoding="utf-8").read()
    macros = {}
    for m in re.finditer(r'^#define ([A-Z][A-Z0-9_]*)[ \t]+((?:\\\n)?(?:[ \t]*"(?:[^"\\\n]|\\.)*"[ \t]*(?:\\\n)?)+)$',
                         src, re.M):
        macros[m.group(1)] = m.group(2).replace("\\\n", " ")
    for name, text in macros.items():
        src = re.sub(r"(?<!#define )\b%s\b" % name, lambda _m: text, src)
    return src


def c_string(path, var):
    """The text of a `static const char var[] = "..." "...";` in src/."""
    from report import c_literals
    src = c_source(path)
    m = re.search(re.escape(var) + r"\[\]\s*=", src)
    if not m:
        raise SystemExit("plans: %s not found in src/%s" % (var, path))
    return " ".join(c_literals(src, m.end())[0].split())


def lit(v):
    if v is None:
        return "NULL"
    return "'" + str(v).replace("'", "''") + "'"


def psql(conninfo, sql, timeout=600):
    cp = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
                        input=sql, capture_output=True, text=True, timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (cp.stderr.strip(), sql[:400]))
    return cp.stdout


def value(conninfo, sql):
    out = psql(conninfo, sql).strip().splitlines()
    return out[0] if out else None


def walk(node, acc):
    t = node.get("Node Type", "")
    rel = node.get("Relation Name")
    if "Scan" in t and rel in BIG:
        loops = int(node.get("Actual Loops", 1))
        acc["rows"] += (int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
                        + int(node.get("Rows Removed by Index Recheck", 0))) * loops
        acc["scans"].add("%s on %s%s" % (t, rel, (" (" + node["Index Name"] + ")")
                                         if node.get("Index Name") else ""))
        if t == "Seq Scan":
            acc["seq"].add(rel)
    for c in node.get("Plans", []):
        walk(c, acc)


def explain(conninfo, sql, params, mode, write, runs=RUNS, setup=""):
    """runs executions; the plan of the last, every run's time. setup: SQL
    run before each execution, in its transaction (rolled back)."""
    args = "(" + ", ".join(lit(p) for p in params) + ")" if params else ""
    one = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE plan_check%s;\n" % args
    body = ["SET plan_cache_mode = %s;" % mode, "PREPARE plan_check AS %s;" % sql]
    for _ in range(runs):
        body.append(("BEGIN;\n" + setup + "\n" + one + "ROLLBACK;") if write or setup else one)
        if setup:
            # the rolled-back deltas: dead rows the next run's read of
            # stats_delta would scan (the service's table sees a few
            # seconds of deltas between vacuums)
            body.append("VACUUM stats_delta;")
        body.append("\\echo @@@")
    out = psql(conninfo, "\n".join(body) + "\n")
    docs = [json.loads(d) for d in out.split("@@@") if d.strip()]
    times = [d[0]["Execution Time"] for d in docs]
    plan = docs[-1][0]
    acc = {"rows": 0, "scans": set(), "seq": set()}
    walk(plan["Plan"], acc)
    top = plan["Plan"]
    bufs = sum(int(top.get(k, 0)) for k in ("Shared Hit Blocks", "Shared Read Blocks",
                                              "Shared Dirtied Blocks"))
    return {"ms": statistics.median(times), "rows": acc["rows"], "buffers": bufs,
            "scans": sorted(acc["scans"]), "seq": sorted(acc["seq"])}


def list_sql(scope, filters, limit=50):
    """What store_case_list_rows() builds for a key's shop scope (None: every
    shop) and filters, (clause with $?, value) each."""
    sql = ("SELECT (extract(epoch FROM c.created_at) * 1000000)::bigint, c.id,"
           " arbiter_case_json(c, arbiter_deadlines_json(c.id)), c.version, c.kind, c.state,"
           " c.manual_review, c.offer_cents IS NOT NULL, c.agreement_pending,"
           " arbiter_overdue(c.id), c.reason = 'missing_item', c.counter_cents IS NOT NULL,"
           " arbiter_rounds_left(c) FROM ")
    vals = []
    if scope:
        vals.append(scope)
        sql += ("(SELECT DISTINCT unnest($1::text[])) AS s(shop_id) CROSS JOIN LATERAL"
                " (SELECT c.id FROM cases c WHERE c.shop_id = s.shop_id")
    else:
        sql += "cases c WHERE true"
    for clause, v in filters:
        for x in (v if isinstance(v, tuple) else (v,)):
            vals.append(x)
            clause = clause.replace("$?", "$%d" % len(vals), 1)
        sql += " AND " + clause
    vals.append(str(limit + 1))
    if scope:
        sql += (" ORDER BY c.created_at DESC, c.id DESC LIMIT $%d) AS p"
                " JOIN cases c ON c.id = p.id" % len(vals))
    return sql + " ORDER BY c.created_at DESC, c.id DESC LIMIT $%d" % len(vals), vals


def desk_queries():
    """api_queue()'s statement for each queue and api_stats()'s two (the
    window's counters, the open cases now), from src/api_desk.c."""
    from report import c_literals
    src = c_source("api_desk.c")
    m = re.search(r"snprintf\(sql, sizeof\(sql\),", src)
    tmpl = " ".join(c_literals(src, m.end())[0].split())
    queues = {}
    for m in re.finditer(r'strcmp\(name, "([a-z_]+)"\) == 0\)\s*return', src):
        queues[m.group(1)] = " ".join(c_literals(src, m.end())[0].split())
    return ({q: tmpl.replace("%s", f) for q, f in queues.items()}, c_string("api_desk.c", "stats_sql"),
            c_string("api_desk.c", "stats_open_sql"))


def checks(db):
    """(name, sql, params, modes, write, max rows, max buffers)."""
    hot_shop, sku, buyer = "1000000", "SKU-1", "50000001"
    canned = "颜色与图片不符"
    small_shop = value(db, "SELECT shop_id FROM cases ORDER BY shop_id DESC LIMIT 1")
    row = psql(db, "SELECT id, version, order_id, order_doc, evidence, decision, policy_version"
                   "  FROM cases WHERE shop_id = '1000000' AND state = 'awaiting_seller'"
                   " ORDER BY created_at DESC, id DESC LIMIT 1").rstrip("\n").split("|")
    case_id, version, order_id, order_doc, evidence, decision, pv = row
    closed = value(db, "SELECT id FROM cases WHERE shop_id = '1000000' AND state = 'closed'"
                       " ORDER BY created_at DESC, id DESC LIMIT 1")
    old = value(db, "SELECT (extract(epoch FROM created_at) * 1000000)::bigint || '|' || id"
                    "  FROM cases WHERE shop_id = '1000000' ORDER BY created_at, id LIMIT 1 OFFSET 100")
    old_us, old_id = old.split("|")
    ev = psql(db, "SELECT xid::text, id FROM case_events ORDER BY xid DESC, id DESC"
                  " LIMIT 1 OFFSET 1000").strip().split("|")
    scope = "{%s}" % hot_shop
    small_scope = "{%s}" % small_shop
    many_scope = "{%s,1000001,1000002,%s}" % (hot_shop, small_shop)
    both = ["force_custom_plan", "force_generic_plan"]
    custom = ["force_custom_plan"]
    dl = json.dumps([{"name": "seller_response", "after_ms": 432000000, "on_expiry": "auto_refund"}])
    open_ev = json.dumps([{"action": "open", "from_state": None, "to_state": "awaiting_seller",
                           "data": {"kind": "refund", "reason": "quality_defect"}}])
    note_ev = json.dumps([{"action": "note", "from_state": "awaiting_seller",
                           "to_state": "awaiting_seller", "data": {"note": "plan check"}}])
    ord_new = "990000000001"
    cid_new = "c_0000plancheck0000000000000000000"
    create = [hot_shop, buyer, ord_new, sku, "refund", "quality_defect", "awaiting_seller", None,
              "CNY", None, canned, order_doc, evidence, decision, "f", None, pv, dl, "frontend",
              "plan-check", open_ev, "plan-check-key", cid_new, "t", "7", "5", "00" * 32, "20",
              '["accept","reject"]']
    apply_ = [case_id, version, "awaiting_seller", None, "keep", None, "keep", None, None, None,
              None, None, "f", "{}", "[]", "agent", "plan-check", note_ev, "keep", "t", "keep",
              None, "f", None, None, None]
    out = [
        ("create: hot shop, hot flagged SKU, commonest canned text (case_create)",
         statement("case_create"), create, both, True, 40, 400),
        ("create's risk lookup: busiest buyer, commonest text, hot shop (buyer_history)",
         statement("buyer_history"), [buyer, hot_shop, canned, order_id, sku, "4", "2"], both, False, 80, 200),
        ("create's risk lookup: a shop with few cases, commonest text (buyer_history)",
         statement("buyer_history"), [buyer, small_shop, canned, order_id, sku, "4", "2"], both, False, 80, 200),
        ("read by id (case_get_row)", statement("case_get_row"), [case_id, None], both, False, 10, 60),
        ("read by id, seller scope (case_get_row)", statement("case_get_row"), [case_id, scope], both, False, 10, 60),
        ("events of a case (case_events)", statement("case_events"), [closed], both, False, 10, 40),
        ("case exists (case_exists)", statement("case_exists"), [case_id, None], both, False, 5, 20),
        ("action's facts (case_facts)", statement("case_facts"), [case_id, None, version], both, False, 10, 60),
        ("transition: note (case_apply)", statement("case_apply"), apply_, both, True, 20, 200),
        ("create replay by Idempotency-Key (case_by_idem)", statement("case_by_idem"),
         ["shaped", "shaped-1"], both, False, 10, 60),
        ("API key lookup (key_get)", statement("key_get"), ["k_none"], both, False, 5, 20),
        ("event feed from the start, platform key (event_feed)", statement("event_feed"),
         ["0", "0", None, "100"], both, False, 200, 400),
        ("event feed mid-stream, platform key (event_feed)", statement("event_feed"),
         [ev[0], ev[1], None, "100"], both, False, 200, 400),
        ("event feed, hot shop's key (event_feed)", statement("event_feed"),
         ["0", "0", scope, "100"], both, False, 400, 800),
        ("event feed, a small shop's key (event_feed)", statement("event_feed"),
         ["0", "0", small_scope, "100"], both, False, 400, 800),
    ]
    lists = [
        ("none (newest first)", []),
        ("shop_id (hot shop)", [("c.shop_id = $?", hot_shop)]),
        ("shop_id, state (hot shop)", [("c.shop_id = $?", hot_shop), ("c.state = $?", "awaiting_seller")]),
        ("shop_id, state closed (hot shop)", [("c.shop_id = $?", hot_shop), ("c.state = $?", "closed")]),
        ("shop_id, state (small shop)", [("c.shop_id = $?", small_shop), ("c.state = $?", "awaiting_seller")]),
        ("seller key of the hot shop", [], scope),
        ("seller key of the hot shop, state", [("c.state = $?", "awaiting_seller")], scope),
        ("seller key of the hot shop, shop_id, state", [("c.shop_id = $?", hot_shop),
                                                        ("c.state = $?", "awaiting_seller")], scope),
        ("seller key of 4 shops", [], many_scope),
        ("seller key of 4 shops, state", [("c.state = $?", "awaiting_seller")], many_scope),
        ("seller key of 4 shops, buyer_id", [("c.buyer_id = $?", buyer)], many_scope),
        ("state", [("c.state = $?", "awaiting_seller")]),
        ("state (rare)", [("c.state = $?", "in_arbitration")]),
        ("kind", [("c.kind = $?", "refund")]),
        ("kind (rare)", [("c.kind = $?", "complaint")]),
        ("buyer_id (busiest buyer)", [("c.buyer_id = $?", buyer)]),
        ("order_id", [("c.order_id = $?", order_id)]),
        ("created_after", [("c.created_at > $?::timestamptz", "now() - interval '1 day'")]),
        ("created_before (3 days back)", [("c.created_at < $?::timestamptz", "now() - interval '3 days'")]),
        ("shop_id, next page (hot shop, deep)", [("c.shop_id = $?", hot_shop),
            ("(c.created_at, c.id) < ('epoch'::timestamptz + $?::bigint * interval '1 microsecond', $?)",
             (old_us, old_id))]),
    ]
    for entry in lists:
        name, f, sc = entry if len(entry) == 3 else entry + (None,)
        f = [(c, value(db, "SELECT (%s)::timestamptz::text" % v) if "timestamptz" in c and "epoch" not in c
              else v) for c, v in f]
        sql, vals = list_sql(sc, f)
        # a scoped key reads up to a page from each of its shops
        k = sc.count(",") + 1 if sc else 1
        out.append(("list: " + name, sql, vals, custom, False, 400 * k, 1200 * k))
    queues, stats, stats_open = desk_queries()
    for q, sql in sorted(queues.items()):
        out.append(("desk queue " + q, sql, [None, "100"], custom, False, 800, 2400))
    # The window's counters (sql/026): per shop in scope ('' for all) and
    # day, a row per kind|state|outcome, duration bucket (at most 121 of
    # each histogram), auto refunds and breaches; the last 24 hours' opened
    # and refunds; 20 SKUs a day and 30 SKUs' days. None of it grows with
    # the cases: these bounds hold at any size (at most 32 days).
    frm, now = value(db, "SELECT (now() - interval '30 days')::text"), value(db, "SELECT now()::text")
    frm90 = value(db, "SELECT (now() - interval '90 days')::text")
    out.append(("desk stats, 30 days (GET /v1/stats)", stats, [frm, now, None, None],
                custom, False, 8000, 3000))
    out.append(("desk stats, 30 days, hot shop's key (GET /v1/stats)", stats, [frm, now, None, scope],
                custom, False, 8000, 3000))
    out.append(("desk stats, 30 days, seller key of 4 shops (GET /v1/stats)", stats,
                [frm, now, None, many_scope], custom, False, 4 * 8000, 4 * 3000))
    out.append(("desk stats, 90 days, shop_id (GET /v1/stats)", stats, [frm90, now, hot_shop, None],
                custom, False, 3 * 8000, 3 * 3000))
    # The open cases now (sql/027; OPEN_SETUP below gives it something to
    # read): per shop in scope ('' for all), four queue gauges and an hour
    # bucket per hour holding next deadlines before now + 24 h (here 72),
    # plus the bound's partial hours of deadlines read exactly (each checked
    # against its case's other deadlines). None of it grows with the cases.
    for name, params, k in (("", [None, None], 1),
                            (", hot shop's key", [None, scope], 1),
                            (", seller key of 4 shops", [None, many_scope], 4),
                            (", shop_id", [hot_shop, None], 1)):
        out.append(("desk stats, open cases now%s (GET /v1/stats)" % name, stats_open, params,
                    custom, False, 300 * k + 1000, 500 * k + 2000))
    return out


# The shaped set's open cases all have their one deadline 1.5 to 5 days
# ahead and sit in no desk queue: the open-cases read would find nothing
# to read. Before it, in its rolled-back transaction, 2000 open cases (half
# of them the hot shop's) get deadlines spread over the last 48 hours and
# the next 24, 500 go to manual review, and the deltas are folded.
OPEN_SETUP = """
UPDATE case_deadlines d SET due_at = now() - interval '48 hours'
       + (abs(hashtext(d.case_id)) % 4320) * interval '1 minute'
 WHERE d.case_id IN (
       (SELECT c.id FROM cases c WHERE c.shop_id = '1000000' AND c.state = 'awaiting_seller'
         ORDER BY c.created_at DESC, c.id DESC LIMIT 1000)
       UNION (SELECT c.id FROM cases c WHERE c.state = 'awaiting_seller'
               ORDER BY c.created_at DESC, c.id DESC LIMIT 1000));
UPDATE cases SET manual_review = true
 WHERE id IN (SELECT c.id FROM cases c WHERE c.shop_id = '1000000' AND c.state = 'awaiting_seller'
               ORDER BY c.created_at, c.id LIMIT 500);
SELECT arbiter_stats_compact(100000) \\g /dev/null
"""
SETUP = {n: OPEN_SETUP for n in (
    "desk stats, open cases now (GET /v1/stats)",
    "desk stats, open cases now, hot shop's key (GET /v1/stats)",
    "desk stats, open cases now, seller key of 4 shops (GET /v1/stats)",
    "desk stats, open cases now, shop_id (GET /v1/stats)")}


# Request statements known not to be bounded yet: still run and shown, not
# counted as failures; one that comes within its bounds fails the check
# until it is taken off this list.
KNOWN = {}


def run(db, outfile):
    rows, failed = [], 0
    ncases = value(db, "SELECT reltuples::bigint FROM pg_class WHERE relname = 'cases'")
    for name, sql, params, modes, write, max_rows, max_bufs in checks(db):
        for mode in modes:
            t0 = time.time()
            try:
                # a known unbounded statement once: at 5 M it takes minutes
                r = explain(db, sql, params, mode, write, 1 if name in KNOWN else RUNS,
                            SETUP.get(name, ""))
            except RuntimeError as e:
                print("plans: %s (%s): %s" % (name, mode, e), file=sys.stderr)
                failed += 1
                continue
            why = []
            known = KNOWN.get(name)
            if r["seq"]:
                why.append("Seq Scan on " + ", ".join(r["seq"]))
            if r["rows"] > max_rows:
                why.append("%d rows read > %d" % (r["rows"], max_rows))
            if r["buffers"] > max_bufs:
                why.append("%d buffers > %d" % (r["buffers"], max_bufs))
            if known and not why:
                why.append("within its bounds: take it off KNOWN in tests/bench/plans.py")
                known = None
            elif known:
                why = ["known: " + known + " (" + "; ".join(why) + ")"]
            failed += bool(why) and not known
            rows.append((name, mode.replace("force_", "").replace("_plan", ""), r, max_rows,
                         max_bufs, why))
            print("plans: %-5s %s [%s] %.2f ms, %d rows, %d buffers%s (%.1f s)" % (
                "KNOWN" if known else "FAIL" if why else "ok", name, mode, r["ms"], r["rows"], r["buffers"],
                ": " + "; ".join(why) if why else "", time.time() - t0), file=sys.stderr)
    if outfile:
        os.makedirs(os.path.dirname(os.path.abspath(outfile)), exist_ok=True)
        with open(outfile, "w", encoding="utf-8") as f:
            f.write("| statement | plan | median ms | rows read (bound) | buffers (bound) | scans | check |\n")
            f.write("| --- | --- | ---: | ---: | ---: | --- | --- |\n")
            for name, mode, r, mr, mb, why in rows:
                f.write("| %s | %s | %.2f | %d (%d) | %d (%d) | %s | %s |\n" % (
                    name, mode, r["ms"], r["rows"], mr, r["buffers"], mb,
                    "<br>".join(r["scans"]) or "-", "**" + "; ".join(why) + "**" if why else "ok"))
            f.write("\n%s cases (reltuples); %d of %d plans failed their bounds; known unbounded: %s.\n"
                    % (ncases, failed, len(rows), "; ".join(KNOWN) or "none"))
    print("plans: %d of %d plans failed their bounds, %d known unbounded (%s cases)"
          % (failed, len(rows), sum(1 for x in rows if x[0] in KNOWN), ncases), file=sys.stderr)
    return 1 if failed else 0


def make_and_run(n, outfile):
    import helpers as h
    admin, binary = os.environ["ARBITER_ADMIN_URL"], os.environ["ARBITER_BIN"]
    db = h.TestDB(admin, prefix="arbiter_plans_").create()
    try:
        db.migrate(binary, keys=False)
        t0 = time.time()
        cp = subprocess.run(["bash", os.path.join(HERE, "shaped.sh"), db.admin_url, str(n)],
                            capture_output=True, text=True)
        sys.stderr.write(cp.stdout + cp.stderr)
        if cp.returncode != 0:
            return 1
        print("plans: loaded %d shaped cases in %.1f s" % (n, time.time() - t0), file=sys.stderr)
        cp = h.run_bin(binary, ["verify"], database_url=db.service_url)
        sys.stderr.write(cp.stdout + cp.stderr)
        if cp.returncode != 0:
            print("plans: arbiter verify failed on the shaped data", file=sys.stderr)
            return 1
        return run(db.admin_url, outfile)
    finally:
        db.drop()


def main(argv):
    args = dict(zip(argv[1::2], argv[2::2]))
    if "--db" in args:
        return run(args["--db"], args.get("--out"))
    if "--make" in args:
        return make_and_run(int(args["--make"]), args.get("--out"))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
