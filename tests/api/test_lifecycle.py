"""Black-box tests of issue 3 (case lifecycle): every kind walked from open to
each terminal outcome through POST /v1/cases/{id}/actions, the errors of the
action endpoint, Idempotency-Key, a 50-way race on one case, and an event-feed
consumer reading while writers write.

Everything runs against `stable_server` (the shipped policy: deadlines in
days), so no SLA expiry can move a case under a test."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import threading
import time
import urllib.parse

import pytest

import helpers as h
from helpers import assert_problem, problem_pointers

TERMINAL = ("refunded", "closed")
COMMITTED = ("refund_pending", "replacement_pending", "repair_pending")

# Deadlines each state keeps (issue 3); none in the *_pending and terminal states.
STATE_DEADLINES = {
    "awaiting_seller": {"seller_response"},
    "awaiting_buyer_return": {"buyer_ship_back"},
    "awaiting_seller_receipt": {"seller_receipt"},
    "awaiting_buyer_reply": {"buyer_reply"},
    "in_arbitration": {"arbitration"},
    "awaiting_agent": {"complaint_first_response"},
    "acknowledged": set(),
    "resolved": {"complaint_close"},
    "refund_pending": set(),
    "replacement_pending": set(),
    "repair_pending": set(),
    "refunded": set(),
    "closed": set(),
    "resend_pending": {"seller_resend"},
    "awaiting_buyer_confirm": {"buyer_confirm"},
    "awaiting_seller_reply": {"seller_reply"},
}
DEFAULT_DURATIONS = {"seller_response": "P5D", "buyer_ship_back": "P7D",
                     "seller_receipt": "P10D", "buyer_reply": "P7D", "arbitration": "P5D",
                     "complaint_first_response": "PT24H",
                     "complaint_first_response_major": "PT4H", "complaint_close": "P7D",
                     "seller_resend": "P3D", "buyer_confirm": "P10D", "seller_reply": "P5D"}

# What some party may do in each live state (the case's allowed_actions is the
# union over the roles); every live state also allows these:
LIVE_COMMON = {"add_evidence", "note", "record_agreement"}
STATE_ACTIONS = {
    "awaiting_seller": {"accept", "reject", "offer"},
    "awaiting_buyer_return": {"ship_back"},
    "awaiting_seller_receipt": {"confirm_receipt", "reject"},
    "awaiting_buyer_reply": {"escalate"},
    "in_arbitration": {"rule"},
    "refund_pending": {"refund_executed"},
    "replacement_pending": {"ship_replacement"},
    "repair_pending": {"ship_replacement"},
    "awaiting_agent": {"acknowledge", "resolve", "escalate"},
    "acknowledged": {"resolve", "escalate"},
    "resolved": {"confirm_resolution", "reopen"},
    "resend_pending": {"ship_replacement"},
    "awaiting_buyer_confirm": {"confirm_delivery", "report_missing"},
    "awaiting_seller_reply": {"accept", "reject"},
}
BREAKDOWN = ("item_cents", "shipping_cents", "penalty_cents", "total_cents", "currency")


def expected_allowed(c: dict) -> set[str]:
    st = c["state"]
    if st in TERMINAL:
        return set()
    a = set(LIVE_COMMON) | STATE_ACTIONS[st]
    if st not in COMMITTED:
        a.add("withdraw")
    if c.get("agreement_pending"):
        a.add("confirm_agreement")
    rounds_left = c.get("offer_rounds", 0) < \
        ((c.get("decision") or {}).get("negotiation") or {}).get("max_rounds", 1)
    if st == "awaiting_buyer_reply" and c.get("offer_cents") is not None:
        a |= {"accept_offer", "counter_offer"}
        if rounds_left:
            a.add("offer")      # the seller raises (001)
    if st == "awaiting_seller_reply" and rounds_left:
        a.add("offer")
    if st == "awaiting_seller" and c.get("reason") == "missing_item":
        a.add("resend")         # 003 补寄
    return a


def check_chain(events: list[dict]) -> None:
    assert events, "no events"
    for i, e in enumerate(events):
        assert e["seq"] == i + 1, [x["seq"] for x in events]
        assert h.HEX64.match(e["hash"]) and h.HEX64.match(e["prev_hash"]), e
        want_prev = "0" * 64 if i == 0 else events[i - 1]["hash"]
        assert e["prev_hash"] == want_prev, (events[i - 1] if i else None, e)
    assert len({e["hash"] for e in events}) == len(events), "repeated hashes"


def check_breakdown(data: dict, total: int) -> None:
    for k in BREAKDOWN:
        assert k in data, f"refund.instructed lacks {k}: {data}"
    for k in BREAKDOWN[:4]:
        assert type(data[k]) is int and data[k] >= 0, data
    assert data["total_cents"] == total, (data, total)
    assert data["item_cents"] + data["shipping_cents"] + data["penalty_cents"] == total, data
    assert data["currency"] == "CNY", data


def duration(name: str, major: bool = False) -> dt.timedelta:
    if name == "complaint_first_response" and major:
        name = "complaint_first_response_major"
    return h.policy_duration(h.DEFAULT_POLICY, name, DEFAULT_DURATIONS[name])


def if_match(v) -> dict:
    return {"If-Match": f'"{v}"'}


# ---------------------------------------------------------------------------
# the parties
# ---------------------------------------------------------------------------
class Parties:
    """The callers of one shop: buyer (the frontend key), the shop's seller
    key, and the platform's agent, senior agent, arbiter and payment keys."""

    def __init__(self, server: h.Server, db: h.TestDB):
        self.server = server
        self.db = db
        self.shop = h.uniq("lshop")
        seller_id, seller_key = db.make_key("seller", shops=self.shop, name="lifecycle-seller")
        # complaints judged major go to senior agents only: the walks use one
        senior_id, senior_key = db.make_key("agent", senior=True, name="lifecycle-senior")
        self.key = {"buyer": db.keys["frontend"], "seller": seller_key,
                    "agent": db.keys["agent"], "senior": senior_key,
                    "arbiter": db.keys["arbiter"], "payment": db.keys["payment"]}
        self.key_id = {"buyer": db.key_ids["frontend"], "seller": seller_id,
                       "agent": db.key_ids["agent"], "senior": senior_id,
                       "arbiter": db.key_ids["arbiter"], "payment": db.key_ids["payment"]}
        # the role name the audit trail records for each party
        self.role = {"buyer": "frontend", "seller": "seller", "agent": "agent",
                     "senior": "agent", "arbiter": "arbiter", "payment": "payment"}

    def body(self, kind: str = "refund", **top) -> dict:
        # a distinct text, buyer and SKU per case, so no risk or batch rule links the cases
        tag = h.uniq("t")
        if kind == "complaint":
            b = h.complaint_body(shop_id=self.shop,
                                 description=f"The agent hung up on me twice ({tag}).")
        else:
            b = h.case_body(shop_id=self.shop, kind=kind,
                            description=f"The kettle leaks from the seam ({tag}).")
            if kind == "repair":
                b["order"]["warranty_until"] = h.fmt_time(h.now_utc() + dt.timedelta(days=365))
        b["order"]["sku"] = h.uniq("SKU").upper()
        b.update(top)
        return b

    def create(self, kind: str = "refund", **top) -> dict:
        return h.create_case(self.server, self.body(kind, **top))

    def act(self, party: str, case_or_id, action: str, version=None, headers=None,
            **fields) -> h.Response:
        if isinstance(case_or_id, dict):
            cid = case_or_id["id"]
            version = case_or_id["version"] if version is None else version
        else:
            cid = case_or_id
        hdrs = dict(if_match(version)) if version is not None else {}
        hdrs.update(headers or {})
        return self.server.post(f"/v1/cases/{cid}/actions", {"action": action, **fields},
                                key=self.key[party], headers=hdrs)

    def get(self, cid: str, party: str = "buyer") -> h.Response:
        """The case as party reads it: a shop's seller reads the shop's view
        of the decision (#27), the platform's keys all of it."""
        return self.server.get(f"/v1/cases/{cid}", key=self.key[party])

    def events(self, cid: str) -> list[dict]:
        r = self.server.get(f"/v1/cases/{cid}/events")
        assert r.status == 200, r
        return r.body["items"]


@pytest.fixture(scope="module")
def P(stable_server, db) -> Parties:
    return Parties(stable_server, db)


class Walk:
    """One case taken through actions; every step is checked at once, the
    audit trail at the end (finish())."""

    def __init__(self, P: Parties, kind: str, **top):
        self.P = P
        self.c = P.create(kind, **top)
        first = "awaiting_agent" if kind == "complaint" else "awaiting_seller"
        assert self.c["state"] == first, self.c
        assert self.c["version"] == 1 and self.c["outcome"] is None, self.c
        assert not self.c["manual_review"], self.c
        self.total = self.c["decision"]["refund"]["total_cents"] if kind != "complaint" else None
        self.major = (self.c.get("decision") or {}).get("severity") == "major"
        self.check_case(self.c, None)
        # (action, role, key id, from, to, refund total or None)
        self.expected = [("open", "frontend", P.key_id["buyer"], None, first, None)]

    def check_case(self, c: dict, before: dict | None) -> None:
        st = c["state"]
        assert isinstance(c["allowed_actions"], list), c
        assert len(set(c["allowed_actions"])) == len(c["allowed_actions"]), c["allowed_actions"]
        assert set(c["allowed_actions"]) == expected_allowed(c), \
            (st, sorted(c["allowed_actions"]), sorted(expected_allowed(c)))
        names = [d["name"] for d in c["deadlines"]]
        assert sorted(names) == sorted(STATE_DEADLINES[st]), (st, c["deadlines"])
        for d in c["deadlines"]:
            assert isinstance(d["on_expiry"], str) and d["on_expiry"], d
            assert h.RFC3339_UTC.match(d["due_at"]), d
        if before is not None and before["state"] == st:
            # no state change: the deadlines stand as they were
            assert c["deadlines"] == before["deadlines"], (before["deadlines"], c["deadlines"])
        else:
            # armed by this change: due = the change's time + the policy duration
            at = h.parse_time(c["updated_at"])
            for d in c["deadlines"]:
                want = at + duration(d["name"], self.major)
                got = h.parse_time(d["due_at"])
                assert abs(got - want) <= dt.timedelta(seconds=1), (d, c["updated_at"], want)
        if st in TERMINAL:
            assert isinstance(c["outcome"], str) and c["outcome"], c
        else:
            assert c["outcome"] is None, c

    def do(self, party: str, action: str, to: str, outcome: str | None = None,
           refund: int | None = None, **fields) -> dict:
        before = self.c
        v = before["version"]
        r = self.P.act(party, before, action, **fields)
        assert r.status == 200, f"{action} by {party} in {before['state']}: {r!r}"
        assert r.content_type == "application/json", r
        c = r.body
        assert r.headers.get("ETag") == f'"{v + 1}"', (action, r.headers)
        assert c["version"] == v + 1, (action, c["version"], v)
        assert c["id"] == before["id"] and c["kind"] == before["kind"], c
        assert c["state"] == to, (action, before["state"], c["state"], to)
        assert c["outcome"] == outcome, (action, c["outcome"], outcome)
        assert h.parse_time(c["updated_at"]) >= h.parse_time(before["updated_at"]), c
        assert c["created_at"] == before["created_at"], c
        self.check_case(c, before)
        g = self.P.get(c["id"], party)
        assert g.status == 200 and g.headers.get("ETag") == f'"{v + 1}"', g
        assert g.body == c, "GET differs from the action's reply"
        self.expected.append((action, self.P.role[party], self.P.key_id[party],
                              before["state"], to, refund))
        self.c = c
        return c

    def finish(self) -> list[dict]:
        """Checks the trail; returns its events without the SLA scheduler's."""
        evs = self.P.events(self.c["id"])
        check_chain(evs)
        # The scheduler may remind of a deadline at any moment (a 24 h complaint
        # deadline under a 24 h reminder: at once); that changes no state or version.
        for e in evs:
            if e["actor"]["role"] == "system":
                assert e["action"] == "deadline.approaching", e
                assert e["from_state"] == e["to_state"], e
        evs = [e for e in evs if e["actor"]["role"] != "system"]
        # a confirmed agreement's payment follows its confirmation (checked
        # where agreements are walked)
        evs = [e for e in evs if e["action"] != "compensation.instructed"]
        acts = [e for e in evs if e["action"] not in ("refund.instructed",
                                                      "compensation.instructed")]
        assert len(acts) == len(self.expected) == self.c["version"], \
            ([e["action"] for e in evs], self.expected)
        i = 0
        for (action, role, kid, frm, to, refund) in self.expected:
            e = evs[i]
            got = (e["action"], e["actor"]["role"], e["actor"]["id"], e["from_state"], e["to_state"])
            assert got == (action, role, kid, frm, to), (got, evs)
            assert h.RFC3339_UTC.match(e["at"]) and isinstance(e["data"], dict), e
            i += 1
            if refund is not None:
                # the refund instruction follows its action, in the same change
                ri = evs[i]
                assert ri["action"] == "refund.instructed", (e, ri)
                assert ri["from_state"] == ri["to_state"] == to, ri
                assert (ri["actor"]["role"], ri["actor"]["id"]) == (role, kid), ri
                assert ri["at"] == e["at"], (e, ri)
                check_breakdown(ri["data"], refund)
                i += 1
        assert i == len(evs), f"unexpected events: {evs[i:]}"
        assert evs[-1]["to_state"] == self.c["state"], evs[-1]
        return evs


# ---------------------------------------------------------------------------
# walks: refund
# ---------------------------------------------------------------------------
def test_refund_accept_refund_executed_refunded(P):
    w = Walk(P, "refund")
    assert w.total == 10800, w.c["decision"]
    w.do("seller", "accept", "refund_pending", refund=w.total, note="sorry about that")
    assert w.c["refund_cents"] == w.total, w.c
    w.do("payment", "refund_executed", "refunded", "refunded", payment_ref=h.uniq("pay"))
    evs = w.finish()
    assert evs[-1]["data"].get("payment_ref"), evs[-1]


def test_refund_offer_accept_offer_partially_refunded(P):
    w = Walk(P, "refund")
    offer = 3000
    w.do("seller", "offer", "awaiting_buyer_reply", refund_cents=offer)
    assert w.c["offer_cents"] == offer and "accept_offer" in w.c["allowed_actions"], w.c
    w.do("buyer", "accept_offer", "refund_pending", refund=offer)
    assert w.c["offer_cents"] is None and w.c["refund_cents"] == offer, w.c
    w.do("payment", "refund_executed", "refunded", "partially_refunded", payment_ref=h.uniq("pay"))
    evs = w.finish()
    (ri,) = [e for e in evs if e["action"] == "refund.instructed"]
    assert ri["data"]["total_cents"] == offer, ri


def test_offer_of_the_full_amount_is_allowed(P):
    w = Walk(P, "refund")
    w.do("seller", "offer", "awaiting_buyer_reply", refund_cents=w.total)
    w.do("buyer", "accept_offer", "refund_pending", refund=w.total)
    w.do("payment", "refund_executed", "refunded", "refunded", payment_ref=h.uniq("pay"))
    w.finish()


@pytest.mark.parametrize("ruling", ["buyer", "split", "seller"])
def test_refund_reject_escalate_rule(P, ruling):
    w = Walk(P, "refund")
    w.do("seller", "reject", "awaiting_buyer_reply", reason="The seam is intact in our photos.")
    assert "accept_offer" not in w.c["allowed_actions"], w.c
    w.do("buyer", "escalate", "in_arbitration", statement="It leaks, see the video.")
    if ruling == "buyer":
        w.do("arbiter", "rule", "refund_pending", refund=w.total, in_favour_of="buyer",
             fault="seller", statement="Defect shown on video.")
        w.do("payment", "refund_executed", "refunded", "refunded", payment_ref=h.uniq("pay"))
    elif ruling == "split":
        w.do("arbiter", "rule", "refund_pending", refund=5000, in_favour_of="split",
             refund_cents=5000, fault="carrier", statement="Damage in transit; split.")
        w.do("payment", "refund_executed", "refunded", "partially_refunded",
             payment_ref=h.uniq("pay"))
    else:
        w.do("arbiter", "rule", "closed", "rejected", in_favour_of="seller", fault="buyer",
             statement="The buyer's photos show use.")
    w.finish()


def test_refund_withdraw_closed_withdrawn(P):
    w = Walk(P, "refund")
    w.do("buyer", "withdraw", "closed", "withdrawn", reason="It works after all.")
    w.finish()


def test_withdraw_from_buyer_reply_and_arbitration(P):
    w = Walk(P, "refund")
    w.do("seller", "offer", "awaiting_buyer_reply", refund_cents=1000)
    w.do("buyer", "withdraw", "closed", "withdrawn")
    w.finish()
    w = Walk(P, "return")
    w.do("seller", "reject", "awaiting_buyer_reply", reason="no")
    w.do("buyer", "escalate", "in_arbitration", statement="please look")
    w.do("buyer", "withdraw", "closed", "withdrawn")
    w.finish()


# ---------------------------------------------------------------------------
# walks: goods that travel
# ---------------------------------------------------------------------------
def test_return_ship_back_receipt_as_sent_refunded(P):
    w = Walk(P, "return")
    w.do("seller", "accept", "awaiting_buyer_return")
    w.do("buyer", "ship_back", "awaiting_seller_receipt", carrier="SF Express",
         tracking_no="SF1234567890")
    w.do("seller", "confirm_receipt", "refund_pending", refund=w.total, condition="as_sent")
    w.do("payment", "refund_executed", "refunded", "refunded", payment_ref=h.uniq("pay"))
    evs = w.finish()
    sb = [e for e in evs if e["action"] == "ship_back"][0]
    assert sb["data"].get("carrier") == "SF Express", sb
    assert sb["data"].get("tracking_no") == "SF1234567890", sb


@pytest.mark.parametrize("condition", ["damaged_by_buyer", "not_received"])
def test_return_disputed_receipt_goes_to_arbitration(P, condition):
    w = Walk(P, "return")
    w.do("seller", "accept", "awaiting_buyer_return")
    w.do("buyer", "ship_back", "awaiting_seller_receipt", carrier="YTO", tracking_no="YT0001")
    w.do("seller", "confirm_receipt", "in_arbitration", condition=condition,
         note="The housing is cracked.")
    w.do("arbiter", "rule", "closed", "rejected", in_favour_of="seller", fault="buyer",
         statement="Cracked by the buyer.")
    evs = w.finish()
    cr = [e for e in evs if e["action"] == "confirm_receipt"][0]
    assert cr["data"].get("condition") == condition, cr


def test_exchange_replacement_shipped_closed_exchanged(P):
    w = Walk(P, "exchange")
    w.do("seller", "accept", "awaiting_buyer_return")
    w.do("buyer", "ship_back", "awaiting_seller_receipt", carrier="ZTO", tracking_no="ZT42")
    # an agent acts for the shop
    w.do("agent", "confirm_receipt", "replacement_pending", condition="as_sent")
    w.do("seller", "ship_replacement", "closed", "exchanged", carrier="ZTO", tracking_no="ZT43")
    w.finish()


def test_repair_repaired_goods_shipped_closed_repaired(P):
    w = Walk(P, "repair")
    w.do("agent", "accept", "awaiting_buyer_return")
    w.do("buyer", "ship_back", "awaiting_seller_receipt", carrier="EMS", tracking_no="EM1")
    w.do("seller", "confirm_receipt", "repair_pending", condition="as_sent")
    w.do("seller", "ship_replacement", "closed", "repaired", carrier="EMS", tracking_no="EM2")
    w.finish()


def test_return_offer_instead_of_taking_the_goods_back(P):
    w = Walk(P, "return")
    w.do("seller", "offer", "awaiting_buyer_reply", refund_cents=2500, message="keep it")
    w.do("buyer", "accept_offer", "refund_pending", refund=2500)
    w.do("payment", "refund_executed", "refunded", "partially_refunded", payment_ref=h.uniq("p"))
    w.finish()


# ---------------------------------------------------------------------------
# walks: complaints, notes, evidence, agreements
# ---------------------------------------------------------------------------
def test_complaint_acknowledge_resolve_confirmed(P):
    w = Walk(P, "complaint")
    w.do("senior", "acknowledge", "acknowledged", message="We are looking into it.")
    # a resolution waits for the buyer's word (complaint_close); confirmed, the case closes
    w.do("senior", "resolve", "resolved", resolution="apology", message="We are sorry.")
    w.do("buyer", "confirm_resolution", "closed", "resolved")
    w.finish()


def test_complaint_resolved_reopened_resolved(P):
    w = Walk(P, "complaint")
    w.do("senior", "resolve", "resolved", resolution="explanation")
    w.do("buyer", "reopen", "acknowledged", reason="Still not answered.")
    w.do("senior", "resolve", "resolved", resolution="apology")
    w.do("buyer", "confirm_resolution", "closed", "resolved")
    w.finish()


def test_complaint_escalated_and_ruled(P):
    w = Walk(P, "complaint")
    w.do("buyer", "escalate", "in_arbitration", statement="Nobody answers.")
    w.do("arbiter", "rule", "closed", "rejected", in_favour_of="seller", fault="buyer",
         statement="The service log shows two answers.")
    w.finish()


def test_agreement_recorded_then_confirmed_by_the_buyer(P):
    w = Walk(P, "complaint")
    assert w.c["agreement_pending"] is False and "confirm_agreement" not in w.c["allowed_actions"]
    w.do("agent", "record_agreement", "awaiting_agent", terms="20 CNY coupon, buyer keeps item",
         channel="phone", compensation_cents=2000)
    assert w.c["agreement_pending"] is True, w.c
    assert "confirm_agreement" in w.c["allowed_actions"], w.c
    w.do("buyer", "confirm_agreement", "awaiting_agent")
    assert w.c["agreement_pending"] is False, w.c
    assert "confirm_agreement" not in w.c["allowed_actions"], w.c
    # nothing to confirm any more
    r = P.act("buyer", w.c, "confirm_agreement")
    p = assert_problem(r, 409)
    assert p["state"] == "awaiting_agent", p
    w.do("senior", "resolve", "resolved", resolution="apology")
    w.do("buyer", "confirm_resolution", "closed", "resolved")
    w.finish()
    # 001/issue 20: the confirmed agreement is paid, exactly once
    comp = [e for e in P.events(w.c["id"]) if e["action"] == "compensation.instructed"]
    assert len(comp) == 1, comp
    assert comp[0]["data"] == {"compensation_cents": 2000, "currency": "CNY",
                               "reason": "agreement_confirmed"}, comp
    assert comp[0]["actor"]["role"] == "frontend", comp
    # 001/issue 20: the confirmed agreement is paid, exactly once
    comp = [e for e in P.events(w.c["id"]) if e["action"] == "compensation.instructed"]
    assert len(comp) == 1, comp
    assert comp[0]["data"] == {"compensation_cents": 2000, "currency": "CNY",
                               "reason": "agreement_confirmed"}, comp
    assert comp[0]["actor"]["role"] == "frontend", comp


def test_note_and_evidence_keep_state_and_deadlines(P):
    w = Walk(P, "refund")
    w.do("agent", "note", "awaiting_seller", text="Buyer called; very upset.")
    new = {"kind": "video", "url": "https://img.example.com/ev/leak.mp4"}
    w.do("buyer", "add_evidence", "awaiting_seller", evidence=[new])
    assert len(w.c["evidence"]) == 2 and w.c["evidence"][-1]["url"] == new["url"], w.c["evidence"]
    w.do("agent", "record_agreement", "awaiting_seller", terms="full refund by chat",
         channel="chat")
    w.do("seller", "accept", "refund_pending", refund=w.total)
    # the pending agreement survives the state change, and is still the buyer's to confirm
    assert w.c["agreement_pending"] is True, w.c
    w.do("buyer", "confirm_agreement", "refund_pending")
    w.do("payment", "refund_executed", "refunded", "refunded", payment_ref=h.uniq("pay"))
    w.finish()


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def unchanged(P, c: dict, n_events: int) -> None:
    g = P.get(c["id"])
    assert g.status == 200 and g.body["version"] == c["version"], g
    assert g.body["state"] == c["state"], g
    assert len(P.events(c["id"])) == n_events


def test_missing_if_match_428(P):
    c = P.create()
    r = P.act("seller", c["id"], "accept")  # no version: no If-Match
    assert_problem(r, 428)
    unchanged(P, c, 1)


@pytest.mark.parametrize("value", ['"2"', '"0"', "abc", '"1"x', ""])
def test_bad_or_stale_if_match_412(P, value):
    c = P.create()
    r = P.act("seller", c["id"], "accept", headers={"If-Match": value})
    if value == "":
        assert r.status in (412, 428), r
        assert_problem(r, r.status)
    else:
        assert_problem(r, 412)
    unchanged(P, c, 1)


def test_stale_if_match_after_a_change_412(P):
    c = P.create()
    r = P.act("agent", c, "note", text="first")
    assert r.status == 200, r
    for v in (1, 3):
        r = P.act("seller", c["id"], "accept", version=v)
        assert_problem(r, 412)
    now = P.get(c["id"]).body
    assert now["version"] == 2, now
    unchanged(P, now, 2)
    # the weak and the bare forms of the current version are accepted
    r = P.act("seller", c["id"], "accept", headers={"If-Match": 'W/"2"'})
    assert r.status == 200 and r.body["version"] == 3, r


def test_action_not_allowed_in_state_409(P):
    w = Walk(P, "refund")
    w.do("seller", "accept", "refund_pending", refund=w.total)
    w.do("payment", "refund_executed", "refunded", "refunded", payment_ref="p-1")
    n = len(P.events(w.c["id"]))
    for party, action, fields in [("seller", "accept", {}), ("buyer", "withdraw", {}),
                                  ("payment", "refund_executed", {"payment_ref": "p-2"}),
                                  ("agent", "note", {"text": "late"})]:
        r = P.act(party, w.c, action, **fields)
        p = assert_problem(r, 409)
        assert p["state"] == "refunded", p
        assert p["allowed_actions"] == [], p
        assert action in p["detail"], p
    unchanged(P, w.c, n)

    # too late to withdraw once the money is on its way
    c = P.create()
    r = P.act("seller", c, "accept")
    assert r.status == 200, r
    p = assert_problem(P.act("buyer", r.body, "withdraw"), 409)
    assert p["state"] == "refund_pending", p
    assert "withdraw" not in p["allowed_actions"], p
    # an action of another kind's path
    p = assert_problem(P.act("buyer", r.body, "ship_back", carrier="x", tracking_no="y"), 409)
    assert p["state"] == "refund_pending", p


def test_wrong_role_409_lists_the_callers_actions(P):
    c = P.create()
    r = P.act("buyer", c, "accept")  # the seller's action
    p = assert_problem(r, 409)
    assert p["state"] == "awaiting_seller", p
    assert isinstance(p["allowed_actions"], list), p
    assert "accept" not in p["allowed_actions"], p
    assert set(p["allowed_actions"]) == {"withdraw", "add_evidence"}, p
    # and the other way round
    p = assert_problem(P.act("seller", c, "withdraw"), 409)
    assert set(p["allowed_actions"]) == {"accept", "reject", "offer"}, p
    p = assert_problem(P.act("arbiter", c, "rule", in_favour_of="buyer", fault="seller",
                             statement="x"), 409)
    assert p["allowed_actions"] == [], p
    p = assert_problem(P.act("payment", c, "refund_executed", payment_ref="x"), 409)
    assert p["state"] == "awaiting_seller", p
    unchanged(P, c, 1)


def test_read_only_roles_cannot_act(P, db):
    c = P.create()
    for role in ("ops", "admin"):
        r = P.server.post(f"/v1/cases/{c['id']}/actions", {"action": "note", "text": "hi"},
                          key=db.keys[role], headers=if_match(1))
        assert r.status in (403, 409), r
        assert_problem(r, r.status)
    unchanged(P, c, 1)


@pytest.mark.parametrize("action", ["bogus", "ACCEPT", "", "expire_seller_response",
                                    "expire_buyer_reply", "expire_arbitration", "open",
                                    "refund.instructed"])
def test_unknown_or_system_action_422(P, action):
    c = P.create()
    p = assert_problem(P.act("seller", c, action), 422)
    assert "/action" in problem_pointers(p), p
    unchanged(P, c, 1)


@pytest.mark.parametrize("body", [{}, {"action": 5}, {"action": None}, {"action": ["accept"]}])
def test_missing_or_mistyped_action_422(P, body):
    c = P.create()
    r = P.server.post(f"/v1/cases/{c['id']}/actions", body, key=P.key["seller"],
                      headers=if_match(1))
    p = assert_problem(r, 422)
    assert "/action" in problem_pointers(p), p
    unchanged(P, c, 1)


def test_offer_above_the_order_422(P):
    c = P.create()
    total = c["decision"]["refund"]["total_cents"]
    for cents in (total + 1, 10 ** 12):
        p = assert_problem(P.act("seller", c, "offer", refund_cents=cents), 422)
        assert "/refund_cents" in problem_pointers(p), p
    for bad in (0, -5, 1.5, "100", None):
        p = assert_problem(P.act("seller", c, "offer", refund_cents=bad), 422)
        assert "/refund_cents" in problem_pointers(p), (bad, p)
    p = assert_problem(P.act("seller", c, "offer"), 422)
    assert "/refund_cents" in problem_pointers(p), p
    unchanged(P, c, 1)


def test_ruling_amounts_above_the_order_422(P):
    w = Walk(P, "refund")
    w.do("seller", "reject", "awaiting_buyer_reply", reason="no")
    w.do("buyer", "escalate", "in_arbitration", statement="yes")
    for fields, ptr in [({"in_favour_of": "split", "refund_cents": w.total + 1}, "/refund_cents"),
                        ({"in_favour_of": "split"}, "/refund_cents"),
                        ({"in_favour_of": "seller", "refund_cents": 100}, "/refund_cents"),
                        ({"in_favour_of": "nobody"}, "/in_favour_of")]:
        p = assert_problem(P.act("arbiter", w.c, "rule", fault="seller", statement="s",
                                 **fields), 422)
        assert ptr in problem_pointers(p), (fields, p)
    unchanged(P, w.c, 3)


@pytest.mark.parametrize("action,fields,pointer", [
    ("accept", {"colour": "red"}, "/colour"),
    ("withdraw", {"refund_cents": 5}, "/refund_cents"),
    ("reject", {"reason": "no", "statement": "x"}, "/statement"),
    ("offer", {"refund_cents": 100, "reason": "x"}, "/reason"),
])
def test_unknown_field_in_action_body_422(P, action, fields, pointer):
    c = P.create()
    p = assert_problem(P.act("seller" if action != "withdraw" else "buyer", c, action,
                             **fields), 422)
    assert pointer in problem_pointers(p), p
    unchanged(P, c, 1)


@pytest.mark.parametrize("action,fields,pointer", [
    ("reject", {}, "/reason"),
    ("reject", {"reason": 5}, "/reason"),
])
def test_missing_or_bad_action_fields_422(P, action, fields, pointer):
    c = P.create()
    p = assert_problem(P.act("seller", c, action, **fields), 422)
    assert pointer in problem_pointers(p), p
    unchanged(P, c, 1)


def test_action_fields_are_checked_per_action(P):
    w = Walk(P, "return")
    w.do("seller", "accept", "awaiting_buyer_return")
    p = assert_problem(P.act("buyer", w.c, "ship_back", carrier="SF"), 422)
    assert "/tracking_no" in problem_pointers(p), p
    w.do("buyer", "ship_back", "awaiting_seller_receipt", carrier="SF", tracking_no="1")
    p = assert_problem(P.act("seller", w.c, "confirm_receipt", condition="meh"), 422)
    assert "/condition" in problem_pointers(p), p
    p = assert_problem(P.act("seller", w.c, "confirm_receipt"), 422)
    assert "/condition" in problem_pointers(p), p
    w.finish()


def test_action_on_unknown_or_foreign_case_404(P, db):
    assert_problem(P.act("seller", "c_doesnotexist", "accept", version=1), 404)
    c = P.create()
    _, other_seller = db.make_key("seller", shops=h.uniq("other"))
    r = P.server.post(f"/v1/cases/{c['id']}/actions", {"action": "accept"},
                      key=other_seller, headers=if_match(1))
    assert_problem(r, 404)
    unchanged(P, c, 1)


def test_actions_need_an_api_key_401(P):
    c = P.create()
    r = P.server.post(f"/v1/cases/{c['id']}/actions", {"action": "accept"}, key=None,
                      headers=if_match(1))
    assert_problem(r, 401)
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("bearer"), r.headers
    unchanged(P, c, 1)


# ---------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------
def cases_of_order(server, order_id: str) -> list[dict]:
    r = server.get("/v1/cases?" + urllib.parse.urlencode({"order_id": order_id}))
    assert r.status == 200, r
    return r.body["items"]


def test_idempotent_create_replays(P):
    body = P.body()
    k = {"Idempotency-Key": h.uniq("idem-create")}
    r1 = P.server.post("/v1/cases", body, headers=k)
    assert r1.status == 201, r1
    assert r1.headers.get("Idempotent-Replayed") in (None, "false"), r1.headers
    r2 = P.server.post("/v1/cases", body, headers=k)
    assert r2.status == 201, r2
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
    assert r2.body == r1.body
    assert r2.headers.get("ETag") == r1.headers.get("ETag") == '"1"', (r1.headers, r2.headers)
    assert r2.headers.get("Location") == r1.headers.get("Location"), r2.headers
    assert [c["id"] for c in cases_of_order(P.server, body["order"]["id"])] == [r1.body["id"]]
    # the replay is the stored reply even after the case has moved on
    a = P.act("seller", r1.body, "accept")
    assert a.status == 200, a
    r3 = P.server.post("/v1/cases", body, headers=k)
    assert r3.status == 201 and r3.body == r1.body, r3
    assert r3.headers.get("Idempotent-Replayed") == "true", r3.headers

    # the same key with another body
    other = P.body()
    r4 = P.server.post("/v1/cases", other, headers=k)
    p = assert_problem(r4, 422)
    assert p["type"].endswith("idempotency-mismatch") or "dempoten" in p["detail"], p
    assert cases_of_order(P.server, other["order"]["id"]) == []


def test_idempotent_action_replays(P):
    c = P.create()
    k = {"Idempotency-Key": h.uniq("idem-act")}
    r1 = P.act("seller", c, "offer", refund_cents=1500, headers=k)
    assert r1.status == 200 and r1.body["version"] == 2, r1
    r2 = P.act("seller", c, "offer", refund_cents=1500, headers=k)  # still If-Match 1
    assert r2.status == 200, r2
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
    assert r2.body == r1.body and r2.headers.get("ETag") == '"2"', r2
    g = P.get(c["id"]).body
    assert g["version"] == 2, g
    assert [e["action"] for e in P.events(c["id"])] == ["open", "offer"]

    # another body under the same key: 422, nothing applied
    p = assert_problem(P.act("seller", c, "offer", refund_cents=1600, headers=k), 422)
    assert p["type"].endswith("idempotency-mismatch") or "dempoten" in p["detail"], p
    assert P.get(c["id"]).body["version"] == 2

    # a refusal is stored and replayed too
    k2 = {"Idempotency-Key": h.uniq("idem-409")}
    r = P.act("seller", g, "accept", headers=k2)  # not allowed in awaiting_buyer_reply
    p = assert_problem(r, 409)
    r = P.act("seller", g, "accept", headers=k2)
    assert r.status == 409 and r.body == p, r
    assert r.headers.get("Idempotent-Replayed") == "true", r.headers


def test_a_committed_action_whose_reply_was_lost_is_answered_not_rerun(P, db):
    """The service died (or the primary failed over) after the action's
    COMMIT and before its reply was stored: the record is still a claim,
    but the change marked it applied in its own transaction. The retry,
    with the If-Match the client sent the first time, gets the case as it
    is now (200, Idempotent-Replayed) instead of a 412 for a version that
    moved on, and nothing is applied twice."""
    c = P.create()
    key = h.uniq("idem-lost")
    r1 = P.act("seller", c, "offer", refund_cents=1500, headers={"Idempotency-Key": key})
    assert r1.status == 200 and r1.body["version"] == 2, r1
    scope = h.key_id_of(P.key["seller"])
    rec = h.psql(db.admin_url, (
        "SELECT applied_case, applied_version FROM idempotency_keys"
        " WHERE scope = {s} AND key = {k};").format(s=h.quote_literal(scope), k=h.quote_literal(key))
    ).stdout.strip()
    assert rec == f"{c['id']}|2", rec
    # what the crash leaves: the claim, with the reply never stored
    h.psql(db.admin_url, (
        "UPDATE idempotency_keys SET state = 'in_flight', status = NULL, response = NULL"
        " WHERE scope = {s} AND key = {k};").format(s=h.quote_literal(scope), k=h.quote_literal(key)))
    r2 = P.act("seller", c, "offer", refund_cents=1500, headers={"Idempotency-Key": key})
    assert r2.status == 200, r2
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
    assert r2.body["id"] == c["id"] and r2.body["version"] == 2, r2.body
    assert r2.headers.get("ETag") == '"2"', r2.headers
    assert [e["action"] for e in P.events(c["id"])] == ["open", "offer"]
    # that answer is now the key's stored reply
    r3 = P.act("seller", c, "offer", refund_cents=1500, headers={"Idempotency-Key": key})
    assert r3.status == 200 and r3.body == r2.body, r3
    assert r3.headers.get("Idempotent-Replayed") == "true", r3.headers
    # another body under the key is still refused
    assert_problem(P.act("seller", c, "offer", refund_cents=1600, headers={"Idempotency-Key": key}), 422)

    # a claim whose change never committed (the first attempt died before
    # its COMMIT) carries no mark: after the lease the retry acts
    c2 = P.create()
    key2 = h.uniq("idem-died")
    h.psql(db.admin_url, (
        "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at)"
        " VALUES ({s}, {k}, '\\x00', now() - interval '1 hour');").format(
            s=h.quote_literal(scope), k=h.quote_literal(key2)))
    r4 = P.act("seller", c2, "offer", refund_cents=1500, headers={"Idempotency-Key": key2})
    assert r4.status == 200 and r4.body["version"] == 2, r4
    assert r4.headers.get("Idempotent-Replayed") in (None, "false"), r4.headers


def test_idempotency_keys_are_per_api_key(P, db):
    _, other_frontend = db.make_key("frontend", name="other-frontend")
    k = {"Idempotency-Key": h.uniq("idem-shared")}
    b1, b2 = P.body(), P.body()
    r1 = P.server.post("/v1/cases", b1, headers=k)
    assert r1.status == 201, r1
    r2 = P.server.post("/v1/cases", b2, headers=k, key=other_frontend)
    assert r2.status == 201, r2
    assert r2.headers.get("Idempotent-Replayed") in (None, "false"), r2.headers
    assert r2.body["id"] != r1.body["id"]
    r3 = P.server.post("/v1/cases", b1, headers=k, key=other_frontend)
    assert_problem(r3, 422)  # that key's use of it was b2
    # actions: the same key under the seller and under an agent are two requests
    c = P.create()
    r = P.act("agent", c, "note", text="n", headers=k)
    assert r.status == 200 and r.body["version"] == 2, r
    r = P.act("seller", r.body, "accept", headers=k)
    assert r.status == 200 and r.body["version"] == 3, r
    assert r.headers.get("Idempotent-Replayed") in (None, "false"), r.headers


def test_idempotency_key_syntax_422(P):
    for bad in ("x" * 256, "has space", "tab\tin"):
        r = P.server.post("/v1/cases", P.body(), headers={"Idempotency-Key": bad})
        assert_problem(r, 422)


def test_concurrent_duplicate_creates_make_one_case(P):
    body = P.body()
    k = {"Idempotency-Key": h.uniq("idem-race")}
    n = 10
    gate = threading.Barrier(n)

    def fire(_):
        gate.wait(10)
        return P.server.post("/v1/cases", body, headers=k)

    with cf.ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(fire, range(n)))
    assert all(r.status in (201, 409) for r in rs), rs
    created = [r for r in rs if r.status == 201]
    assert created, rs
    assert len({r.body["id"] for r in created}) == 1, [r.body["id"] for r in created]
    for r in rs:
        if r.status == 409:
            assert_problem(r, 409)
    cid = created[0].body["id"]
    assert [c["id"] for c in cases_of_order(P.server, body["order"]["id"])] == [cid]
    # once settled, a retry replays
    r = P.server.post("/v1/cases", body, headers=k)
    assert r.status == 201 and r.body["id"] == cid, r
    assert r.headers.get("Idempotent-Replayed") == "true", r.headers
    assert len(P.events(cid)) == 1


def test_concurrent_duplicate_actions_apply_once(P):
    c = P.create()
    k = {"Idempotency-Key": h.uniq("idem-act-race")}
    n = 10
    gate = threading.Barrier(n)

    def fire(_):
        gate.wait(10)
        return P.act("seller", c, "reject", reason="duplicate", headers=k)

    with cf.ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(fire, range(n)))
    assert all(r.status in (200, 409) for r in rs), rs
    ok = [r for r in rs if r.status == 200]
    assert ok and all(r.body == ok[0].body for r in ok), rs
    for r in rs:
        if r.status == 409:
            p = assert_problem(r, 409)
            assert "state" not in p or p["state"] == "awaiting_seller", p  # in flight, not a state refusal
    assert P.get(c["id"]).body["version"] == 2
    evs = P.events(c["id"])
    assert [e["action"] for e in evs] == ["open", "reject"], evs
    check_chain(evs)


# ---------------------------------------------------------------------------
# the 50-way race
# ---------------------------------------------------------------------------
def test_fifty_concurrent_conflicting_actions_one_wins(P):
    c = P.create()
    moves = [("seller", "accept", {}), ("seller", "reject", {"reason": "r"}),
             ("seller", "offer", {"refund_cents": 700}), ("buyer", "withdraw", {}),
             ("agent", "note", {"text": "n"}), ("agent", "offer", {"refund_cents": 900}),
             ("buyer", "add_evidence", {"evidence": [{"kind": "photo",
                                                      "url": "https://img.example.com/x.jpg"}]})]
    n = 50
    plan = [moves[i % len(moves)] for i in range(n)]
    gate = threading.Barrier(n)

    def fire(i):
        party, action, fields = plan[i]
        gate.wait(20)
        return P.act(party, c, action, **fields)  # all with If-Match "1"

    with cf.ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(fire, range(n)))
    wins = [i for i, r in enumerate(rs) if r.status == 200]
    assert len(wins) == 1, [r.status for r in rs]
    for r in rs:
        if r.status != 200:
            assert r.status in (409, 412), r
            assert_problem(r, r.status)
    win = rs[wins[0]]
    party, action, _ = plan[wins[0]]
    assert win.body["version"] == 2 and win.headers.get("ETag") == '"2"', win

    g = P.get(c["id"], party)
    assert g.body["version"] == 2, g.body
    assert g.body == win.body
    evs = P.events(c["id"])
    check_chain(evs)
    acts = [e for e in evs if e["action"] != "refund.instructed"]
    assert [e["action"] for e in acts] == ["open", action], evs
    assert acts[1]["actor"]["id"] == P.key_id[party], acts[1]
    assert len(evs) == (3 if action == "accept" else 2), evs
    # the case still moves on from the winner's version
    if g.body["state"] not in TERMINAL:
        r = P.act("agent", g.body, "note", text="after the race")
        assert r.status == 200 and r.body["version"] == 3, r
        check_chain(P.events(c["id"]))


# ---------------------------------------------------------------------------
# the event feed
# ---------------------------------------------------------------------------
def feed_page(server, after: str | None, limit: int, key=h.DEFAULT_KEY) -> dict:
    q = {"limit": str(limit)}
    if after:
        q["after"] = after
    r = server.get("/v1/events?" + urllib.parse.urlencode(q), key=key)
    assert r.status == 200, r
    assert isinstance(r.body.get("items"), list) and "next_cursor" in r.body, r.body
    return r.body


def feed_tail(server, key=h.DEFAULT_KEY) -> str | None:
    cursor = None
    for _ in range(10000):
        page = feed_page(server, cursor, 1000, key)
        if not page["items"]:
            return page["next_cursor"] or cursor
        cursor = page["next_cursor"]
    raise AssertionError("the feed does not end")


def test_feed_consumer_sees_every_event_once_while_writers_write(P):
    server = P.server
    start = feed_tail(server)
    seen: list[dict] = []
    errors: list[object] = []
    stop_reading = threading.Event()
    writers_done = threading.Event()
    state = {"cursor": start, "pages": 0}

    def read_once() -> int:
        page = feed_page(server, state["cursor"], 9)
        items = page["items"]
        state["pages"] += 1
        if items:
            assert page["next_cursor"] == items[-1]["cursor"], page
            state["cursor"] = page["next_cursor"]
        seen.extend(items)
        return len(items)

    def reader():
        try:
            while not stop_reading.is_set():
                if read_once() == 0:
                    time.sleep(0.02)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    made: list[str] = []
    kinds: list[str] = []
    lock = threading.Lock()

    def writer(w: int):
        try:
            for i in range(4):
                # kinds whose deadlines are days away: no scheduler event joins in
                kind = ("refund", "return", "exchange")[(w + i) % 3]
                c = P.create(kind)
                with lock:
                    made.append(c["id"])
                    kinds.append(kind)
                if kind == "refund":
                    r = P.act("seller", c, "accept")
                    assert r.status == 200, r
                    r = P.act("payment", r.body, "refund_executed", payment_ref=h.uniq("p"))
                elif kind == "return":
                    r = P.act("seller", c, "offer", refund_cents=1234)
                    assert r.status == 200, r
                    r = P.act("buyer", r.body, "accept_offer")
                else:
                    r = P.act("agent", c, "note", text="called")
                    for party, action, fields in [
                            ("seller", "accept", {}),
                            ("buyer", "ship_back", {"carrier": "SF", "tracking_no": "1"}),
                            ("seller", "confirm_receipt", {"condition": "as_sent"}),
                            ("seller", "ship_replacement", {"carrier": "SF", "tracking_no": "2"})]:
                        assert r.status == 200, r
                        r = P.act(party, r.body, action, **fields)
                assert r.status == 200, r
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    ws = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    for t in ws:
        t.start()
    for t in ws:
        t.join(120)
    writers_done.set()
    stop_reading.set()
    rt.join(60)
    assert not rt.is_alive() and not any(t.is_alive() for t in ws), "threads hang"
    assert not errors, errors
    assert len(made) == 16

    # the truth: each case's own audit trail
    truth = {cid: P.events(cid) for cid in made}
    want = {(cid, e["seq"]) for cid, evs in truth.items() for e in evs}
    # drain: until every event is in, then on until two pages in a row are empty
    # (or, as other tests' servers may keep writing, 20 more pages). Bounded wait in
    # case a transaction elsewhere holds the feed's horizon back for a moment.
    deadline = time.monotonic() + 60
    empties = after = 0
    while time.monotonic() < deadline:
        got = read_once()
        empties = empties + 1 if got == 0 else 0
        if want <= {(e["case_id"], e["seq"]) for e in seen}:
            after += 1
            if empties >= 2 or after > 20:
                break
        if got == 0:
            time.sleep(0.05)
    assert state["pages"] > 3

    # cursors are opaque (#18): one per event, none handed out twice; each page
    # above resumed from the last one, so nothing was read twice
    keys = [e["cursor"] for e in seen]
    assert len(set(keys)) == len(keys), "a cursor was handed out twice"
    ours = [e for e in seen if e["case_id"] in truth]
    ids = [(e["case_id"], e["seq"]) for e in ours]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert set(ids) == want, f"missed: {sorted(want - set(ids))[:10]} extra: {sorted(set(ids) - want)[:10]}"
    for cid, evs in truth.items():
        mine = [e for e in ours if e["case_id"] == cid]
        assert [e["seq"] for e in mine] == [e["seq"] for e in evs], (cid, mine)
        assert [e["hash"] for e in mine] == [e["hash"] for e in evs], cid
        assert [e["action"] for e in mine] == [e["action"] for e in evs], cid
        for fe, te in zip(mine, evs):
            assert fe["data"] == te["data"] and fe["actor"] == te["actor"], (fe, te)
            assert fe["shop_id"] == P.shop, fe
    instructed = [e for e in ours if e["action"] == "refund.instructed"]
    # one per accepted refund and one per accepted offer (the return cases)
    assert len(instructed) == len(made) - kinds.count("exchange"), [e["action"] for e in ours]
    for e in instructed:
        check_breakdown(e["data"], e["data"]["total_cents"])
    assert sorted({e["data"]["total_cents"] for e in instructed}) == [1234, 10800], instructed


def test_feed_is_resumable_and_scoped(P, db):
    P = Parties(P.server, db)  # a shop of its own: its feed holds only this test's events
    seller = P.key["seller"]
    start = feed_tail(P.server)
    shop_start = feed_tail(P.server, key=seller)
    w = Walk(P, "refund")
    w.do("seller", "accept", "refund_pending", refund=w.total)
    w.do("agent", "note", "refund_pending", text="paid soon")
    evs = w.finish()
    mine = {(w.c["id"], e["seq"]) for e in evs}

    # page one event at a time, resuming from each stored cursor (the shop's own
    # feed, which holds exactly this case's events since shop_start)
    got, cur = [], shop_start
    for _ in range(50):
        page = feed_page(P.server, cur, 1, key=seller)
        if not page["items"]:
            break
        assert len(page["items"]) == 1, page
        got += page["items"]
        cur = page["next_cursor"]
        assert cur == page["items"][0]["cursor"], page
    assert [(e["case_id"], e["seq"]) for e in got] == [(w.c["id"], e["seq"]) for e in evs], \
        "resumed paging differs"
    # the shop's feed carries no digests (redact.h)
    assert all(e["hash"] is None for e in got), got
    # an empty page keeps the cursor
    tail = feed_tail(P.server)
    page = feed_page(P.server, tail, 5)
    if not page["items"]:
        assert page["next_cursor"] == tail, page

    # a seller key of another shop sees none of these events; this shop's seller does
    _, other = db.make_key("seller", shops=h.uniq("elsewhere"))
    page = feed_page(P.server, None, 1000, key=other)
    assert not [e for e in page["items"] if e["case_id"] == w.c["id"]], page
    # cursors are the caller's own (#18): a position in the platform's feed
    # names an event the other shop's key may not see, so it is refused
    if start and start != "0.0":
        r = P.server.get("/v1/events?" + urllib.parse.urlencode({"after": start}), key=other)
        assert r.status == 400 and r.body["type"] == "urn:arbiter:problem:invalid-cursor", r
    page = feed_page(P.server, shop_start, 1000, key=P.key["seller"])
    assert mine <= {(e["case_id"], e["seq"]) for e in page["items"]}, page
    assert {e["shop_id"] for e in page["items"]} == {P.shop}, page


@pytest.mark.parametrize("query,status", [
    ("after=garbage", 400), ("after=1", 400), ("after=1.x", 400),
    ("limit=0", 422), ("limit=1001", 422), ("limit=x", 422),
])
def test_feed_bad_query_is_a_client_error(P, query, status):
    r = P.server.get("/v1/events?" + query)
    assert_problem(r, status)


# ---------------------------------------------------------------------------
# the whole trail still verifies (keep last in this file)
# ---------------------------------------------------------------------------
def test_verify_after_the_lifecycle_tests(arbiter_bin, db, P):
    cp = h.run_bin(arbiter_bin, ["verify"], database_url=db.service_url)
    assert cp.returncode == 0, f"arbiter verify: {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
