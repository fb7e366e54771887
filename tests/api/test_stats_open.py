"""GET /v1/stats's open half from gauges the writes maintain (sql/027, issue 21).

The queue sizes and open_near_deadline, for a seller key of one shop, an
agent key with that shop as filter and an unscoped agent key, equal a
direct count over the open cases (the old query's definition: each case's
next unpaused deadline), taken on both sides of the request, after each
step of a scripted case history: creates, a pause, manual review, a major
complaint, an arbitration, a breach, cases closing. Again after the
deltas are folded (no gauge row left at zero) and after the backfill.
A deadline moved by hand across the bound's partial hour, and a statement
that replaces two deadlines of a case at once, keep the hour buckets equal
to a count of the cases' next deadlines."""

from __future__ import annotations

import time
import urllib.parse

import helpers as h
from test_desk import Desk, act_ok, body, create, days_ago, get, wait_for

QUEUES = ("near_deadline", "overdue", "breached", "manual_review", "major_complaints",
          "in_arbitration")


def lit_array(shops) -> str:
    return "NULL::text[]" if shops is None else \
        "ARRAY[%s]::text[]" % ",".join(h.quote_literal(s) for s in shops)


def expected(db, shops) -> dict:
    """The queues counted over the open cases themselves (shops: None for
    every shop)."""
    row = h.psql_value(db.admin_url, f"""
        SELECT count(*) FILTER (WHERE nd.due_at < now() + interval '24 hours'),
               count(*) FILTER (WHERE nd.due_at <= now()),
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM case_events e
                                WHERE e.case_id = c.id AND e.action = 'sla.breached')),
               count(*) FILTER (WHERE c.manual_review),
               count(*) FILTER (WHERE c.kind = 'complaint' AND c.decision->>'severity' = 'major'),
               count(*) FILTER (WHERE c.state = 'in_arbitration')
          FROM cases c LEFT JOIN LATERAL (SELECT min(d.due_at) AS due_at FROM case_deadlines d
                                           WHERE d.case_id = c.id AND d.paused_at IS NULL) nd ON true
         WHERE c.state NOT IN ('refunded', 'closed')
           AND ({lit_array(shops)} IS NULL OR c.shop_id = ANY ({lit_array(shops)}))""")
    return dict(zip(QUEUES, map(int, row.split("|"))))


def open_stats(s, key, **query) -> dict:
    r = s.get("/v1/stats?" + urllib.parse.urlencode(query), key=key)
    assert r.status == 200, r
    assert r.body["open_near_deadline"] == r.body["queues"]["near_deadline"], r.body
    return r.body["queues"]


def check(db, s, key, shops, **query) -> dict:
    """The reply's queues equal the count, from a moment no write changed
    them (the fast server's scheduler keeps expiring other tests' cases)."""
    deadline = time.monotonic() + 20
    while True:
        before = expected(db, shops)
        got = open_stats(s, key, **query)
        after = expected(db, shops)
        if before == after and got == before:
            return got
        assert time.monotonic() < deadline, (got, before, after)
        time.sleep(0.3)


def check_all(db, s, d) -> dict:
    mine = check(db, s, d.seller, [d.shop])
    assert check(db, s, d.agent, [d.shop], shop_id=d.shop) == mine
    check(db, s, d.agent, None)
    return mine


def buckets_equal_next_deadlines(db, shop) -> None:
    """The shop's hour buckets (folded + not yet) are the hours of its
    cases' next unpaused deadlines, case by case."""
    sh = h.quote_literal(shop)
    got = h.psql(db.admin_url, f"""
        WITH b AS (SELECT label, sum(n) AS n FROM (
                     SELECT label, n FROM stats_counts WHERE shop_id = {sh} AND metric = 'due_h'
                     UNION ALL
                     SELECT label, n FROM stats_delta WHERE shop_id = {sh} AND metric = 'due_h') x
                    GROUP BY label HAVING sum(n) <> 0),
             t AS (SELECT to_char(min(d.due_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS label
                     FROM case_deadlines d JOIN cases c ON c.id = d.case_id
                    WHERE c.shop_id = {sh} AND d.paused_at IS NULL GROUP BY d.case_id),
             e AS (SELECT label, count(*) AS n FROM t GROUP BY label)
        SELECT coalesce(b.label, e.label), b.n, e.n FROM b FULL JOIN e ON e.label = b.label
         WHERE b.n IS DISTINCT FROM e.n""").stdout.strip()
    assert got == "", "buckets (hour|bucket|cases) differ:\n" + got


def folded(db, s, shop) -> None:
    """Waits for the service's housekeeping loop (the runtime role) to fold
    the shop's deltas."""
    deadline = time.monotonic() + 20
    while h.psql_value(db.admin_url, "SELECT count(*) FROM stats_delta"
                                     f" WHERE shop_id = {h.quote_literal(shop)}") != "0":
        assert time.monotonic() < deadline, "the deltas were never folded\n" + s.log_tail(20)
        time.sleep(0.3)


def test_open_queues_equal_a_count_over_the_open_cases(stable_server, server, db):
    d = Desk(stable_server, db)
    s = d.s
    zero = dict.fromkeys(QUEUES, 0)
    assert check_all(db, s, d) == zero

    d.create("refund")                                          # seller_response: days away
    general = d.create("complaint")                             # first response within 24 h
    assert check_all(db, s, d) == dict(zero, near_deadline=1)
    major = d.create("complaint", complaint={"public_exposure": True})
    review = d.create("refund", account={"account_created_at": days_ago(2), "orders_count": 0})
    assert review["manual_review"], review
    arb = d.create("complaint")
    arb = act_ok(s, arb, "escalate", d.agent, statement="The shop refuses any remedy.")
    assert arb["state"] == "in_arbitration", arb
    got = check_all(db, s, d)
    assert (got["major_complaints"], got["manual_review"], got["in_arbitration"]) == (1, 1, 1), got

    # a paused deadline is no next deadline: the case leaves near_deadline
    # (or never was in it) and comes back on resume
    r = s.post(f"/v1/cases/{major['id']}/deadlines/complaint_first_response/pause",
               {"reason": "waiting on the platform"}, key=db.keys["arbiter"])
    assert r.status == 200, r
    major = r.body
    paused = check_all(db, s, d)
    assert paused["near_deadline"] == got["near_deadline"] - 1, (paused, got)
    r = s.post(f"/v1/cases/{major['id']}/deadlines/complaint_first_response/resume", {},
               key=db.keys["arbiter"])
    assert r.status == 200, r
    major = r.body
    assert check_all(db, s, d) == got

    # a breach: a major complaint through the fast server (first response 1 s)
    late = create(server, body(d.shop, "complaint", complaint={"public_exposure": True}),
                  key=d.buyer)
    wait_for(server, late["id"], "sla.breached")
    got = check_all(db, s, d)
    assert (got["breached"], got["major_complaints"]) == (1, 2), got

    # closing: each gauge goes back down
    for c in (late, major, review, general):
        act_ok(s, get(s, c["id"]), "withdraw", d.buyer)
    got = check_all(db, s, d)
    assert (got["breached"], got["major_complaints"], got["manual_review"]) == (0, 0, 0), got
    assert got["in_arbitration"] == 1, got

    # folded: the same figures, and no gauge row left at zero
    folded(db, s, d.shop)
    assert check_all(db, s, d) == got
    assert h.psql_value(db.admin_url, "SELECT count(*) FROM stats_counts WHERE n = 0"
                        f" AND shop_id IN ({h.quote_literal(d.shop)}, '')"
                        " AND metric IN ('open_q', 'due_h')") == "0"
    buckets_equal_next_deadlines(db, d.shop)
    # rebuilt from the cases: the same figures
    h.psql(db.admin_url, "SELECT arbiter_stats_backfill()")
    assert check_all(db, s, d) == got
    buckets_equal_next_deadlines(db, d.shop)


def test_deadline_moves_across_the_partial_hour(stable_server, db):
    d = Desk(stable_server, db)
    s = d.s
    c = d.create("refund")                                     # one deadline, days away
    cid = h.quote_literal(c["id"])

    def move(to_sql: str) -> None:
        h.psql(db.admin_url, f"UPDATE case_deadlines SET due_at = {to_sql} WHERE case_id = {cid}")
        buckets_equal_next_deadlines(db, d.shop)

    # inside the bound's own hour, before the bound: counted exactly
    move("greatest(date_trunc('hour', now() + interval '24 hours', 'UTC'),"
         " now() + interval '24 hours' - interval '20 seconds')")
    assert check(db, s, d.seller, [d.shop])["near_deadline"] == 1
    # the same hour, past the bound: not yet
    move("now() + interval '24 hours' + interval '2 minutes'")
    assert check(db, s, d.seller, [d.shop])["near_deadline"] == 0
    # a full hour before the bound's: from the buckets
    move("now() + interval '2 hours'")
    assert check(db, s, d.seller, [d.shop]) == dict.fromkeys(QUEUES, 0) | {"near_deadline": 1}
    check(db, s, d.agent, None)

    # one statement replacing a case's deadlines (as an action's CTEs do):
    # the next one is the earlier of the two inserted
    h.psql(db.admin_url, f"""
        WITH del AS (DELETE FROM case_deadlines WHERE case_id = {cid} RETURNING *)
        INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version)
        SELECT case_id, x.name, now() + x.after, on_expiry, armed_version
          FROM del, (VALUES ('seller_response', interval '30 hours'),
                            ('buyer_return', interval '3 hours')) AS x(name, after)""")
    buckets_equal_next_deadlines(db, d.shop)
    assert check(db, s, d.seller, [d.shop])["near_deadline"] == 1
    h.psql(db.admin_url, f"DELETE FROM case_deadlines WHERE case_id = {cid} AND name = 'buyer_return'")
    buckets_equal_next_deadlines(db, d.shop)
    assert check(db, s, d.seller, [d.shop])["near_deadline"] == 0
    folded(db, s, d.shop)
    buckets_equal_next_deadlines(db, d.shop)
    assert check(db, s, d.seller, [d.shop])["near_deadline"] == 0


def test_a_complaints_severity_set_by_hand_moves_the_gauge(stable_server, db):
    """A repair that rewrites a decision's severity (no service path does):
    a complaint's moves major_complaints both ways, another kind's moves
    nothing (sql/030 compares severities for complaints only)."""
    d = Desk(stable_server, db)
    s = d.s
    general = d.create("complaint")
    refund = d.create("refund")
    before = check(db, s, d.seller, [d.shop])
    assert before["major_complaints"] == 0, before

    def severity(case: dict, to: str) -> None:
        h.psql(db.admin_url, "UPDATE cases SET decision = jsonb_set(decision::jsonb, '{severity}',"
                             f" to_jsonb({h.quote_literal(to)}::text))::json"
                             f" WHERE id = {h.quote_literal(case['id'])}")

    severity(general, "major")
    assert check(db, s, d.seller, [d.shop]) == dict(before, major_complaints=1)
    severity(refund, "major")
    assert check(db, s, d.seller, [d.shop]) == dict(before, major_complaints=1)
    severity(general, "general")
    assert check(db, s, d.seller, [d.shop]) == before
    check(db, s, d.agent, None)
