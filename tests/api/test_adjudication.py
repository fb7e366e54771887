"""Black-box tests of issue 4 through the service: the dry-run endpoint
decides and stores nothing, and a policy reload (SIGHUP, PUT /v1/policy)
changes the rules for the next case while old cases keep the decision and
the policy_version of their day.

Each test runs its own server on its own database, with its own copy of the
shipped policy where it rewrites the file.
"""
from __future__ import annotations

import copy
import json
import signal
import time
from pathlib import Path

import helpers as h


def changed_mind_return(days_since_delivery: int) -> dict:
    body = h.case_body(kind="return", reason="changed_mind",
                       description=h.uniq("changed my mind about the colour"))
    delivered = h.now_utc() - h.dt.timedelta(days=days_since_delivery)
    body["order"]["delivered_at"] = h.fmt_time(delivered)
    body["order"]["shipped_at"] = h.fmt_time(delivered - h.dt.timedelta(days=2))
    body["order"]["paid_at"] = h.fmt_time(delivered - h.dt.timedelta(days=3))
    body.pop("evidence", None)
    return body


def rule(decision: dict, rule_id: str) -> dict:
    found = [r for r in decision["rules"] if r["id"] == rule_id]
    assert len(found) == 1, (rule_id, decision["rules"])
    return found[0]


def test_dry_run_decides_and_stores_nothing(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="dry", policy=h.DEFAULT_POLICY)
    cases, events = db.count("cases"), db.count("case_events")

    late = h.late_shipment_body()
    r = s.post("/v1/adjudications", late)
    assert r.status == 200, r
    d = r.body["decision"]
    assert r.body["stored"] is False and r.body["state"] == "refund_pending", r.body
    assert d["outcome"] == "auto_approve" and d["fault"] == "seller", d
    price = late["order"]["price_cents"]
    penalty = min((price * 30 + 50) // 100, 50000)
    assert d["refund"]["penalty_cents"] == penalty, d["refund"]
    assert d["refund"]["total_cents"] == d["refund"]["item_cents"] + \
        d["refund"]["shipping_cents"] + d["refund"]["penalty_cents"], d["refund"]

    r = s.post("/v1/adjudications", changed_mind_return(10))
    assert r.status == 200, r
    d = r.body["decision"]
    assert d["outcome"] == "ineligible" and r.body["state"] == "awaiting_buyer_reply", d
    nr = rule(d, "R-NOREASON-7D")
    assert nr["result"] == "fail" and "> 7 days: not eligible" in nr["reason"], nr
    assert nr["reason"].startswith("delivered ") and "10 days" in nr["reason"], nr

    no_photo = h.case_body()
    no_photo.pop("evidence")
    r = s.post("/v1/adjudications", no_photo)
    assert r.status == 422 and "/evidence" in [e["pointer"] for e in r.body["errors"]], r

    # the same input opened for real decides the same
    r2 = s.post("/v1/cases", changed_mind_return(10))
    assert r2.status == 201 and r2.body["decision"]["outcome"] == "ineligible", r2
    assert db.count("cases") == cases + 1 and db.count("case_events") == events + 1


def test_sighup_reload_changes_the_next_case_and_keeps_old_versions(make_db, make_server, tmp_path):
    db = make_db()
    doc = json.loads(Path(h.DEFAULT_POLICY).read_text())
    v1, v2 = h.uniq("2099.1-test"), h.uniq("2099.2-test")
    doc["version"] = v1
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    s = make_server(db.service_url, name="reload", policy=str(path))

    old = s.post("/v1/cases", changed_mind_return(10))
    assert old.status == 201, old
    assert old.body["decision"]["outcome"] == "ineligible" and old.body["policy_version"] == v1

    # the shop now allows 30 days: a new version, reloaded by SIGHUP
    doc2 = copy.deepcopy(doc)
    doc2["version"] = v2
    doc2["no_reason"]["days"] = 30
    path.write_text(json.dumps(doc2))
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while s.get("/v1/policy").body.get("version") != v2:
        assert time.monotonic() < deadline, "SIGHUP did not reload the policy"
        time.sleep(0.1)

    new = s.post("/v1/cases", changed_mind_return(10))
    assert new.status == 201, new
    assert new.body["decision"]["outcome"] == "seller_review", new.body["decision"]
    assert new.body["state"] == "awaiting_seller" and new.body["policy_version"] == v2
    assert rule(new.body["decision"], "R-NOREASON-7D")["result"] == "pass"

    # the old case keeps the decision and version of its day, on the case
    # and on its open event
    again = s.get(f"/v1/cases/{old.body['id']}").body
    assert again["policy_version"] == v1 and again["decision"] == old.body["decision"]
    ev = s.get(f"/v1/cases/{old.body['id']}/events").body["items"][0]
    assert ev["action"] == "open" and ev["policy_version"] == v1
    assert ev["data"]["decision"]["outcome"] == "ineligible"
    # every version is kept with its hash
    # (versions are generated here: letters, digits, dots and dashes only)
    assert h.psql_value(db.admin_url, "SELECT count(*) FROM policies WHERE version IN "
                        f"('{v1}', '{v2}') AND octet_length(sha256) = 32") == "2"

    # an invalid file never replaces a valid policy
    path.write_text('{"version": "broken", "durations": {"seller_response": "P5X"}}')
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert s.alive() and s.get("/v1/policy").body["version"] == v2
    assert s.stop() == 0


def test_put_policy_validates_and_versions_are_immutable(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="put", policy=h.DEFAULT_POLICY)
    admin = db.keys["admin"]
    doc = s.get("/v1/policy").body

    bad = copy.deepcopy(doc)
    bad["version"] = h.uniq("bad")
    bad["durations"]["seller_response"] = "P5X"
    r = s.request("PUT", "/v1/policy", body=bad, key=admin)
    assert r.status == 422, r
    assert "/durations/seller_response" in [e["pointer"] for e in r.body["errors"]], r.body
    assert s.get("/v1/policy").body["version"] == doc["version"]

    # the version in use, with other content: refused, so old decisions
    # stay explainable by the document their version names
    clash = copy.deepcopy(doc)
    clash["no_reason"]["days"] = 99
    r = s.request("PUT", "/v1/policy", body=clash, key=admin)
    assert r.status == 409 and r.body["type"].endswith("policy-version-taken"), r

    good = copy.deepcopy(doc)
    good["version"] = h.uniq("2099.3-test")
    good["no_reason"]["days"] = 15
    r = s.request("PUT", "/v1/policy", body=good, key=admin)
    assert r.status == 200 and r.body["version"] == good["version"], r
    assert s.request("PUT", "/v1/policy", body=good, key=db.keys["agent"]).status == 403
