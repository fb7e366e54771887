"""GET /v1/stats from the counters the writes maintain (sql/026, issue 21).

After a scripted set of creates, actions and expiries (the session's
database and fast-policy server), the stats of an admin (agent) key, a seller key of one shop and a
shop filter equal what direct SQL over cases and events gives (the
expectation is computed here, never read from the summary); the
percentiles are within the histogram's stated error of the exact
percentile_cont; the deltas fold into the counters without changing the
reply; emptied counters show nothing, and the backfill brings them back."""

from __future__ import annotations

import datetime as dt
import random
import time
import urllib.parse

import pytest

import helpers as h
from test_desk import Desk, act_ok, wait_for

# the stated bound (openapi: Durations): within 12.2 % of the exact value,
# plus 0.5 s for values under a second
REL, ABS = 0.122, 0.5
QUALITY = "('quality_defect', 'not_as_described', 'safety_hazard')"


def q(db, sql: str) -> list[list[str]]:
    out = h.psql(db.admin_url, sql).stdout.strip()
    return [line.split("|") for line in out.splitlines()] if out else []


def q_many(db, sqls: list[str]) -> list[list[list[str]]]:
    """Several queries' rows from one psql run (each ends with a marker)."""
    out = h.psql(db.admin_url, "".join(x + ";\n\\echo @@@\n" for x in sqls)).stdout
    parts = out.split("@@@\n")[:len(sqls)]
    return [[line.split("|") for line in p.strip().splitlines()] for p in parts]


def lit_array(shops) -> str:
    return "NULL::text[]" if shops is None else \
        "ARRAY[%s]::text[]" % ",".join(h.quote_literal(s) for s in shops)


def expected(db, shops, frm: dt.datetime, to: dt.datetime) -> dict:
    """The reply's window figures counted from cases and events (shops:
    None for every shop), over the whole UTC days [frm, to) covers."""
    d0 = frm.astimezone(dt.timezone.utc).date()
    d1 = (to - dt.timedelta(microseconds=1)).astimezone(dt.timezone.utc).date() + dt.timedelta(days=1)
    cond = (f"c.created_at >= '{d0}'::timestamp AT TIME ZONE 'UTC'"
            f" AND c.created_at < '{d1}'::timestamp AT TIME ZONE 'UTC'"
            f" AND ({lit_array(shops)} IS NULL OR c.shop_id = ANY ({lit_array(shops)}))")
    hour0 = to.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0) \
        - dt.timedelta(hours=23)
    cases, first, resol, auto, breaches, top, opened, refunds = q_many(db, [
        f"SELECT kind, state, coalesce(outcome, '') FROM cases c WHERE {cond}",
        "SELECT extract(epoch FROM min(e.at) - c.created_at) FROM cases c"
        " JOIN case_events e ON e.case_id = c.id"
        f" WHERE {cond} AND e.seq > 1 AND e.actor_role IN ('seller', 'agent')"
        " GROUP BY c.id, c.created_at",
        "SELECT extract(epoch FROM c.updated_at - c.created_at) FROM cases c"
        f" WHERE {cond} AND c.state IN ('refunded', 'closed')",
        "SELECT count(*), coalesce(sum((e.data->>'total_cents')::bigint), 0)"
        " FROM cases c JOIN case_events e ON e.case_id = c.id"
        f" WHERE {cond} AND e.action = 'refund.instructed'"
        " AND e.data->>'reason' IN ('auto_approve', 'seller_silent')",
        "SELECT count(*) FROM cases c JOIN case_events e ON e.case_id = c.id"
        f" WHERE {cond} AND e.action = 'sla.breached'",
        f"SELECT sku, count(*) FROM cases c WHERE {cond} AND c.reason IN {QUALITY}"
        " GROUP BY sku ORDER BY count(*) DESC, sku LIMIT 10",
        "SELECT to_char(date_trunc('hour', c.created_at AT TIME ZONE 'UTC'),"
        " 'YYYY-MM-DD\"T\"HH24'), count(*) FROM cases c"
        f" WHERE {cond} GROUP BY 1",
        "SELECT to_char(date_trunc('hour', e.at AT TIME ZONE 'UTC'),"
        " 'YYYY-MM-DD\"T\"HH24'), count(*) FROM cases c"
        " JOIN case_events e ON e.case_id = c.id"
        f" WHERE {cond} AND e.action = 'refund.instructed' GROUP BY 1"])
    by = lambda i: {k: sum(1 for r in cases if r[i] == k) for k in {r[i] for r in cases if r[i]}}
    first = [float(r[0]) for r in first]
    resol = [float(r[0]) for r in resol]
    auto, breaches = auto[0], breaches[0][0]
    opened, refunds = dict(opened), dict(refunds)
    hours = [hour0 + dt.timedelta(hours=i) for i in range(24)]
    key = lambda t: t.strftime("%Y-%m-%dT%H")
    return {
        "cases": {"total": len(cases), "by_kind": by(0), "by_state": by(1), "by_outcome": by(2)},
        "first": first, "resol": resol,
        "auto_refunds": {"count": int(auto[0]), "cents": int(auto[1])},
        "sla_breaches": int(breaches),
        "top_quality_skus": [{"sku": s, "cases": int(n)} for s, n in top],
        "hourly": [(key(t), int(opened.get(key(t), 0)), int(refunds.get(key(t), 0))) for t in hours],
    }


def percentile_cont(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    r = p * (len(xs) - 1)
    lo, hi = int(r // 1), min(int(r // 1) + 1, len(xs) - 1)
    return xs[lo] + (r - lo) * (xs[hi] - xs[lo])


def close(got, exact) -> bool:
    if exact is None or got is None:
        return got is None and exact is None
    return abs(got - exact) <= REL * exact + ABS


def compare(st: dict, ex: dict) -> list[str]:
    """What differs between a reply and the expectation ([] when none)."""
    bad = []
    for k in ("cases", "auto_refunds", "sla_breaches", "top_quality_skus"):
        if st[k] != ex[k]:
            bad.append(f"{k}: {st[k]} != {ex[k]}")
    hourly = [(x["hour"][:13], x["opened"], x["refunds"]) for x in st["hourly"]]
    if hourly != ex["hourly"]:
        bad.append(f"hourly: {hourly} != {ex['hourly']}")
    for name, xs in (("first_seller_response_seconds", ex["first"]),
                     ("resolution_seconds", ex["resol"])):
        d = st[name]
        if d["n"] != len(xs):
            bad.append(f"{name}.n: {d['n']} != {len(xs)}")
        for p, f in ((0.5, "median"), (0.9, "p90")):
            if not close(d[f], percentile_cont(xs, p)):
                bad.append(f"{name}.{f}: {d[f]} vs exact {percentile_cont(xs, p)}")
    return bad


def stats(s, key, **query) -> dict:
    r = s.get("/v1/stats?" + urllib.parse.urlencode(query), key=key)
    assert r.status == 200, r
    return r.body


def settled(db, s, key, shops, **query) -> tuple[dict, dict]:
    """A reply and its expectation from a moment no write changed (the
    scheduler keeps expiring and reminding: the expectation is taken on
    both sides of the request and must agree)."""
    deadline = time.monotonic() + 20
    while True:
        to = h.now_utc()
        before = expected(db, shops, to - dt.timedelta(days=30), to)
        st = stats(s, key, **query)
        after = expected(db, shops, to - dt.timedelta(days=30), to)
        if before == after:
            return st, before
        assert time.monotonic() < deadline, "the cases never stopped changing"
        time.sleep(0.3)


def check(db, s, key, shops, **query) -> None:
    deadline = time.monotonic() + 15
    while True:
        st, ex = settled(db, s, key, shops, **query)
        bad = compare(st, ex)
        # an hour may turn between the request and the expectation
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def scripted(server, db):
    """Two fresh shops' cases on the session's database, through the
    session's server (the fast test policy: a silent seller's case expires
    into an automatic refund, a major complaint breaches its first
    response). The other tests' cases stay: the all-shops figures are
    checked against all of them."""
    s = server
    a, b = Desk(s, db), Desk(s, db)
    sku_x, sku_y = h.uniq("SKUX").upper(), h.uniq("SKUY").upper()
    # answered and paid: a first response and a resolution
    for sku in (sku_x, sku_x, sku_y):
        c = a.create("refund", "quality_defect", sku=sku)
        c = act_ok(s, c, "accept", a.seller)
        act_ok(s, c, "refund_executed", db.keys["payment"], payment_ref=h.uniq("pay"))
    # auto-approved at once
    a.create("refund", "late_shipment", late=True)
    # left to the seller's silence: expires into an automatic refund
    silent = a.create("refund", "not_as_described", sku=sku_y)
    # withdrawn; acknowledged by an agent; a major one that breaches
    c = a.create("complaint", sku=sku_x)
    act_ok(s, c, "withdraw", a.buyer)
    c = a.create("complaint")
    act_ok(s, c, "acknowledge", a.agent)
    major = a.create("complaint", complaint={"public_exposure": True})
    # the other shop
    for sku in (sku_x, sku_y):
        b.create("refund", "quality_defect", sku=sku)
    c = b.create("return", "not_as_described", sku=sku_x)
    act_ok(s, c, "accept", b.seller)
    wait_for(s, silent["id"], "refund.instructed")
    wait_for(s, major["id"], "sla.breached")
    return db, s, a, b


def test_stats_equal_a_count_over_cases_and_events(scripted):
    db, s, a, b = scripted
    check(db, s, a.agent, None)                              # every shop
    check(db, s, a.agent, [a.shop], shop_id=a.shop)          # a shop filter
    check(db, s, a.seller, [a.shop])                         # a seller key: its shop only
    check(db, s, b.seller, [b.shop])
    st = stats(s, a.seller)
    assert st["cases"]["total"] == 8 and st["auto_refunds"]["count"] >= 2, st
    assert st["first_seller_response_seconds"]["n"] >= 4 and st["sla_breaches"] >= 1, st
    # another shop's seller asking for this shop sees none of it
    assert stats(s, b.seller, shop_id=a.shop)["cases"]["total"] == 0


def test_stats_window_is_whole_utc_days(scripted):
    db, s, a, _ = scripted
    now = h.now_utc()
    st = stats(s, a.agent, **{"from": h.fmt_time(now - dt.timedelta(hours=1)),
                              "to": h.fmt_time(now + dt.timedelta(minutes=1))})
    f, t = h.parse_time(st["from"]), h.parse_time(st["to"])
    assert (f.hour, f.minute, t.hour, t.minute) == (0, 0, 0, 0), st
    assert f <= now - dt.timedelta(hours=1) and t >= now + dt.timedelta(minutes=1), st
    # yesterday and before: none of these cases
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    early = stats(s, a.agent, **{"from": h.fmt_time(day - dt.timedelta(days=3)),
                                 "to": h.fmt_time(day)})
    assert early["cases"]["total"] == 0 and early["hourly"][-1]["opened"] == 0, early


def test_deltas_fold_without_changing_the_reply(scripted):
    db, s, a, _ = scripted
    # the housekeeping loop folds every few seconds
    deadline = time.monotonic() + 20
    while h.psql_value(db.admin_url, "SELECT count(*) FROM stats_delta") != "0":
        assert time.monotonic() < deadline, "stats_delta never emptied\n" + s.log_tail(20)
        time.sleep(0.5)
    assert int(h.psql_value(db.admin_url, "SELECT count(*) FROM stats_counts")) > 0
    check(db, s, a.agent, None)
    check(db, s, a.seller, [a.shop])


def test_backfill_rebuilds_emptied_counters(scripted):
    db, s, a, _ = scripted
    h.psql(db.admin_url, "DELETE FROM stats_counts; DELETE FROM stats_delta;")
    # the reply reads the counters, not the cases: emptied, it shows nothing
    assert stats(s, a.agent)["cases"]["total"] == 0
    rows = int(h.psql_value(db.admin_url, "SELECT arbiter_stats_backfill()"))
    assert rows > 0
    check(db, s, a.agent, None)
    check(db, s, a.seller, [a.shop])


def test_histogram_percentiles_within_the_stated_bound(scripted):
    """arbiter_stats_pct over arbiter_stats_bucket's buckets against the
    exact percentile_cont, on log-uniform samples from 0.1 s to 100 days."""
    db = scripted[0]
    rng = random.Random(26)
    ps = (0.0, 0.5, 0.9, 0.99, 1.0)
    for trial in range(6):
        xs = [10 ** rng.uniform(-1, 6.94) for _ in range(rng.choice((1, 2, 7, 200, 1500)))]
        vals = ",".join("(%r)" % x for x in xs)
        got = q(db, "WITH x(v) AS (VALUES %s), b AS (SELECT arbiter_stats_bucket(v) AS b,"
                    " count(*) AS n FROM x GROUP BY 1)"
                    " SELECT arbiter_stats_pct(array_agg(b ORDER BY b), array_agg(n ORDER BY b), p)"
                    " FROM b, unnest(ARRAY[%s]::float8[]) AS p GROUP BY p ORDER BY p"
                    % (vals, ",".join(map(repr, ps))))
        for p, (g,) in zip(ps, got):
            exact = percentile_cont(xs, p)
            assert close(float(g), exact), (trial, len(xs), p, g, exact)
