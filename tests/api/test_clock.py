"""Black-box tests of issue 11: deadlines decided by the clock, not by when
the scheduler gets there.

A deadline is enforced at its due_at by the database's clock: an action on a
case first applies every deadline of the case that is due (the same change
the scheduler writes: actor system, the same events and refund), then is
judged against the state that left. So a seller who answers after due_at
loses however far behind the scheduler is, and one whose whole request was
answered before due_at wins.

Where a request is in flight across due_at the instant of judgement is its
write's (clock_timestamp() inside the write), which lies between the moment
the client sent it and the moment it got the answer. The tests measure both
on the same host clock as PostgreSQL's and assert:
  - sent after due_at (+1 ms: due_at is shown to the ms, truncated) -> 409;
  - answered before due_at -> 200;
and only a request whose own round trip straddles due_at may go either way;
the widest such window is printed (a few ms).

Servers run tests/api/policy_fast.json (every deadline 2 s). Servers started
with ARBITER_SCHEDULER=false fire nothing: there the request path alone
enforces the clock, which makes "the scheduler is behind" certain.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

import helpers as h
from helpers import assert_problem
from test_sla import (FAST, Shop, counts, events, get_case, if_match, only_deadline,
                      shift_deadlines, slow_policy, verify_ok, wait_all_fired, rows)

NO_SCHEDULER = {"ARBITER_SCHEDULER": "false"}


def due_epoch(c: dict, name: str = "seller_response") -> float:
    return h.parse_time(only_deadline(c, name)["due_at"]).timestamp()


def sleep_until_epoch(t: float) -> None:
    d = t - time.time()
    if d > 0:
        time.sleep(d)


class Timed:
    """One request with the client's clock around it."""
    __slots__ = ("sent", "recv", "r")

    def __init__(self, fn):
        self.sent = time.time()
        self.r = fn()
        self.recv = time.time()


def check_deadline_passed(r: h.Response, deadline: str, due_at: str, state: str) -> dict:
    p = assert_problem(r, 409)
    assert p["type"] == "urn:arbiter:problem:deadline-passed", p
    assert p["state"] == state, p
    assert p["deadline"]["name"] == deadline and p["deadline"]["due_at"] == due_at, p
    assert due_at in p["detail"] and deadline in p["detail"], p
    return p


def expiry_events(ev: list[dict]) -> list[dict]:
    return [e for e in ev if e["action"].startswith("expire_") or e["action"] == "sla.breached"]


def check_fired_at_due(e: dict, due_at: str, noticed_by: str | None = None) -> None:
    d = e["data"]
    assert d["due_at"] == due_at, e
    assert h.parse_time(d["fired_at"]) >= h.parse_time(due_at), e
    assert h.parse_time(e["at"]) >= h.parse_time(due_at), e
    if noticed_by:
        assert d["noticed_by"] == noticed_by, e


# ---------------------------------------------------------------------------
# 1. the request path alone enforces the clock
# ---------------------------------------------------------------------------
def test_late_sellers_lose_with_no_scheduler_running(arbiter_bin, make_db, make_server):
    """Sellers answer 1 ms to 5 s after due_at to a service whose scheduler
    fires nothing: every one gets 409 deadline-passed, and the case is
    refunded by the system exactly once, the expiry written by the request."""
    db = make_db()
    s = make_server(db.service_url, name="clock-nosched", policy=FAST, env=NO_SCHEDULER)
    shop = Shop(db)
    offsets_ms = [1, 2, 5, 10, 50, 100, 300, 1000, 2500, 5000]
    cases = shop.create_many([s], len(offsets_ms), threads=len(offsets_ms))

    def answer(i):
        c = cases[i]
        sleep_until_epoch(due_epoch(c) + 0.001 + offsets_ms[i] / 1000)
        return Timed(lambda: shop.act(s, "seller", c["id"], "accept", 1))

    with cf.ThreadPoolExecutor(len(cases)) as ex:
        results = list(ex.map(answer, range(len(cases))))
    final = counts(db)
    for c, t in zip(cases, results):
        due_at = only_deadline(c, "seller_response")["due_at"]
        assert t.sent > due_epoch(c) + 0.001
        check_deadline_passed(t.r, "seller_response", due_at, "refund_pending")
        assert t.r.body["allowed_actions"] == [], t.r.body
        k = final[c["id"]]
        assert (k.state, k.version, k.expire, k.refund, k.accept, k.deadlines) == \
            ("refund_pending", 2, 1, 1, 0, 0), k
        ev = events(s, c["id"])
        assert [e["action"] for e in ev] == ["open", "expire_seller_response",
                                              "refund.instructed"], ev
        check_fired_at_due(ev[1], due_at, "request")
        assert ev[2]["actor"] == {"role": "system", "id": "sla"}, ev[2]
        assert ev[2]["data"]["reason"] == "seller_silent", ev[2]
        assert ev[2]["data"]["total_cents"] == c["decision"]["refund"]["total_cents"], ev[2]
    verify_ok(arbiter_bin, db)


def test_seller_answered_before_due_wins_with_no_scheduler(arbiter_bin, make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="clock-early", policy=FAST, env=NO_SCHEDULER)
    shop = Shop(db)
    c = shop.create(s)
    sleep_until_epoch(due_epoch(c) - 0.3)
    t = Timed(lambda: shop.act(s, "seller", c["id"], "accept", 1))
    assert t.recv < due_epoch(c), "the answer came too late to test an early seller"
    assert t.r.status == 200 and t.r.body["state"] == "refund_pending", t.r
    time.sleep(max(0.0, due_epoch(c) + 0.3 - time.time()))
    k = counts(db)[c["id"]]
    assert (k.accept, k.expire, k.refund, k.version) == (1, 0, 1, 2), k


def test_reads_show_an_overdue_deadline_as_it_will_be(arbiter_bin, make_db, make_server):
    """Between due_at and the write of its expiry a case reads as the
    expiry will leave it: the deadline says overdue, pending_expiry names
    the state it moves to, allowed_actions are that state's; the list shows
    the same. The first action then writes the expiry."""
    db = make_db()
    s = make_server(db.service_url, name="clock-read", policy=FAST, env=NO_SCHEDULER)
    shop = Shop(db)
    c = shop.create(s)
    d = only_deadline(c, "seller_response")
    assert d["overdue"] is False and "pending_expiry" not in c, c
    assert "accept" in c["allowed_actions"], c
    sleep_until_epoch(due_epoch(c) + 0.05)
    one = get_case(s, c["id"])
    assert one["state"] == "awaiting_seller" and one["version"] == 1, one
    assert only_deadline(one, "seller_response")["overdue"] is True, one
    assert one["pending_expiry"] == {"deadline": "seller_response",
                                     "to_state": "refund_pending"}, one
    assert "accept" not in one["allowed_actions"], one
    lst = s.get(f"/v1/cases?shop_id={shop.id}")
    assert lst.status == 200, lst
    [item] = [x for x in lst.body["items"] if x["id"] == c["id"]]
    for k in ("state", "pending_expiry", "allowed_actions", "deadlines"):
        assert item[k] == one[k], (k, item, one)
    # nothing was written by the reads
    assert [e["action"] for e in events(s, c["id"])] == ["open"]
    # an agent's note (allowed in either state) applies the expiry first,
    # then itself, with If-Match of the version read before the deadline
    assert "note" in one["allowed_actions"], one
    r = shop.act(s, "agent", c["id"], "note", 1, text="buyer called: still waiting")
    assert r.status == 200, r
    assert r.body["state"] == "refund_pending" and r.body["version"] == 3, r.body
    assert "pending_expiry" not in r.body and r.body["deadlines"] == [], r.body
    ev = events(s, c["id"])
    assert [e["action"] for e in ev] == ["open", "expire_seller_response",
                                          "refund.instructed", "note"], ev
    check_fired_at_due(ev[1], d["due_at"], "request")
    verify_ok(arbiter_bin, db)


def test_buyer_and_complaint_deadlines_follow_the_clock(arbiter_bin, make_db, make_server):
    """The buyer's reply to an offer after buyer_reply is due: 409, the case
    closed as expired. An agent's first response after the complaint's
    first-response deadline: the breach is recorded first, at due_at, and
    the acknowledgement (still allowed) follows it."""
    db = make_db()
    s = make_server(db.service_url, name="clock-buyer", policy=FAST, env=NO_SCHEDULER)
    shop = Shop(db)
    c = shop.create(s)
    r = shop.act(s, "seller", c["id"], "offer", 1, refund_cents=100)
    assert r.status == 200 and r.body["state"] == "awaiting_buyer_reply", r
    c = r.body
    due_at = only_deadline(c, "buyer_reply")["due_at"]
    sleep_until_epoch(due_epoch(c, "buyer_reply") + 0.002)
    r = shop.act(s, "buyer", c["id"], "accept_offer", c["version"])
    check_deadline_passed(r, "buyer_reply", due_at, "closed")
    k = counts(db)[c["id"]]
    assert (k.state, k.outcome, k.refund) == ("closed", "expired", 0), k
    check_fired_at_due(expiry_events(events(s, c["id"]))[0], due_at, "request")

    cc = shop.create(s, "complaint")
    due_at = only_deadline(cc, "complaint_first_response")["due_at"]
    sleep_until_epoch(due_epoch(cc, "complaint_first_response") + 0.002)
    r = shop.act(s, "senior_agent", cc["id"], "acknowledge", 1, message="sorry for the wait")
    assert r.status == 200 and r.body["state"] == "acknowledged", r
    ev = events(s, cc["id"])
    assert [e["action"] for e in ev] == ["open", "sla.breached", "acknowledge"], ev
    check_fired_at_due(ev[1], due_at, "request")
    assert ev[1]["data"]["escalated_to"] == "senior_agent", ev[1]
    verify_ok(arbiter_bin, db)


# ---------------------------------------------------------------------------
# 2. the race at the instant, with the scheduler on another replica
# ---------------------------------------------------------------------------
def test_racing_sellers_judged_by_the_clock_across_replicas(arbiter_bin, make_db, make_server,
                                                           tmp_path):
    """Sellers answer on replica B (no scheduler) from 300 ms before to
    300 ms after their deadlines, all due at one instant, while replica A's
    scheduler fires them: never both win, exactly one expiry or one accept
    per case, and the winner is the clock's."""
    db = make_db()
    shop = Shop(db)
    loader = make_server(db.service_url, name="clock-race-loader", policy=slow_policy(tmp_path))
    n = 60
    cases = shop.create_many([loader], n, threads=12)
    assert loader.stop() == 0
    a = make_server(db.service_url, name="clock-race-a", policy=FAST)
    b = make_server(db.service_url, name="clock-race-b", policy=FAST, env=NO_SCHEDULER)
    due, moved = shift_deadlines(db, 2.0)
    assert moved == n
    offsets = [-0.3 + 0.6 * i / (n - 1) for i in range(n)]

    def answer(i):
        sleep_until_epoch(due + offsets[i])
        return Timed(lambda: shop.act(b, "seller", cases[i]["id"], "accept", 1))

    with cf.ThreadPoolExecutor(n) as ex:
        results = list(ex.map(answer, range(n)))
    ids = {c["id"] for c in cases}
    wait_all_fired(db, ids, 60, servers=[a], stall=15)
    time.sleep(1.2)   # a poll cycle later: nothing fires twice
    final = counts(db)
    straddle, wins = [], {"seller": 0, "clock": 0}
    for c, t in zip(cases, results):
        k = final[c["id"]]
        assert k.state == "refund_pending" and k.version == 2 and k.deadlines == 0, k
        assert k.refund == 1 and k.accept + k.expire == 1, k
        if t.r.status == 200:
            wins["seller"] += 1
            assert k.accept == 1, (k, t.r)
        else:
            wins["clock"] += 1
            assert t.r.status == 409, t.r
            assert t.r.body["type"] == "urn:arbiter:problem:deadline-passed", t.r.body
            assert k.expire == 1, (k, t.r)
        if t.sent > due + 0.001:
            assert t.r.status == 409, ("sent after due_at but won", t.sent - due, t.r)
        elif t.recv < due:
            assert t.r.status == 200, ("answered before due_at but lost", due - t.recv, t.r)
        else:
            straddle.append((t.recv - t.sent) * 1000)
    noticed = rows(db, "SELECT data->>'noticed_by', count(*) FROM case_events"
                       " WHERE action = 'expire_seller_response' GROUP BY 1 ORDER BY 1;")
    print(f"\nclock race: {wins}; expiries noticed by {dict(noticed)}; "
          f"{len(straddle)} requests in flight across due_at, the widest "
          f"{max(straddle, default=0):.1f} ms")
    verify_ok(arbiter_bin, db)


# ---------------------------------------------------------------------------
# 3. a restart with thousands overdue
# ---------------------------------------------------------------------------
def test_restart_with_overdue_deadlines_judges_every_late_action(arbiter_bin, make_db,
                                                                 make_server, tmp_path):
    """2,000 refund cases come due while the service is stopped; the moment
    it is ready again 150 of their sellers answer at once, 1 ms to seconds
    after their deadlines, racing the start-up drain: every one loses with
    409, and every case is refunded by the system exactly once."""
    db = make_db()
    shop = Shop(db)
    loader = make_server(db.service_url, name="clock-restart-loader",
                         policy=slow_policy(tmp_path))
    n, late = 2000, 150
    cases = shop.create_many([loader], n, threads=16)
    due, moved = shift_deadlines(db, 1.0)
    assert moved == n
    assert loader.stop() == 0
    sleep_until_epoch(due + 0.01)
    s = make_server(db.service_url, name="clock-restart", policy=FAST)
    picked = cases[-late:]     # the last loaded: the drain reaches them last

    def answer(c):
        return Timed(lambda: shop.act(s, "seller", c["id"], "accept", 1))

    with cf.ThreadPoolExecutor(30) as ex:
        results = list(ex.map(answer, picked))
    for c, t in zip(picked, results):
        assert t.sent > due + 0.001
        p = assert_problem(t.r, 409)
        assert p["type"] == "urn:arbiter:problem:deadline-passed", p
        assert p["deadline"]["name"] == "seller_response", p
        # every deadline was moved to the one instant `due`
        assert abs(h.parse_time(p["deadline"]["due_at"]).timestamp() - due) < 0.0015, (p, due)
        check_deadline_passed(t.r, "seller_response", p["deadline"]["due_at"], "refund_pending")
    ids = {c["id"] for c in cases}
    final = wait_all_fired(db, ids, 120, servers=[s], stall=30)
    time.sleep(1.2)
    final = counts(db)
    for i in ids:
        k = final[i]
        assert (k.state, k.version, k.expire, k.refund, k.accept, k.deadlines) == \
            ("refund_pending", 2, 1, 1, 0, 0), k
    noticed = rows(db, "SELECT data->>'noticed_by', count(*) FROM case_events"
                       " WHERE action = 'expire_seller_response' GROUP BY 1 ORDER BY 1;")
    print(f"\nrestart: {late} late sellers all refused; expiries noticed by {dict(noticed)}")
    assert s.stop() == 0
    verify_ok(arbiter_bin, db)
