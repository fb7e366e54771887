"""Black-box tests of GET /v1/cases/{id}/verify (issue 22, item 2): one
case's audit chain re-hashed by the database with the check `arbiter verify`
runs, so the ops page can show a verdict that catches an edited event row,
not only a broken prev_hash link. Tampering runs as the superuser (the
service's own login cannot: test_tamper.py), on a database of its own.
"""
from __future__ import annotations

import helpers as h

EDIT = ("SET session_replication_role = replica;"  # superuser: no append-only trigger
        " UPDATE case_events SET data = jsonb_set(data, '{refund_cents}', '130900')"
        " WHERE case_id = '{cid}' AND action = 'offer';")
REHASH = ("SET session_replication_role = replica;"
          " UPDATE case_events e SET hash = arbiter_event_digest(e.prev_hash, e)"
          " WHERE case_id = '{cid}' AND action = 'offer';")


def offered_case(s: h.Server, db: h.TestDB, shop: str, seller: str) -> str:
    c = h.create_case(s, h.case_body(shop_id=shop))
    r = s.post(f"/v1/cases/{c['id']}/actions", {"action": "offer", "refund_cents": 500},
               key=seller, headers={"If-Match": '"1"'})
    assert r.status == 200, r
    r = s.post(f"/v1/cases/{c['id']}/actions", {"action": "accept_offer"},
               headers={"If-Match": r.headers["etag"]})
    assert r.status == 200, r
    return c["id"]


def test_verify_catches_an_edited_event_row(arbiter_bin, make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="case-verify")
    shop = h.uniq("verify-shop")
    _, seller = db.make_key("seller", shops=shop)
    cid = offered_case(s, db, shop, seller)
    events = s.get(f"/v1/cases/{cid}/events").body["items"]

    v = s.get(f"/v1/cases/{cid}/verify")
    assert v.status == 200, v
    assert v.body["intact"] is True and v.body["broken"] is None, v
    assert v.body["case_id"] == cid and v.body["events"] == len(events) >= 3, v
    assert v.body["head"] == events[-1]["hash"], v
    assert s.get(f"/v1/cases/{cid}/verify", key=seller).body["intact"] is True

    # an edited row: its stored hash no longer matches its content
    h.psql(db.admin_url, EDIT.replace("{cid}", cid))
    offer_seq = next(e["seq"] for e in events if e["action"] == "offer")
    v = s.get(f"/v1/cases/{cid}/verify")
    assert v.status == 200 and v.body["intact"] is False, v
    assert v.body["broken"] == {"seq": offer_seq,
                                "reason": "hash does not match the event's content"}, v
    cp = h.run_bin(arbiter_bin, ["verify"], database_url=db.service_url)
    assert cp.returncode == 1 and f"case {cid} event seq {offer_seq}:" in cp.stdout, cp.stdout

    # re-hashed to hide it: the next event's link breaks instead
    h.psql(db.admin_url, REHASH.replace("{cid}", cid))
    v = s.get(f"/v1/cases/{cid}/verify")
    assert v.body["intact"] is False, v
    assert v.body["broken"] == {"seq": offer_seq + 1,
                                "reason": "prev_hash does not match the previous event's hash"}, v


def test_verify_is_scoped_like_the_case(db, server):
    shop = h.uniq("verify-scope")
    _, mine = db.make_key("seller", shops=shop)
    _, other = db.make_key("seller", shops=h.uniq("verify-other"))
    c = h.create_case(server, h.case_body(shop_id=shop))
    assert server.get(f"/v1/cases/{c['id']}/verify", key=mine).status == 200
    r = server.get(f"/v1/cases/{c['id']}/verify", key=other)
    assert r.status == 404 and r.body["type"] == "urn:arbiter:problem:not-found", r
    r = server.get("/v1/cases/c_nosuchcase/verify")
    assert r.status == 404, r
    assert server.get(f"/v1/cases/{c['id']}/verify", key=None).status == 401
