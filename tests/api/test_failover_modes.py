"""The pool's failover paths that need no replicated cluster (issue 26; the
real failovers are tests/ha): unnamed statements for transaction-mode
poolers (ARBITER_DB_PREPARED=false), and a database that stops accepting
writes, as a demoted primary does: 503 database-read-only with Retry-After,
never 500, and writes again once it is writable."""

from __future__ import annotations

import concurrent.futures as cf

import helpers as h
from helpers import assert_problem, case_body, create_case


def test_unnamed_statements_serve_creates_actions_and_reads(db, make_server):
    s = make_server(db.service_url, name="unnamed", policy=h.DEFAULT_POLICY,
                    env={"ARBITER_DB_PREPARED": "false", "ARBITER_DB_POOL": "4"})
    shop = h.uniq("unnamed")
    _, seller = db.make_key("seller", shops=shop, name="unnamed-seller")
    def body(_):
        # a SKU of its own: sixteen cases of one SKU in one shop are a
        # batch defect, whose event may land on the first case before
        # its accept
        b = case_body(shop_id=shop)
        b["order"]["sku"] = h.uniq("SKU")
        return b

    # concurrent creates share group commits: the pipeline's unnamed path
    with cf.ThreadPoolExecutor(8) as ex:
        made = list(ex.map(lambda i: create_case(s, body(i)), range(16)))
    c = made[0]
    r = s.post(f"/v1/cases/{c['id']}/actions", {"action": "accept"}, key=seller,
               headers={"If-Match": '"1"'})
    assert r.status == 200, r
    assert r.body["version"] == 2
    assert s.get(f"/v1/cases/{c['id']}").body["state"] == r.body["state"]
    ev = s.get(f"/v1/cases/{c['id']}/events").body["items"]
    assert [e["action"] for e in ev][:2] == ["open", "accept"], ev
    listed = h.list_all(s, {"shop_id": shop})
    assert {x["id"] for x in made} == {x["id"] for x in listed}


def test_bad_prepared_setting_stops_start_naming_it(arbiter_bin, db):
    cp = h.run_bin(arbiter_bin, ["serve"], database_url=db.service_url,
                   env={"ARBITER_DB_PREPARED": "sometimes"}, timeout=20)
    assert cp.returncode == 2, cp
    assert "ARBITER_DB_PREPARED" in cp.stderr, cp.stderr


def test_read_only_database_is_503_then_writable_again(make_db, make_server):
    d = make_db()
    s = make_server(d.service_url, name="readonly", policy=h.DEFAULT_POLICY,
                    env={"ARBITER_DB_POOL": "2"})
    assert create_case(s)["state"] == "awaiting_seller"
    h.psql(d.server_admin_url,
           f"ALTER DATABASE {h.quote_ident(d.name)} SET default_transaction_read_only = on;")
    # the pooled connections predate the setting; new ones get it
    h.psql(d.server_admin_url,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
           f" WHERE datname = {h.quote_literal(d.name)} AND pid <> pg_backend_pid();")
    seen_ro = False
    for _ in range(20):
        r = s.post("/v1/cases", case_body())
        assert r.status == 503, r
        assert r.headers.get("Retry-After"), r.headers
        if assert_problem(r, 503)["type"].endswith("database-read-only"):
            seen_ro = True
            break
    assert seen_ro, r
    p = assert_problem(s.wait_status("/readyz", 503, timeout=10), 503)
    assert p["type"].endswith("database-read-only"), p
    h.psql(d.server_admin_url,
           f"ALTER DATABASE {h.quote_ident(d.name)} RESET default_transaction_read_only;")
    # read-only connections were dropped on release: the next ones write
    for _ in range(20):
        r = s.post("/v1/cases", case_body())
        if r.status == 201:
            break
        assert r.status == 503 and r.headers.get("Retry-After"), r
    assert r.status == 201, r
    s.wait_status("/readyz", 200, timeout=10)
