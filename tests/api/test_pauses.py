"""Black-box tests of issue 25's pauses: the platform (an arbiter or agent)
pauses a case's deadline while the case waits on it and resumes it with
the time it had left. Pause and resume are events with their times; while
paused neither the scheduler nor the request path's clock rule expires the
deadline, and after the resume it fires later by exactly the paused time.
Runs on the session server's fast policy (arbitration PT2S).
"""
from __future__ import annotations

import time

import pytest

import helpers as h

MS = h.dt.timedelta(milliseconds=1)


@pytest.fixture
def parties(db):
    shop = h.uniq("pause-shop")
    _, seller = db.make_key("seller", shops=shop, name="pause-seller")
    return {"shop": shop, "seller": seller, "buyer": db.keys["frontend"],
            "arbiter": db.keys["arbiter"], "agent": db.keys["agent"]}


def act(s, c, key, action, **fields):
    r = s.post(f"/v1/cases/{c['id']}/actions", {"action": action, **fields}, key=key,
               headers={"If-Match": f'"{c["version"]}"'})
    assert r.status == 200, (action, r)
    return r.body


def pause(s, cid, key, name="arbitration", verb="pause", **body):
    return s.post(f"/v1/cases/{cid}/deadlines/{name}/{verb}", body, key=key)


def deadline(c, name):
    found = [d for d in c["deadlines"] if d["name"] == name]
    assert len(found) == 1, (name, c["deadlines"])
    return found[0]


def events(s, cid, **kw):
    r = s.get(f"/v1/cases/{cid}/events", **kw)
    assert r.status == 200, r
    return r.body["items"]


def in_arbitration(s, P):
    c = h.create_case(s, h.case_body(shop_id=P["shop"], description=h.uniq("仲裁暂停")))
    c = act(s, c, P["seller"], "reject", reason="不同意")
    c = act(s, c, P["buyer"], "escalate", statement="请平台介入")
    assert c["state"] == "in_arbitration", c
    return c


def test_paused_arbitration_fires_later_by_the_paused_time(server, parties):
    s, P = server, parties
    c = in_arbitration(s, P)
    original = h.parse_time(deadline(c, "arbitration")["due_at"])

    r = pause(s, c["id"], P["arbiter"], reason="已要求卖家补充发货凭证")
    assert r.status == 200, r
    c = r.body
    d = deadline(c, "arbitration")
    assert d["due_at"] is None and d["overdue"] is False, d
    assert 0 < d["paused"]["remaining_ms"] <= 2000, d
    paused_at = h.parse_time(d["paused"]["paused_at"])
    assert paused_at + d["paused"]["remaining_ms"] * MS <= original <= \
        paused_at + (d["paused"]["remaining_ms"] + 1) * MS, (d, original)

    # past the original due instant: nothing expires, by the scheduler or
    # by a request (the buyer's evidence is taken, not refused as late)
    while h.now_utc() < original + h.dt.timedelta(seconds=1.5):
        time.sleep(0.2)
    g = s.get(f"/v1/cases/{c['id']}")
    assert g.body["state"] == "in_arbitration" and "pending_expiry" not in g.body, g.body
    c = act(s, g.body, P["buyer"], "add_evidence",
            evidence=[{"kind": "photo", "url": "https://img.example.com/ev/p-1.jpg"}])
    assert c["state"] == "in_arbitration", c
    assert not [e for e in events(s, c["id"]) if e["action"] in
                ("expire_arbitration", "sla.breached")]

    r = pause(s, c["id"], P["agent"], verb="resume")
    assert r.status == 200, r
    d = deadline(r.body, "arbitration")
    assert d["paused"] is None and d["due_at"] is not None, d

    ev = events(s, c["id"])
    p = [e for e in ev if e["action"] == "deadline.paused"]
    q = [e for e in ev if e["action"] == "deadline.resumed"]
    assert len(p) == 1 and len(q) == 1, ev
    p, q = p[0], q[0]
    assert p["data"]["deadline"] == "arbitration" and p["data"]["reason"] == "已要求卖家补充发货凭证"
    assert p["actor"]["role"] == "arbiter" and q["actor"]["role"] == "agent", (p, q)
    assert p["from_state"] == p["to_state"] == "in_arbitration", p
    assert h.parse_time(p["data"]["due_at"]) == original, (p, original)
    assert q["data"]["paused_at"] == p["data"]["paused_at"], (p, q)
    resumed = h.parse_time(q["data"]["resumed_at"])
    new_due = h.parse_time(q["data"]["due_at"])
    assert new_due == h.parse_time(d["due_at"]), (q, d)
    # resumed with the time it had left ...
    assert abs((new_due - resumed) - p["data"]["remaining_ms"] * MS) <= 2 * MS, (p, q)
    # ... so it falls due later than it would have by the paused time
    shift = new_due - h.parse_time(p["data"]["due_at"])
    assert abs(shift - q["data"]["paused_ms"] * MS) <= 2 * MS, (p, q, shift)
    assert q["data"]["paused_ms"] >= 1500, q

    deadline_end = time.monotonic() + 20
    fired = []
    while not fired and time.monotonic() < deadline_end:
        time.sleep(0.2)
        fired = [e for e in events(s, c["id"]) if e["data"].get("deadline") == "arbitration"
                 and e["action"] in ("expire_arbitration", "sla.breached")]
    assert fired, events(s, c["id"])
    assert fired[0]["data"]["due_at"] == q["data"]["due_at"], (fired, q)
    assert h.parse_time(fired[0]["at"]) >= new_due, (fired, q)

    # the summaries speak both languages
    zh = {e["action"]: e["summary"] for e in events(s, c["id"], headers={"Accept-Language": "zh-CN"})}
    assert zh["deadline.paused"].startswith("仲裁员暂停了期限计时"), zh
    assert zh["deadline.resumed"].startswith("客服恢复了期限计时"), zh

    v = s.get(f"/v1/cases/{c['id']}/verify")
    assert v.status == 200 and v.body["intact"] is True, v


def test_pause_errors(server, parties):
    s, P = server, parties
    c = in_arbitration(s, P)
    cid = c["id"]
    r = pause(s, cid, P["arbiter"])
    assert "/reason" in h.problem_pointers(h.assert_problem(r, 422)), r
    r = pause(s, cid, P["arbiter"], reason="x" * 201)
    assert "/reason" in h.problem_pointers(h.assert_problem(r, 422)), r
    r = pause(s, cid, P["arbiter"], reason="ok", extra=1)
    assert "/extra" in h.problem_pointers(h.assert_problem(r, 422)), r
    assert h.assert_problem(pause(s, cid, P["seller"], reason="no"), 403)
    assert h.assert_problem(pause(s, cid, P["arbiter"], name="nonsense", reason="x"), 404)
    # armed names only: a refund in arbitration has no seller_receipt deadline
    assert h.assert_problem(pause(s, cid, P["arbiter"], name="seller_receipt", reason="x"), 404)
    assert h.assert_problem(pause(s, "c_00000000000000000000000000000000", P["arbiter"],
                                  reason="x"), 404)
    assert h.assert_problem(pause(s, cid, P["arbiter"], verb="resume"), 409)["type"] == \
        "urn:arbiter:problem:deadline-running"
    assert pause(s, cid, P["arbiter"], reason="等待物流公司核实").status == 200
    again = pause(s, cid, P["arbiter"], reason="again")
    p = h.assert_problem(again, 409)
    assert p["type"] == "urn:arbiter:problem:deadline-paused", p
    zh = s.post(f"/v1/cases/{cid}/deadlines/arbitration/pause", {"reason": "again"},
                key=P["arbiter"], headers={"Accept-Language": "zh-CN"})
    assert h.assert_problem(zh, 409)["title"] == "期限已暂停", zh.body
    # a due deadline cannot be paused: its expiry comes first
    c2 = in_arbitration(s, P)
    due = h.parse_time(deadline(c2, "arbitration")["due_at"])
    while h.now_utc() <= due + h.dt.timedelta(milliseconds=50):
        time.sleep(0.05)
    r = pause(s, c2["id"], P["arbiter"], reason="too late")
    assert r.status in (404, 409), r   # 404 once the scheduler has fired it
    if r.status == 409:
        assert r.body["type"] == "urn:arbiter:problem:deadline-passed", r.body
