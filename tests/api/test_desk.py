"""Black-box tests of issue 10 (the complaints desk): complaint classification
and severity, senior-only major complaints, the complaint lifecycle,
malicious-complaint signals (never verdicts), batch-defect SKU flags, GET
/v1/stats against a scripted set of cases, and the agent queues.

Stateful flows run on `stable_server` (the shipped policy: deadlines in days,
so nothing expires under a test). The first-response breach and the automatic
close run on a server of their own with tests/api/policy_fast.json.

Every case gets its own description, buyer and SKU unless a test means to link
cases: the risk signals (same text to other shops, many cases by one buyer)
and the batch-defect count are computed over the whole database."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse

import pytest

import helpers as h
from helpers import assert_problem

QUALITY_REASONS = ("quality_defect", "not_as_described", "safety_hazard")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def body(shop: str, kind: str = "refund", reason: str | None = None, *, sku: str | None = None,
         buyer: str | None = None, order_id: str | None = None, desc: str | None = None,
         price: int | None = None, complaint: dict | None = None,
         account: dict | None = None, late: bool = False) -> dict:
    """A case body for `shop` with a unique description, buyer and SKU unless
    given. late=True: the order shipped after its promised ship-by time."""
    if reason is None:
        reason = "poor_service" if kind == "complaint" else "quality_defect"
    b = h.case_body(shop_id=shop, buyer_id=buyer, order_id=order_id, kind=kind, reason=reason,
                    description=desc or f"Case text {h.uniq('d')}: the item is not right.")
    b["order"]["sku"] = sku or h.uniq("SKU").upper()
    if price is not None:
        b["order"]["price_cents"] = price
    if complaint is not None:
        b["complaint"] = complaint
    if account is not None:
        b["buyer"] = account
    if late:
        now = h.now_utc().replace(microsecond=0)
        b["order"]["promised_ship_by"] = h.fmt_time(now - dt.timedelta(days=3))
        b["order"]["shipped_at"] = h.fmt_time(now - dt.timedelta(days=2))
        b["order"]["delivered_at"] = h.fmt_time(now - dt.timedelta(days=1))
    return b


def create(server: h.Server, b: dict, key: str | None = None) -> dict:
    r = server.post("/v1/cases", b, **({"key": key} if key else {}))
    assert r.status == 201, f"create failed: {r!r}"
    return r.body


def act(server: h.Server, c: dict, action: str, key: str, **fields) -> h.Response:
    return server.post(f"/v1/cases/{c['id']}/actions", {"action": action, **fields},
                       key=key, headers={"If-Match": f'"{c["version"]}"'})


def act_ok(server: h.Server, c: dict, action: str, key: str, **fields) -> dict:
    r = act(server, c, action, key, **fields)
    assert r.status == 200, f"{action}: {r!r}"
    return r.body


def get(server: h.Server, cid: str, key: str | None = None) -> dict:
    r = server.get(f"/v1/cases/{cid}", **({"key": key} if key else {}))
    assert r.status == 200, r
    return r.body


def events(server: h.Server, cid: str) -> list[dict]:
    r = server.get(f"/v1/cases/{cid}/events")
    assert r.status == 200, r
    return r.body["items"]


def rule(c: dict, rule_id: str) -> dict:
    rules = [x for x in c["decision"]["rules"] if x["id"] == rule_id]
    assert len(rules) == 1, (rule_id, c["decision"]["rules"])
    return rules[0]


def first_response_after(c: dict) -> dt.timedelta:
    d = [x for x in c["deadlines"] if x["name"] == "complaint_first_response"]
    assert len(d) == 1, c["deadlines"]
    return h.parse_time(d[0]["due_at"]) - h.parse_time(c["created_at"])


def not_rejected(c: dict) -> None:
    """A signal routes to a human: never a rejection, never a closed case."""
    assert c["state"] not in ("closed", "refunded"), c["state"]
    assert c["outcome"] is None, c["outcome"]
    assert c["decision"]["outcome"] != "ineligible", c["decision"]


class Desk:
    """The callers of one fresh shop."""

    def __init__(self, server: h.Server, db: h.TestDB, shop: str | None = None):
        self.s = server
        self.db = db
        self.shop = shop or h.uniq("dshop")
        _, self.seller = db.make_key("seller", shops=self.shop, name="desk-seller")
        _, self.senior = db.make_key("agent", senior=True, name="desk-senior")
        self.agent = db.keys["agent"]          # not senior
        self.buyer = db.keys["frontend"]

    def create(self, kind: str = "refund", reason: str | None = None, **kw) -> dict:
        return create(self.s, body(self.shop, kind, reason, **kw), key=self.buyer)


@pytest.fixture
def desk(stable_server, db) -> Desk:
    return Desk(stable_server, db)


# ---------------------------------------------------------------------------
# classification and severity
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("reason,declared,expected,how", [
    ("poor_service", None, "service_quality", "from the reason"),
    ("late_shipment", None, "service_quality", "from the reason"),
    ("quality_defect", None, "product_quality", "from the reason"),
    ("not_as_described", None, "product_quality", "from the reason"),
    ("safety_hazard", None, "product_quality", "from the reason"),
    ("quality_defect", "service_quality", "service_quality", "declared"),
    ("poor_service", "product_quality", "product_quality", "declared"),
])
def test_complaint_classification(desk, reason, declared, expected, how):
    c = desk.create("complaint", reason,
                    complaint={"category": declared} if declared else None)
    assert c["decision"]["classification"] == expected, c["decision"]
    r = rule(c, "R-COMPLAINT-CLASS")
    assert r["result"] == "fired" and expected in r["reason"] and how in r["reason"], r
    # the open event records the same decision
    ev = events(desk.s, c["id"])
    assert ev[0]["action"] == "open"
    assert ev[0]["data"]["decision"]["classification"] == expected


def test_other_kinds_carry_no_complaint_classification(desk):
    c = desk.create("refund", "quality_defect")
    assert c["decision"]["classification"] is None, c["decision"]
    assert not [x for x in c["decision"]["rules"] if x["id"].startswith("R-COMPLAINT")]


@pytest.mark.parametrize("reason,price,exposure,major,why", [
    ("poor_service", 10000, None, False, None),
    ("poor_service", 10000, False, False, None),
    ("safety_hazard", 10000, None, True, "is a major reason"),
    ("counterfeit", 10000, None, True, "is a major reason"),
    ("quality_defect", 10000, None, False, None),
    ("poor_service", 499999, None, False, None),
    ("poor_service", 500000, None, True, ">= 500000"),
    ("poor_service", 900000, None, True, ">= 500000"),
    ("poor_service", 10000, True, True, "public exposure"),
])
def test_complaint_severity(desk, reason, price, exposure, major, why):
    comp = None if exposure is None else {"public_exposure": exposure}
    c = desk.create("complaint", reason, price=price, complaint=comp)
    d = c["decision"]
    assert d["severity"] == ("major" if major else "general"), d
    r = rule(c, "R-COMPLAINT-SEVERITY")
    assert r["result"] == ("fired" if major else "pass"), r
    if why:
        assert why in r["reason"], r
    # first response: 4 h for major complaints, 24 h otherwise (shipped policy)
    assert first_response_after(c) == dt.timedelta(hours=4 if major else 24), c["deadlines"]
    assert c["deadlines"][0]["on_expiry"] == "escalate_to_senior", c["deadlines"]


def test_repeat_complaint_on_the_same_order_is_major(desk):
    order = h.uniq("ord")
    first = desk.create("complaint", order_id=order)
    assert first["decision"]["severity"] == "general", first["decision"]
    second = desk.create("complaint", order_id=order)
    assert second["decision"]["severity"] == "major", second["decision"]
    assert "repeat complaint" in rule(second, "R-COMPLAINT-SEVERITY")["reason"]
    assert first_response_after(second) == dt.timedelta(hours=4)
    # the first complaint is not re-judged
    assert get(desk.s, first["id"])["decision"]["severity"] == "general"


def test_a_refund_on_the_order_does_not_make_a_complaint_a_repeat(desk):
    order = h.uniq("ord")
    desk.create("refund", "quality_defect", order_id=order)
    c = desk.create("complaint", order_id=order)
    assert c["decision"]["severity"] == "general", c["decision"]
    # and a complaint on another order of the same buyer is not a repeat either
    c2 = desk.create("complaint", buyer=c["order"]["buyer_id"])
    assert c2["decision"]["severity"] == "general", c2["decision"]


@pytest.mark.parametrize("complaint,pointer", [
    ({"category": "delivery"}, "/complaint/category"),
    ({"public_exposure": "yes"}, "/complaint/public_exposure"),
    ({"severity": "major"}, "/complaint/severity"),
    ("major", "/complaint"),
])
def test_bad_complaint_fields_422(desk, complaint, pointer):
    r = desk.s.post("/v1/cases", body(desk.shop, "complaint", complaint=complaint), key=desk.buyer)
    p = assert_problem(r, 422)
    assert pointer in h.problem_pointers(p), p


# ---------------------------------------------------------------------------
# major complaints: senior agents only
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("action,fields", [
    ("acknowledge", {}),
    ("resolve", {"resolution": "apology"}),
    ("escalate", {"statement": "needs the platform"}),
])
def test_major_complaint_refuses_a_non_senior_agent_403(desk, action, fields):
    c = desk.create("complaint", "safety_hazard")
    assert c["decision"]["severity"] == "major"
    r = act(desk.s, c, action, desk.agent, **fields)
    p = assert_problem(r, 403)
    assert p["type"] == "urn:arbiter:problem:senior-agent-required", p
    after = get(desk.s, c["id"])
    assert after["version"] == c["version"] and after["state"] == "awaiting_agent", after
    assert len(events(desk.s, c["id"])) == 1
    # a senior agent may
    c2 = act_ok(desk.s, after, action, desk.senior, **fields)
    assert c2["state"] == {"acknowledge": "acknowledged", "resolve": "resolved",
                           "escalate": "in_arbitration"}[action], c2


def test_major_complaint_other_parties_and_actions_are_not_senior_gated(desk):
    c = desk.create("complaint", complaint={"public_exposure": True})
    assert c["decision"]["severity"] == "major"
    # a note by any agent is fine
    c = act_ok(desk.s, c, "note", desk.agent, text="called the buyer back")
    assert c["state"] == "awaiting_agent"
    # the buyer may escalate a major complaint
    c = act_ok(desk.s, c, "escalate", desk.buyer, statement="no answer")
    assert c["state"] == "in_arbitration"


def test_general_complaint_any_agent(desk):
    c = desk.create("complaint")
    assert c["decision"]["severity"] == "general"
    c = act_ok(desk.s, c, "acknowledge", desk.agent)
    c = act_ok(desk.s, c, "resolve", desk.agent, resolution="explanation")
    assert c["state"] == "resolved"


# ---------------------------------------------------------------------------
# the complaint lifecycle
# ---------------------------------------------------------------------------
def test_complaint_lifecycle_compensation_reopen_confirm(desk):
    s = desk.s
    c = desk.create("complaint")
    assert c["state"] == "awaiting_agent" and c["outcome"] is None
    assert [d["name"] for d in c["deadlines"]] == ["complaint_first_response"]
    assert {"acknowledge", "resolve", "escalate"} <= set(c["allowed_actions"])
    # the buyer may not acknowledge its own complaint
    r = act(s, c, "acknowledge", desk.buyer)
    assert_problem(r, 409)
    c = act_ok(s, c, "acknowledge", desk.agent, message="We are on it.")
    assert c["state"] == "acknowledged" and c["deadlines"] == [], c
    c = act_ok(s, c, "resolve", desk.agent, resolution="compensation", compensation_cents=500,
               message="A voucher for the trouble.")
    assert c["state"] == "resolved" and c["outcome"] is None, c
    assert [d["name"] for d in c["deadlines"]] == ["complaint_close"], c["deadlines"]
    due = h.parse_time(c["deadlines"][0]["due_at"]) - h.parse_time(c["updated_at"])
    assert due == dt.timedelta(days=7), c["deadlines"]
    assert set(c["allowed_actions"]) >= {"confirm_resolution", "reopen"}
    ev = events(s, c["id"])
    assert [e["action"] for e in ev] == ["open", "acknowledge", "resolve", "refund.instructed"], ev
    assert ev[2]["data"] == {"resolution": "compensation", "compensation_cents": 500,
                             "message": "A voucher for the trouble."}, ev[2]
    assert ev[3]["data"]["total_cents"] == 500 and ev[3]["data"]["reason"] == \
        "complaint_compensation", ev[3]
    # the buyer is not satisfied: back to acknowledged, the close clock stops
    c = act_ok(s, c, "reopen", desk.buyer, reason="The voucher never arrived.")
    assert c["state"] == "acknowledged" and c["deadlines"] == [], c
    c = act_ok(s, c, "resolve", desk.agent, resolution="apology")
    assert c["state"] == "resolved"
    # only the buyer confirms
    assert_problem(act(s, c, "confirm_resolution", desk.agent), 409)
    c = act_ok(s, c, "confirm_resolution", desk.buyer)
    assert c["state"] == "closed" and c["outcome"] == "resolved", c
    assert c["deadlines"] == [] and c["allowed_actions"] == []
    # closed is closed
    assert_problem(act(s, c, "reopen", desk.buyer), 409)
    ev = events(s, c["id"])
    assert [(e["action"], e["from_state"], e["to_state"]) for e in ev][4:] == [
        ("reopen", "resolved", "acknowledged"), ("resolve", "acknowledged", "resolved"),
        ("confirm_resolution", "resolved", "closed")], ev
    assert [e["actor"]["role"] for e in ev] == ["frontend", "agent", "agent", "agent",
                                                "frontend", "agent", "frontend"]


@pytest.mark.parametrize("fields,pointer", [
    ({}, "/resolution"),
    ({"resolution": "voucher"}, "/resolution"),
    ({"resolution": "compensation", "compensation_cents": 10801}, "/compensation_cents"),
    ({"resolution": "compensation", "compensation_cents": -1}, "/compensation_cents"),
])
def test_resolve_fields_422(desk, fields, pointer):
    c = desk.create("complaint")   # price 10000 + shipping 800: at most 10800
    p = assert_problem(act(desk.s, c, "resolve", desk.agent, **fields), 422)
    assert pointer in h.problem_pointers(p), p
    assert get(desk.s, c["id"])["version"] == c["version"]


def test_agent_escalates_a_complaint_to_arbitration(desk):
    c = desk.create("complaint")
    c = act_ok(desk.s, c, "acknowledge", desk.agent)
    c = act_ok(desk.s, c, "escalate", desk.agent, statement="The shop refuses any remedy.")
    assert c["state"] == "in_arbitration"
    assert [d["name"] for d in c["deadlines"]] == ["arbitration"], c["deadlines"]


# ---------------------------------------------------------------------------
# first-response breach and automatic close (fast policy)
# ---------------------------------------------------------------------------
def wait_for(server, cid, action, timeout=15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        ev = events(server, cid)
        if any(e["action"] == action for e in ev):
            return ev
        assert time.monotonic() < deadline, f"no {action} on {cid} after {timeout}s: {ev}\n" \
                                            + server.log_tail(30)
        time.sleep(0.2)


def test_breach_escalates_to_a_senior_agent_and_resolved_complaints_close(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="desk-fast", policy=h.FAST_POLICY)
    d = Desk(s, db)
    general = d.create("complaint")
    major = d.create("complaint", complaint={"public_exposure": True})
    assert first_response_after(general) == dt.timedelta(seconds=2)
    assert first_response_after(major) == dt.timedelta(seconds=1)
    answered = d.create("complaint")
    answered = act_ok(s, answered, "resolve", d.agent, resolution="apology")
    assert [x["name"] for x in answered["deadlines"]] == ["complaint_close"]

    for c in (general, major):
        ev = wait_for(s, c["id"], "sla.breached")
        br = [e for e in ev if e["action"] == "sla.breached"]
        assert len(br) == 1, ev
        e = br[0]
        assert e["actor"]["role"] == "system", e
        assert e["from_state"] == e["to_state"] == "awaiting_agent", e
        assert e["data"]["deadline"] == "complaint_first_response", e
        assert e["data"]["escalated_to"] == "senior_agent", e
        # the instant armed, to the ms (the scheduler rounds microseconds, the API truncates)
        said, armed = h.parse_time(e["data"]["due_at"]), h.parse_time(c["deadlines"][0]["due_at"])
        assert abs(said - armed) <= dt.timedelta(milliseconds=1), (e, c["deadlines"])
        assert h.parse_time(e["at"]) >= h.parse_time(e["data"]["due_at"]), e
        # still the agents' to answer
        assert get(s, c["id"])["state"] == "awaiting_agent"

    ev = wait_for(s, answered["id"], "expire_complaint_close")
    last = ev[-1]
    assert (last["action"], last["from_state"], last["to_state"], last["actor"]["role"]) == \
        ("expire_complaint_close", "resolved", "closed", "system"), ev
    closed = get(s, answered["id"])
    assert closed["state"] == "closed" and closed["outcome"] == "resolved", closed
    # past the window the buyer can no longer reopen
    assert_problem(act(s, closed, "reopen", d.buyer, reason="too late"), 409)

    # a breach is reported once, and counted by the stats of the shop
    time.sleep(1.0)
    for c in (general, major):
        assert sum(e["action"] == "sla.breached" for e in events(s, c["id"])) == 1
    st = s.get("/v1/stats?" + urllib.parse.urlencode({"shop_id": d.shop}), key=d.agent)
    assert st.status == 200, st
    assert st.body["sla_breaches"] == 2, st.body
    assert st.body["cases"]["by_state"] == {"awaiting_agent": 2, "closed": 1}, st.body
    # and listed: the breached queue holds both, still open
    assert st.body["queues"]["breached"] == 2, st.body["queues"]
    assert {c["id"] for c in queue(s, "breached", d.seller)} == {general["id"], major["id"]}


def test_overdue_queue_holds_what_no_scheduler_applied(make_db, make_server):
    """With no scheduler here (ARBITER_SCHEDULER=false: another replica's job),
    a first response due in 1 s stays due: the overdue queue and the stats
    show it until someone applies it."""
    db = make_db()
    s = make_server(db.service_url, name="desk-overdue", policy=h.FAST_POLICY,
                    env={"ARBITER_SCHEDULER": "false"})
    d = Desk(s, db)
    major = d.create("complaint", complaint={"public_exposure": True})
    due = h.parse_time(major["deadlines"][0]["due_at"])
    while h.now_utc() <= due + dt.timedelta(milliseconds=200):
        time.sleep(0.1)
    over = queue(s, "overdue", d.seller)
    assert [c["id"] for c in over] == [major["id"]], over
    assert over[0]["next_due_at"] == major["deadlines"][0]["due_at"], over[0]
    st = s.get("/v1/stats?" + urllib.parse.urlencode({"shop_id": d.shop}), key=d.agent)
    assert st.body["queues"]["overdue"] == 1 and st.body["queues"]["near_deadline"] == 1, st.body


# ---------------------------------------------------------------------------
# malicious-complaint signals: they route to manual review, never reject
# ---------------------------------------------------------------------------
def days_ago(n: float) -> str:
    return h.fmt_time(h.now_utc() - dt.timedelta(days=n))


@pytest.mark.parametrize("kind,reason,late", [
    ("refund", "quality_defect", False),
    ("refund", "late_shipment", True),      # would be auto-approved: risk beats speed
    ("complaint", "poor_service", False),
])
def test_new_account_without_orders_goes_to_manual_review(desk, kind, reason, late):
    c = desk.create(kind, reason, late=late,
                    account={"account_created_at": days_ago(3), "orders_count": 0})
    assert c["manual_review"] is True, c
    assert c["decision"]["outcome"] == "manual_review", c["decision"]
    assert c["decision"]["risk"]["signals"] == ["new_account"], c["decision"]["risk"]
    assert c["decision"]["risk"]["score"] >= 40
    assert rule(c, "R-RISK-NEW-ACCOUNT")["result"] == "fired"
    not_rejected(c)
    assert c["state"] == ("awaiting_agent" if kind == "complaint" else "awaiting_seller"), c
    assert not [e for e in events(desk.s, c["id"]) if e["action"] == "refund.instructed"]


@pytest.mark.parametrize("account", [
    {"account_created_at": days_ago(3), "orders_count": 2},     # new, but buys
    {"account_created_at": days_ago(400), "orders_count": 0},  # old
    {"orders_count": 0},                                       # age unknown
])
def test_no_new_account_signal(desk, account):
    c = desk.create("refund", "quality_defect", account=account)
    assert c["manual_review"] is False, c
    assert c["decision"]["risk"]["signals"] == [], c["decision"]["risk"]
    assert c["decision"]["outcome"] == "seller_review"


def test_fourth_case_by_one_buyer_in_7_days_goes_to_manual_review(stable_server, db):
    """issue 10: "more than 3 cases by the buyer within 7 days": the 4th case
    makes four (policy risk.max_cases_7d = 3; the unit test's row "4 cases in
    7 days" -> many_cases_7d says the same)."""
    buyer = h.uniq("buyer")
    seen = []
    for i in range(4):
        d = Desk(stable_server, db)   # a shop each: only the buyer links them
        c = d.create("complaint" if i % 2 else "refund", buyer=buyer)
        seen.append(c)
    for c in seen[:3]:
        assert c["manual_review"] is False and c["decision"]["risk"]["signals"] == [], c
    fourth = seen[3]
    assert fourth["decision"]["risk"]["signals"] == ["many_cases_7d"], \
        (fourth["decision"]["risk"], rule(fourth, "R-RISK-MANY-CASES"))
    assert fourth["manual_review"] is True
    assert fourth["decision"]["outcome"] == "manual_review"
    not_rejected(fourth)
    # the earlier cases are not re-judged
    assert get(stable_server, seen[0]["id"])["manual_review"] is False


def test_fifth_case_by_one_buyer_goes_to_manual_review(stable_server, db):
    buyer = h.uniq("buyer")
    cases = [Desk(stable_server, db).create("refund", buyer=buyer) for _ in range(5)]
    assert cases[4]["manual_review"] is True, cases[4]["decision"]["risk"]
    assert "many_cases_7d" in cases[4]["decision"]["risk"]["signals"]
    assert rule(cases[4], "R-RISK-MANY-CASES")["result"] == "fired"
    not_rejected(cases[4])


def backdate(db: h.TestDB, ids: list[str], days: int) -> None:
    h.psql(db.admin_url, "UPDATE cases SET created_at = created_at - interval '%d days' "
           "WHERE id IN (%s);" % (days, ", ".join(h.quote_literal(i) for i in ids)))


def test_cases_older_than_7_days_do_not_count(stable_server, db):
    buyer = h.uniq("buyer")
    old = [Desk(stable_server, db).create("refund", buyer=buyer) for _ in range(5)]
    backdate(db, [c["id"] for c in old], 8)
    c = Desk(stable_server, db).create("refund", buyer=buyer)
    assert c["decision"]["risk"]["signals"] == [] and c["manual_review"] is False, \
        c["decision"]["risk"]


def test_same_description_to_three_shops_goes_to_manual_review(stable_server, db):
    tag = h.uniq("txt")
    texts = [f"This shop sold me a FAKE bag, refund me now {tag}",
             f"this shop sold me a fake   bag,\nrefund me now {tag}",   # same, normalised
             f"This Shop sold me a fake bag, refund me\tnow {tag}"]
    shops = [Desk(stable_server, db) for _ in range(3)]
    c1 = shops[0].create("refund", "quality_defect", desc=texts[0])
    c2 = shops[1].create("complaint", "poor_service", desc=texts[1])
    # the same shop again does not count as another shop
    c2b = shops[1].create("refund", "quality_defect", desc=texts[0])
    for c in (c1, c2, c2b):
        assert c["manual_review"] is False and c["decision"]["risk"]["signals"] == [], c
    c3 = shops[2].create("return", "not_as_described", desc=texts[2])
    assert c3["decision"]["risk"]["signals"] == ["same_text_other_shops"], c3["decision"]["risk"]
    assert "2 other shops" in rule(c3, "R-RISK-SAME-TEXT")["reason"]
    assert c3["manual_review"] is True and c3["decision"]["outcome"] == "manual_review"
    not_rejected(c3)
    assert c3["state"] == "awaiting_seller"
    # a different text is no signal
    c4 = shops[2].create("refund", "quality_defect", desc=f"Another text {tag}")
    assert c4["decision"]["risk"]["signals"] == []


@pytest.mark.parametrize("kind", ["complaint", "refund"])
def test_review_extortion_note_sets_manual_review_and_never_rejects(desk, kind):
    s = desk.s
    c = desk.create(kind)
    assert c["manual_review"] is False
    state = c["state"]
    # a plain note changes nothing
    c = act_ok(s, c, "note", desk.agent, text="Buyer called, polite.")
    assert c["manual_review"] is False and c["state"] == state
    # a demand for money to remove a review is recorded as a signal
    c = act_ok(s, c, "note", desk.agent,
               text="Buyer says the 1-star review goes away for 200 CNY.",
               signal="review_extortion")
    assert c["manual_review"] is True, c
    assert c["state"] == state and c["outcome"] is None, c
    not_rejected(c)
    ev = events(s, c["id"])[-1]
    assert ev["action"] == "note" and ev["data"]["signal"] == "review_extortion", ev
    assert ev["from_state"] == ev["to_state"] == state
    # the case is still workable
    if kind == "complaint":
        c = act_ok(s, c, "acknowledge", desk.agent)
        assert c["state"] == "acknowledged" and c["manual_review"] is True
    else:
        assert "accept" in c["allowed_actions"] or "reject" in c["allowed_actions"], c


def test_unknown_note_signal_422(desk):
    c = desk.create("complaint")
    p = assert_problem(act(desk.s, c, "note", desk.agent, text="x", signal="rude_buyer"), 422)
    assert "/signal" in h.problem_pointers(p), p
    assert get(desk.s, c["id"])["manual_review"] is False


# ---------------------------------------------------------------------------
# batch defects
# ---------------------------------------------------------------------------
def flags(server, key) -> list[dict]:
    r = server.get("/v1/sku-flags", key=key)
    assert r.status == 200, r
    return r.body["items"]


def feed_events(server, key) -> list[dict]:
    out, after = [], None
    for _ in range(200):
        q = {"limit": "1000"}
        if after:
            q["after"] = after
        r = server.get("/v1/events?" + urllib.parse.urlencode(q), key=key)
        assert r.status == 200, r
        out += r.body["items"]
        if not r.body["items"]:
            return out
        after = r.body["next_cursor"]
    raise AssertionError("feed did not end")


def test_batch_defect_flag_on_the_fifth_quality_case_seen_on_the_sixth(stable_server, db):
    d = Desk(stable_server, db)
    s, sku = d.s, h.uniq("SKU").upper()
    _, shop_agent = db.make_key("agent", shops=d.shop, name="desk-batch-agent")
    other = Desk(stable_server, db)
    # not counted: another shop's quality cases on the same SKU, and this
    # SKU's non-quality cases
    for _ in range(2):
        other.create("refund", "quality_defect", sku=sku)
    d.create("refund", "late_shipment", sku=sku, late=True)
    d.create("return", "changed_mind", sku=sku)
    plan = [("refund", "quality_defect"), ("return", "not_as_described"),
            ("complaint", "quality_defect"), ("refund", "safety_hazard"),
            ("exchange", "quality_defect")]
    made = []
    for i, (kind, reason) in enumerate(plan):
        c = d.create(kind, reason, sku=sku)
        made.append(c)
        assert c["decision"]["batch_defect"] is False, (i, c["decision"])
        assert rule(c, "R-BATCH-DEFECT")["result"] == "pass"
        if i < 4:
            assert c["sku_batch_defect"] is False, (i, c)
            assert not [f for f in flags(s, d.agent) if f["shop_id"] == d.shop], i
    fifth = made[4]
    active = [f for f in flags(s, d.agent) if f["shop_id"] == d.shop]
    assert len(active) == 1, active
    assert (active[0]["sku"], active[0]["cases"]) == (sku, 5), active
    assert h.parse_time(active[0]["flagged_at"]) >= h.parse_time(fifth["created_at"])

    # the flag shows on every case of the SKU in the shop, old and new
    for c in made:
        assert get(s, c["id"])["sku_batch_defect"] is True, c["id"]
    sixth = d.create("refund", "not_as_described", sku=sku)
    assert sixth["sku_batch_defect"] is True, sixth
    assert sixth["decision"]["batch_defect"] is True, sixth["decision"]
    r6 = rule(sixth, "R-BATCH-DEFECT")
    assert r6["result"] == "fired" and sku in r6["reason"], r6
    assert d.create("complaint", "poor_service", sku=sku)["sku_batch_defect"] is True
    # ... but not in the other shop
    assert other.create("refund", "quality_defect", sku=sku)["sku_batch_defect"] is False

    # exactly one sku.batch_defect event, on the 5th case, by the system
    for c in made[:4] + [sixth]:
        assert not [e for e in events(s, c["id"]) if e["action"] == "sku.batch_defect"], c["id"]
    ev = [e for e in events(s, fifth["id"]) if e["action"] == "sku.batch_defect"]
    assert len(ev) == 1, ev
    e = ev[0]
    assert e["actor"]["role"] == "system", e
    assert e["from_state"] == e["to_state"] == fifth["state"], e
    assert e["data"]["sku"] == sku and e["data"]["shop_id"] == d.shop and \
        e["data"]["cases"] == 5 and e["data"]["window_days"] == 7, e
    check_chain(events(s, fifth["id"]))
    # ... and on the feed, once (the feed holds an event back while an older
    # transaction anywhere in the database is still open: poll)
    until = time.monotonic() + 15
    while True:
        fe = [x for x in feed_events(s, shop_agent) if x["action"] == "sku.batch_defect"]
        if fe or time.monotonic() > until:
            break
        time.sleep(0.2)
    assert [(x["case_id"], x["data"]["sku"]) for x in fe] == [(fifth["id"], sku)], fe

    # scoping of the flag list
    _, foreign = db.make_key("seller", shops=h.uniq("nobody"), name="desk-foreign")
    assert flags(s, foreign) == []
    assert [f["sku"] for f in flags(s, d.seller)] == [sku]

    # clearing: agents and admins only
    path = f"/v1/sku-flags/{d.shop}/{sku}"
    assert_problem(s.request("DELETE", path, key=d.buyer), 403)
    assert_problem(s.request("DELETE", path, key=d.seller), 403)
    r = s.request("DELETE", path, key=d.agent)
    assert r.status == 204 and r.raw == b"", r
    assert not [f for f in flags(s, d.agent) if f["shop_id"] == d.shop]
    for c in made + [sixth]:
        assert get(s, c["id"])["sku_batch_defect"] is False, c["id"]
    assert_problem(s.request("DELETE", path, key=d.agent), 404)
    assert_problem(s.request("DELETE", f"/v1/sku-flags/{d.shop}/NO-SUCH-SKU",
                             key=db.keys["admin"]), 404)


def check_chain(ev: list[dict]) -> None:
    for i, e in enumerate(ev):
        assert e["seq"] == i + 1
        assert e["prev_hash"] == ("0" * 64 if i == 0 else ev[i - 1]["hash"]), (i, ev)


def test_batch_defect_counts_quality_cases_only(stable_server, db):
    d = Desk(stable_server, db)
    sku = h.uniq("SKU").upper()
    for _ in range(6):
        d.create("refund", "wrong_item", sku=sku)
    for _ in range(4):
        c = d.create("refund", "quality_defect", sku=sku)
    assert get(d.s, c["id"])["sku_batch_defect"] is False
    assert not [f for f in flags(d.s, d.agent) if f["shop_id"] == d.shop]


def test_batch_defect_counts_the_7_day_window_only(stable_server, db):
    d = Desk(stable_server, db)
    sku = h.uniq("SKU").upper()
    old = [d.create("refund", "quality_defect", sku=sku) for _ in range(4)]
    backdate(db, [c["id"] for c in old], 8)
    fresh = [d.create("refund", "quality_defect", sku=sku) for _ in range(4)]
    assert get(d.s, fresh[-1]["id"])["sku_batch_defect"] is False
    assert not [f for f in flags(d.s, d.agent) if f["shop_id"] == d.shop]
    fifth = d.create("complaint", "not_as_described", sku=sku)
    assert get(d.s, fifth["id"])["sku_batch_defect"] is True
    assert [f["cases"] for f in flags(d.s, d.agent) if f["shop_id"] == d.shop] == [5]


# ---------------------------------------------------------------------------
# stats
# ---------------------------------------------------------------------------
def stats(server, key, **q) -> dict:
    r = server.get("/v1/stats?" + urllib.parse.urlencode(q), key=key)
    assert r.status == 200, r
    return r.body


def test_stats_against_a_scripted_set_of_cases(stable_server, db):
    d = Desk(stable_server, db)
    s = d.s
    sku_a, sku_b, sku_c = (h.uniq(x).upper() for x in ("SKUA", "SKUB", "SKUC"))
    t0 = h.now_utc()

    # R1: late shipment, auto-approved: refund instructed at once
    r1 = d.create("refund", "late_shipment", sku=sku_c, late=True)
    assert r1["decision"]["outcome"] == "auto_approve" and r1["state"] == "refund_pending", r1
    auto = [e for e in events(s, r1["id"]) if e["action"] == "refund.instructed"]
    assert len(auto) == 1 and auto[0]["data"]["reason"] == "auto_approve", auto
    auto_cents = auto[0]["data"]["total_cents"]
    # price 10000 + shipping 800 + 30 % late penalty 3000
    assert auto_cents == r1["decision"]["refund"]["total_cents"] == 13800, auto[0]
    # R2: quality refund, the seller accepts, payment executes: refunded (not automatic)
    r2 = d.create("refund", "quality_defect", sku=sku_a)
    r2 = act_ok(s, r2, "accept", d.seller)
    r2 = act_ok(s, r2, "refund_executed", db.keys["payment"], payment_ref=h.uniq("pay"))
    assert r2["state"] == "refunded" and r2["outcome"] == "refunded", r2
    # R3, R4: waiting for the seller
    d.create("return", "not_as_described", sku=sku_a)
    d.create("refund", "quality_defect", sku=sku_b)
    # C1: acknowledged, resolved, confirmed; C2 withdrawn; C3 open
    c1 = d.create("complaint", sku=sku_a)
    c1 = act_ok(s, c1, "acknowledge", d.agent)
    c1 = act_ok(s, c1, "resolve", d.agent, resolution="apology")
    c1 = act_ok(s, c1, "confirm_resolution", d.buyer)
    c2 = d.create("complaint", sku=sku_b)
    c2 = act_ok(s, c2, "withdraw", d.buyer)
    assert (c2["state"], c2["outcome"]) == ("closed", "withdrawn"), c2
    d.create("complaint", sku=sku_b)
    # noise in another shop
    Desk(s, db).create("refund", "late_shipment", sku=sku_c, late=True)

    st = stats(s, d.agent, shop_id=d.shop)
    assert st["shop_id"] == d.shop
    assert st["cases"] == {
        "total": 7,
        "by_kind": {"refund": 3, "return": 1, "complaint": 3},
        "by_state": {"refund_pending": 1, "refunded": 1, "awaiting_seller": 2,
                     "closed": 2, "awaiting_agent": 1},
        "by_outcome": {"refunded": 1, "resolved": 1, "withdrawn": 1},
    }, st["cases"]
    assert st["auto_refunds"] == {"count": 1, "cents": auto_cents}, st["auto_refunds"]
    assert st["top_quality_skus"] == [{"sku": sku_a, "cases": 2}, {"sku": sku_b, "cases": 1}], \
        st["top_quality_skus"]
    assert st["sla_breaches"] == 0
    assert st["open_near_deadline"] == 1            # C3: first response within 24 h
    # the trend: 24 consecutive hours, every case opened in them, every refund
    hourly = st["hourly"]
    hours = [h.parse_time(x["hour"]) for x in hourly]
    assert len(hourly) == 24 and all(b - a == dt.timedelta(hours=1) for a, b in zip(hours, hours[1:]))
    assert hours[-1] <= h.now_utc() < hours[-1] + dt.timedelta(hours=1), hours[-1]
    assert sum(x["opened"] for x in hourly) == 7, hourly
    shop_cases = s.get("/v1/cases?" + urllib.parse.urlencode({"shop_id": d.shop, "limit": "100"}),
                       key=d.agent).body["items"]
    refunds = sum(e["action"] == "refund.instructed" for c in shop_cases for e in events(s, c["id"]))
    assert refunds >= 1 and sum(x["refunds"] for x in hourly) == refunds, (hourly, refunds)
    # first seller/agent response: R2 (accept) and C1 (acknowledge)
    fs = st["first_seller_response_seconds"]
    assert fs["n"] == 2 and 0 <= fs["median"] <= fs["p90"], fs
    # resolution: R2, C1, C2
    rs = st["resolution_seconds"]
    assert rs["n"] == 3 and 0 <= rs["median"] <= rs["p90"], rs
    elapsed = (h.now_utc() - t0).total_seconds() + 1
    assert fs["p90"] <= elapsed and rs["p90"] <= elapsed, (fs, rs, elapsed)

    # the same numbers for the shop's seller; none for another shop's seller
    assert stats(s, d.seller)["cases"] == st["cases"]
    _, foreign = db.make_key("seller", shops=h.uniq("nobody"), name="desk-foreign")
    f = stats(s, foreign, shop_id=d.shop)
    assert f["cases"]["total"] == 0 and f["auto_refunds"] == {"count": 0, "cents": 0}, f
    assert f["top_quality_skus"] == [] and f["open_near_deadline"] == 0, f
    # a window before the cases holds none of them
    early = stats(s, d.agent, shop_id=d.shop, **{"from": h.fmt_time(t0 - dt.timedelta(days=2)),
                                                 "to": h.fmt_time(t0 - dt.timedelta(days=1))})
    assert early["cases"]["total"] == 0, early
    assert early["cases"]["by_kind"] == {} and early["first_seller_response_seconds"]["n"] == 0


@pytest.mark.parametrize("q,pointer", [
    ({"from": "yesterday"}, "/query/from"),
    ({"to": "2026-13-01T00:00:00Z"}, "/query/to"),
    ({"from": "2026-02-02T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "/query/from"),
    ({"shop_id": ""}, "/query/shop_id"),
])
def test_stats_bad_query_422(stable_server, keys, q, pointer):
    r = stable_server.get("/v1/stats?" + urllib.parse.urlencode(q), key=keys["agent"])
    p = assert_problem(r, 422)
    assert pointer in h.problem_pointers(p), p


def test_stats_needs_a_key_401(stable_server):
    r = stable_server.get("/v1/stats", key=None)
    assert_problem(r, 401)


# ---------------------------------------------------------------------------
# queues
# ---------------------------------------------------------------------------
QUEUES = ("near_deadline", "manual_review", "major_complaints", "in_arbitration")


def queue(server, name, key, **q) -> list[dict]:
    r = server.get(f"/v1/queues/{name}" + ("?" + urllib.parse.urlencode(q) if q else ""),
                   key=key)
    assert r.status == 200, r
    assert r.body["queue"] == name
    return r.body["items"]


def test_queues_contents_order_and_scope(stable_server, db):
    d = Desk(stable_server, db)
    s = d.s
    _, qagent = db.make_key("agent", shops=d.shop, senior=True, name="desk-queue-agent")
    new_account = {"account_created_at": days_ago(2), "orders_count": 0}

    q1 = d.create("complaint")                                            # general, 24 h
    q2 = d.create("complaint", complaint={"public_exposure": True})       # major, 4 h
    q3 = d.create("refund", account=new_account)                          # manual review, 5 d
    q4 = d.create("complaint")                                            # 24 h, after q1
    q4 = act_ok(s, q4, "note", d.agent, text="wants 100 CNY to delete the review",
                signal="review_extortion")
    q5 = d.create("complaint")
    q6 = d.create("complaint", "safety_hazard")                           # major ...
    q6 = act_ok(s, q6, "acknowledge", d.senior)                           # ... no deadline now
    q7 = d.create("refund")                                               # in no queue
    q8 = d.create("complaint")
    q8 = act_ok(s, q8, "escalate", d.buyer, statement="first")            # escalated first
    q5 = act_ok(s, q5, "escalate", d.agent, statement="second")
    q9 = d.create("refund", account=new_account)                          # manual review ...
    act_ok(s, q9, "withdraw", d.buyer)                                    # ... but closed

    def ids(name, key=qagent, **q):
        return [c["id"] for c in queue(s, name, key, **q)]

    assert ids("near_deadline") == [q2["id"], q1["id"], q4["id"]]
    assert ids("manual_review") == [q4["id"], q3["id"]]
    assert ids("major_complaints") == [q2["id"], q6["id"]]
    assert ids("in_arbitration") == [q8["id"], q5["id"]]
    assert q7["id"] not in sum((ids(n) for n in QUEUES), [])

    # items are cases plus their next due time
    items = queue(s, "major_complaints", qagent)
    assert items[0]["next_due_at"] == q2["deadlines"][0]["due_at"], items[0]
    assert items[0]["decision"]["severity"] == "major" and items[0]["state"] == "awaiting_agent"
    assert items[1]["next_due_at"] is None and items[1]["state"] == "acknowledged", items[1]
    assert "allowed_actions" in items[0] and items[0]["shop_id"] == d.shop
    dues = [h.parse_time(c["next_due_at"]) for c in queue(s, "near_deadline", qagent)]
    assert dues == sorted(dues)
    # limit
    assert ids("near_deadline", limit="1") == [q2["id"]]
    assert ids("in_arbitration", limit="500") == [q8["id"], q5["id"]]
    # the stats count each queue whole, not a page of it
    st = s.get("/v1/stats?" + urllib.parse.urlencode({"shop_id": d.shop}), key=qagent)
    assert st.status == 200, st
    assert st.body["queues"] == {"near_deadline": 3, "overdue": 0, "breached": 0,
                                 "manual_review": 2, "major_complaints": 2,
                                 "in_arbitration": 2}, st.body["queues"]
    assert ids("overdue") == [] and ids("breached") == []

    # the platform-wide agent sees them among everyone's; the shop's seller sees
    # exactly these; a seller of another shop sees none
    for n in QUEUES:
        everyone = ids(n, key=d.agent, limit="500")
        assert set(ids(n)) <= set(everyone) or len(everyone) == 500, n
        assert ids(n, key=d.seller) == ids(n), n
    _, foreign = db.make_key("seller", shops=h.uniq("nobody"), name="desk-foreign")
    for n in QUEUES:
        assert ids(n, key=foreign) == [], n


@pytest.mark.parametrize("role", ["frontend", "payment"])
def test_queues_forbidden_for_frontend_and_payment_403(stable_server, keys, role):
    for n in QUEUES:
        assert_problem(stable_server.get(f"/v1/queues/{n}", key=keys[role]), 403)


def test_queue_errors(stable_server, keys):
    assert_problem(stable_server.get("/v1/queues/everything", key=keys["agent"]), 404)
    for bad in ("0", "501", "x", "-1", ""):
        p = assert_problem(stable_server.get(f"/v1/queues/near_deadline?limit={bad}",
                                             key=keys["agent"]), 422)
        assert "/query/limit" in h.problem_pointers(p), (bad, p)
    assert_problem(stable_server.get("/v1/queues/near_deadline", key=None), 401)
    r = stable_server.get("/v1/queues/near_deadline", key=keys["ops"])
    assert r.status == 200, r
