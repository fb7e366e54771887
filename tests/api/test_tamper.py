"""Black-box tests of issue 18, parts 1 and 4: the service's own database
login cannot rewrite the audit trail, and a shop's key cannot probe other
shops through the dry run.

The review's forgery, run exactly as found (as the service's login): grant
itself UPDATE on case_events, disable the no-update trigger, edit an event
(an offer of 500 becomes 130900), recompute its digest with
arbiter_event_digest, re-enable the trigger. With the service running as a
role that owns nothing (migrations run as the owner, `arbiter migrate
--grant`), the grant gives nothing and every later step is refused; the
event is untouched and `arbiter verify` still passes.
"""
from __future__ import annotations

import helpers as h

FORGERY = [
    "GRANT UPDATE ON case_events TO CURRENT_USER",
    "ALTER TABLE case_events DISABLE TRIGGER case_events_no_update",
    "UPDATE case_events SET data = jsonb_set(data, '{refund_cents}', '130900')"
    " WHERE case_id = '{cid}' AND action = 'offer'",
    "UPDATE case_events e SET hash = arbiter_event_digest(e.prev_hash, e)"
    " WHERE case_id = '{cid}' AND action = 'offer'",
    "ALTER TABLE case_events ENABLE TRIGGER case_events_no_update",
]


def offer_case(server: h.Server, db: h.TestDB) -> dict:
    shop = h.uniq("tamper-shop")
    _, seller = db.make_key("seller", shops=shop, name="tamper-seller")
    c = h.create_case(server, h.case_body(shop_id=shop))
    r = server.post(f"/v1/cases/{c['id']}/actions", {"action": "offer", "refund_cents": 500},
                    key=seller, headers={"If-Match": '"1"'})
    assert r.status == 200, r
    return r.body


def offer_row(db: h.TestDB, cid: str) -> str:
    return h.psql_value(db.admin_url, "SELECT data::text || encode(hash, 'hex') FROM case_events"
                                      f" WHERE case_id = '{cid}' AND action = 'offer';")


def test_the_service_login_cannot_rewrite_history(arbiter_bin, make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="tamper")
    c = offer_case(s, db)
    before = offer_row(db, c["id"])
    refused = []
    for stmt in FORGERY:
        cp = h.psql(db.service_url, stmt.replace("{cid}", c["id"]) + ";", check=False)
        refused.append((stmt.split()[0:3], cp.returncode != 0 or "no privileges" in cp.stderr,
                        cp.stderr.strip().splitlines()[:1]))
    # every step fails: the grant grants nothing (a warning, not an error,
    # from PostgreSQL), the rest are errors
    assert all(ok for _, ok, _ in refused), refused
    assert h.psql_value(db.admin_url, "SELECT has_table_privilege('arbiter', 'case_events',"
                                      " 'UPDATE') OR has_table_privilege('arbiter',"
                                      " 'case_events', 'DELETE');") == "f"
    assert offer_row(db, c["id"]) == before
    for stmt in ("DELETE FROM case_events", "TRUNCATE case_events",
                 "UPDATE cases SET decision = '{}'", "CREATE TABLE x (a int)",
                 "ALTER TABLE cases DISABLE TRIGGER ALL",
                 "DROP TRIGGER case_events_chain ON case_events",
                 # the checkpoints' records: appended, never rewritten (test_checkpoints)
                 "DELETE FROM checkpoint_leaves", "UPDATE checkpoint_leaves SET digest = ''",
                 "UPDATE checkpoints SET line = ''", "TRUNCATE checkpoints CASCADE"):
        cp = h.psql(db.service_url, stmt + ";", check=False)
        assert cp.returncode != 0, (stmt, cp.stdout)
        assert "permission denied" in cp.stderr or "must be owner" in cp.stderr, (stmt, cp.stderr)
    cp = h.run_bin(arbiter_bin, ["verify"], database_url=db.service_url)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # and the service, not owning its schema, says nothing about it
    assert "owns the schema" not in s.log_path.read_text(errors="replace")


def test_a_service_that_owns_its_schema_says_so(arbiter_bin, make_server):
    """Run as the owner (no role split), the service starts but warns in its
    log that its login could rewrite the audit trail."""
    cl = h.PgCluster()
    try:
        cl.start()
        h.migrate_url(arbiter_bin, cl.owner_url())
        s = make_server(cl.owner_url(), name="owner", env={"ARBITER_DB_POOL": "2"},
                        policy=h.DEFAULT_POLICY)
        s.wait_status("/readyz", 200, timeout=15)
        assert "owns the schema" in s.log_path.read_text(errors="replace"), s.log_tail(20)
    finally:
        cl.destroy()


def test_migrate_refuses_to_grant_the_owner_itself(arbiter_bin, make_db):
    db = make_db(migrate=False)
    cp = h.run_bin(arbiter_bin, ["migrate", "--grant", "arbiter_owner"],
                   database_url=db.owner_url)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "must own nothing" in cp.stderr, cp.stderr
    cp = h.run_bin(arbiter_bin, ["migrate", "--frobnicate"], database_url=db.owner_url)
    assert cp.returncode == 2 and "unknown argument" in cp.stderr, cp.stderr


def test_a_dry_run_from_a_shop_key_reveals_nothing_of_other_shops(stable_server, db):
    """The review's probe: seller S-2 asks the dry run about S-1's shop
    (refused, naming the field), or about its own shop with a description
    other shops received (the decision still needs review, but S-2 is not
    told how many shops got it); a platform key sees the counts."""
    s = stable_server
    text = h.uniq("the same canned complaint text")
    for _ in range(3):   # three other shops got this text
        h.create_case(s, h.case_body(shop_id=h.uniq("other-shop"), description=text))
    s1, s2 = h.uniq("probe-s1"), h.uniq("probe-s2")
    _, seller2 = db.make_key("seller", shops=s2, name="probe-seller")
    p = h.assert_problem(s.post("/v1/adjudications", h.case_body(shop_id=s1), key=seller2), 422)
    assert "/order/shop_id" in h.problem_pointers(p), p

    probe = h.case_body(shop_id=s2, description=text)
    seen = s.post("/v1/adjudications", probe, key=seller2)
    platform = s.post("/v1/adjudications", probe)      # the frontend key: every shop
    assert seen.status == 200 and platform.status == 200, (seen, platform)
    rule = {r["id"]: r for r in seen.body["decision"]["rules"]}["R-RISK-SAME-TEXT"]
    full = {r["id"]: r for r in platform.body["decision"]["rules"]}["R-RISK-SAME-TEXT"]
    # the store counts other shops only up to the threshold + 1 (issue 21)
    assert full["result"] == "fired" and "at least 2 other shops" in full["reason"], full
    assert rule["result"] == "fired", rule
    assert "needs review" in rule["reason"] and not any(ch.isdigit() for ch in rule["reason"]), rule
    assert "same_text_other_shops" in platform.body["decision"]["risk"]["signals"], platform.body
    assert "same_text_other_shops" not in seen.body["decision"]["risk"]["signals"], seen.body
    # the decision is the same for both: the signals decide, they are not disclosed
    assert seen.body["decision"]["outcome"] == platform.body["decision"]["outcome"]
    assert seen.body["decision"]["refund"] == platform.body["decision"]["refund"]


def test_verify_replays_each_case_row_from_its_events(arbiter_bin, make_db, make_server):
    """The review's row edit: `UPDATE cases SET offer_cents=…, state=…` (allowed
    to the service's login: those are columns it writes) passed verify.
    verify now rebuilds state, version and refund from the events and
    names the field that differs; a deadline its state does not arm is
    reported too. Each edit is undone before the next."""
    db = make_db()
    # days-long deadlines: the fast policy's 2 s buyer_reply could expire the
    # offer between an edit and its undo on a loaded machine
    s = make_server(db.service_url, name="replay", policy=h.DEFAULT_POLICY)
    c = offer_case(s, db)           # awaiting_buyer_reply, version 2, offer 500
    lit = h.quote_literal(c["id"])

    def verify() -> tuple[int, str]:
        cp = h.run_bin(arbiter_bin, ["verify"], database_url=db.service_url)
        return cp.returncode, cp.stdout + cp.stderr

    assert verify()[0] == 0
    edits = [
        ("state", f"UPDATE cases SET offer_cents = 130900, state = 'refund_pending' WHERE id = {lit}",
         f"UPDATE cases SET offer_cents = 500, state = 'awaiting_buyer_reply' WHERE id = {lit}"),
        ("version", f"UPDATE cases SET version = 7 WHERE id = {lit}",
         f"UPDATE cases SET version = 2 WHERE id = {lit}"),
        ("refund_cents", f"UPDATE cases SET refund_cents = 130900 WHERE id = {lit}",
         f"UPDATE cases SET refund_cents = NULL WHERE id = {lit}"),
        ("deadline seller_response",
         "INSERT INTO case_deadlines (case_id, name, due_at, on_expiry, armed_version)"
         f" VALUES ({lit}, 'seller_response', now() + interval '1 day', 'auto_refund', 2)",
         f"DELETE FROM case_deadlines WHERE case_id = {lit} AND name = 'seller_response'"),
    ]
    for field, edit, undo in edits:
        h.psql(db.service_url if field != "version" else db.admin_url, edit + ";")
        rc, text = verify()
        assert rc == 1, (field, text)
        assert c["id"] in text and field in text, (field, text)
        h.psql(db.admin_url, undo + ";")
        assert verify()[0] == 0, (field, verify())
