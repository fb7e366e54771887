"""A shop learns nothing about other shops (issue #27, item 4): the
cross-shop risk signals (the same text sent to other shops, the buyer's
cases everywhere) decide a case, but a key bound to shops reads only the
rule id, its result and "needs review" in every reply that carries a
decision: the create reply and its replay, the case, the list, the queues,
an action's reply, the case's events and the feed. A platform key (agent)
reads the same case with the counts and signals.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

import helpers as h

CROSS_RULES = ("R-RISK-MANY-CASES", "R-RISK-SAME-TEXT")
CROSS_SIGNALS = ("many_cases_7d", "same_text_other_shops")
# what the platform's reasons say, which a shop may not read
COUNT_PHRASES = ("other shops in 30 days", "cases by this buyer")


@pytest.fixture(scope="module")
def world(stable_server, db):
    """Shops S-1 and S-1b hold the buyer's cases with one canned text; S-2
    then gets a case from the same buyer with the same text, opened by a
    frontend key bound to S-2, and read by S-2's seller."""
    s = stable_server
    text = h.uniq("Arrived broken, want my money back now, canned text")
    buyer = h.uniq("buyer-everywhere")
    s1, s1b, s2 = h.uniq("redact-s1"), h.uniq("redact-s1b"), h.uniq("redact-s2")
    for shop in (s1, s1, s1b):
        h.create_case(s, h.case_body(shop_id=shop, buyer_id=buyer, description=text))
    _, front2 = db.make_key("frontend", shops=s2, name="s2-frontend")
    _, seller2 = db.make_key("seller", shops=s2, name="s2-seller")
    body = h.case_body(shop_id=s2, buyer_id=buyer, description=text)
    hdrs = {"Idempotency-Key": h.uniq("redact-create")}
    created = s.post("/v1/cases", body, key=front2, headers=hdrs)
    assert created.status == 201, created
    replay = s.post("/v1/cases", body, key=front2, headers=hdrs)
    assert replay.status == 201 and replay.headers.get("idempotent-replayed") == "true", replay
    return {"s": s, "db": db, "text": text, "buyer": buyer, "others": (s1, s1b), "s2": s2,
            "seller2": seller2, "front2": front2, "created": created, "replay": replay,
            "id": created.body["id"]}


def leaks(doc, others) -> list[str]:
    """What in a reply tells a shop about other shops' cases or the buyer's
    cases elsewhere: their shop ids, the counts in the cross-shop rules'
    reasons, the cross-shop signals."""
    text = json.dumps(doc)
    found = [f"shop id {o}" for o in others if o in text]
    found += [f"phrase {p!r}" for p in COUNT_PHRASES if p in text]
    found += [f"signal {sig}" for sig in CROSS_SIGNALS if f'"{sig}"' in text]

    def walk(v):
        if isinstance(v, dict):
            for r in v.get("rules") or []:
                if isinstance(r, dict) and r.get("id") in CROSS_RULES and \
                        re.search(r"\d", r.get("reason", "")):
                    found.append(f"{r['id']}: {r['reason']}")
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(doc)
    return found


def withheld(decision: dict) -> None:
    """The shop's view of a decision: both cross-shop rules there, fired,
    saying only that the case needs review; the case still went to manual
    review on them."""
    rules = {r["id"]: r for r in decision["rules"]}
    for rid in CROSS_RULES:
        assert rules[rid]["result"] == "fired", rules[rid]
        assert "needs review" in rules[rid]["reason"], rules[rid]
        assert "args" not in rules[rid], rules[rid]   # the counts themselves
    assert decision["outcome"] == "manual_review", decision


def decisions(doc) -> list[dict]:
    out = []
    if isinstance(doc, dict):
        if isinstance(doc.get("decision"), dict) and "rules" in doc["decision"]:
            out.append(doc["decision"])
        for v in doc.values():
            out += decisions(v)
    elif isinstance(doc, list):
        for v in doc:
            out += decisions(v)
    return out


def shop_reads(w) -> dict:
    """Every reply kind a shop's keys get that could carry the case's
    decision or other shops' figures, keyed by kind."""
    s, key, cid = w["s"], w["seller2"], w["id"]
    got = {"create": w["created"], "create replay": w["replay"]}
    got["case"] = s.get(f"/v1/cases/{cid}", key=key)
    got["list"] = s.get("/v1/cases?" + urllib.parse.urlencode({"buyer_id": w["buyer"]}), key=key)
    got["events"] = s.get(f"/v1/cases/{cid}/events", key=key)
    got["feed"] = s.get("/v1/events?limit=1000", key=key)
    got["queue"] = s.get("/v1/queues/manual_review?limit=500", key=key)
    got["stats"] = s.get("/v1/stats?" + urllib.parse.urlencode({"shop_id": w["s2"]}), key=key)
    got["sku flags"] = s.get("/v1/sku-flags", key=key)
    return got


def test_a_shop_reads_no_other_shop_figures_in_any_reply(world):
    got = shop_reads(world)
    for kind, r in got.items():
        assert r.status in (200, 201), (kind, r)
    leaked = {kind: leaks(r.body, world["others"]) for kind, r in got.items()}
    assert not any(leaked.values()), (sorted(k for k, v in leaked.items() if v), leaked)
    # the replies that carry the decision carry the shop's view of it
    for kind in ("create", "create replay", "case", "list", "events", "feed", "queue"):
        ds = decisions(got[kind].body)
        assert ds, (kind, got[kind].body)
        for d in ds:
            withheld(d)
    assert [c["id"] for c in got["list"].body["items"]] == [world["id"]], got["list"].body
    assert world["id"] in {c["id"] for c in got["queue"].body["items"]}, got["queue"].body
    assert {e["case_id"] for e in got["feed"].body["items"]} == {world["id"]}, got["feed"].body
    assert got["stats"].body["cases"]["total"] == 1, got["stats"].body


def test_an_action_reply_and_a_conflict_tell_a_shop_nothing_more(world):
    s, key, cid = world["s"], world["seller2"], world["id"]
    case = s.get(f"/v1/cases/{cid}", key=key)
    assert case.status == 200, case
    act = {"action": "offer", "refund_cents": 100}
    r = s.post(f"/v1/cases/{cid}/actions", act, key=key,
               headers={"If-Match": case.headers["etag"],
                        "Idempotency-Key": h.uniq("redact-offer")})
    assert r.status == 200, r
    assert not leaks(r.body, world["others"]), leaks(r.body, world["others"])
    withheld(r.body["decision"])
    stale = s.post(f"/v1/cases/{cid}/actions", act, key=key,
                   headers={"If-Match": case.headers["etag"]})
    assert stale.status in (409, 412), stale
    assert not leaks(stale.body, world["others"]), stale


def test_a_platform_key_reads_the_signals(world):
    s, cid = world["s"], world["id"]
    agent = world["db"].keys["agent"]
    for path in (f"/v1/cases/{cid}", f"/v1/cases/{cid}/events",
                 "/v1/cases?" + urllib.parse.urlencode({"buyer_id": world["buyer"],
                                                        "shop_id": world["s2"]})):
        r = s.get(path, key=agent)
        assert r.status == 200, (path, r)
        ds = decisions(r.body)
        assert ds, (path, r.body)
        for d in ds:
            rules = {x["id"]: x for x in d["rules"]}
            assert "2 other shops" in rules["R-RISK-SAME-TEXT"]["reason"], (path, rules)
            assert "4 cases by this buyer" in rules["R-RISK-MANY-CASES"]["reason"], (path, rules)
            assert rules["R-RISK-MANY-CASES"]["args"]["cases"] == 4, (path, rules)
            assert set(CROSS_SIGNALS) <= set(d["risk"]["signals"]), (path, d["risk"])
    # the audit chain holds what was decided, whatever a shop is shown
    stored = world["db"].admin_url
    raw = h.psql_value(stored, "SELECT data->'decision'->'risk'->>'signals' FROM case_events"
                               f" WHERE case_id = {h.quote_literal(cid)} AND seq = 1")
    assert all(sig in raw for sig in CROSS_SIGNALS), raw


def test_the_dry_run_withholds_the_same_way(world):
    s = world["s"]
    probe = h.case_body(shop_id=world["s2"], buyer_id=world["buyer"], description=world["text"])
    r = s.post("/v1/adjudications", probe, key=world["seller2"])
    assert r.status == 200, r
    assert not leaks(r.body, world["others"]), leaks(r.body, world["others"])
    withheld(r.body["decision"])


def test_a_shop_reads_only_its_own_policy_overrides(world):
    """GET /v1/policy: a key bound to shops sees the overrides of its shops
    only; the platform reads them all (deploy/policy/default.json gives S-60
    its own return window)."""
    s = world["s"]
    full = s.get("/v1/policy")
    assert full.status == 200, full
    assert "S-60" in full.body.get("shops", {}), full.body.get("shops")
    mine = s.get("/v1/policy", key=world["seller2"])
    assert mine.status == 200, mine
    assert mine.body["shops"] == {}, mine.body["shops"]
    assert mine.body["version"] == full.body["version"]
    assert {k: v for k, v in mine.body.items() if k != "shops"} == \
        {k: v for k, v in full.body.items() if k != "shops"}
    _, sixty = world["db"].make_key("seller", shops="S-60", name="s60-seller")
    own = s.get("/v1/policy", key=sixty)
    assert own.status == 200 and list(own.body["shops"]) == ["S-60"], own.body.get("shops")


def test_a_shop_gets_no_digest_of_the_data_it_does_not_see(world):
    """An event's digest is over the data as stored, other shops' counts
    included: given the rest of the event, a digest would let a shop test
    guesses of them. A shop's events and feed carry none; the server checks
    the chain for it; a platform key reads the digests."""
    s, key, cid = world["s"], world["seller2"], world["id"]
    ev = s.get(f"/v1/cases/{cid}/events", key=key).body["items"]
    feed = s.get("/v1/events?limit=1000", key=key).body["items"]
    assert ev and feed
    assert all(e["hash"] is None and e["prev_hash"] is None for e in ev), ev
    assert all(e["hash"] is None for e in feed), feed
    v = s.get(f"/v1/cases/{cid}/verify", key=key)
    assert v.status == 200 and v.body["intact"] is True, v
    full = s.get(f"/v1/cases/{cid}/events").body["items"]
    assert all(h.HEX64.match(e["hash"]) for e in full), full
