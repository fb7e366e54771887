"""Push webhooks (issue 24): subscriptions and their scope, Standard Webhooks
signatures checked by an independent implementation (Python's hmac), the
outbox surviving kill -9, per-case order, retries and dead letters, replay,
the SSRF guard, and a slow receiver not holding up another subscription.

Receivers are real HTTP servers on 127.0.0.1 started by the tests
(http.server in a thread); the servers allow that address explicitly
(ARBITER_WEBHOOK_ALLOW_HOSTS=127.0.0.1). Each test uses shops of its own,
and subscriptions bound to them, so tests sharing the module's database do
not see each other's events.
"""
import base64
import concurrent.futures as cf
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

import helpers as h
import promparse

ALLOW = {"ARBITER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
# the schedule in 1/100000: the whole of it (about 3 days) in under 3 s
FAST_RETRY = {"ARBITER_WEBHOOK_RETRY_SCALE": "0.00001"}
# every wait is longer under valgrind (make valgrind-test), none shorter
SLOW = 4 if h.VALGRIND else 1


class Receiver:
    """An HTTP receiver on 127.0.0.1. answer(rec) -> (status, headers) or
    status decides each reply; every request is recorded (headers, body, the
    status answered)."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda rec: 200)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                rec = {"headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "at": time.monotonic(), "path": self.path}
                got = outer.answer(rec)
                status, extra = (got, {}) if isinstance(got, int) else got
                rec["status"] = status
                with outer.cv:
                    outer.requests.append(rec)
                    outer.cv.notify_all()
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass   # a sender that gave up (its timeout) is not a failure here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout * SLOW
        with self.cv:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}; got {len(self.requests)} requests"
                self.cv.wait(min(left, 0.5))
            return list(self.requests)

    def acked(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def signed_by(secret: str, rec: dict) -> bool:
    """Standard Webhooks verification, written from the spec: HMAC-SHA256 of
    "id.timestamp.body" under the base64-decoded part after whsec_, any of
    the space-separated v1 signatures, a timestamp within 5 minutes."""
    hd = rec["headers"]
    key = base64.b64decode(secret.split("_", 1)[1])
    ts = int(hd["webhook-timestamp"])
    if abs(time.time() - ts) > 300:
        return False
    mac = hmac.new(key, f"{hd['webhook-id']}.{ts}.".encode() + rec["body"], hashlib.sha256)
    want = base64.b64encode(mac.digest()).decode()
    sigs = [s.split(",", 1) for s in hd["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, want) for v, sig in sigs)


def events_of(rec_list, case_id=None):
    out = []
    for r in rec_list:
        p = json.loads(r["body"])
        if p["type"] == "webhook.ping":
            continue
        if case_id is None or p["data"]["case_id"] == case_id:
            out.append((r, p))
    return out


@pytest.fixture(scope="module")
def wdb(make_db):
    return make_db(migrate=True)


@pytest.fixture(scope="module")
def wserver(arbiter_bin, wdb, log_dir):
    s = h.Server(arbiter_bin, wdb.service_url, log_dir, name="webhooks",
                 policy=h.DEFAULT_POLICY, env={**ALLOW, **FAST_RETRY})
    s.start()
    yield s
    assert s.stop() == 0, s.log_tail()


def subscribe(server, key, url, **body):
    r = server.post("/v1/webhooks", {"url": url, **body}, key=key)
    assert r.status == 201, r
    assert r.body["secret"].startswith("whsec_")
    assert len(base64.b64decode(r.body["secret"][6:])) >= 24
    assert r.headers["location"] == f"/v1/webhooks/{r.body['id']}"
    return r.body


def ops_events(server, key, sub_id) -> list[dict]:
    r = server.get(f"/v1/webhooks/{sub_id}/events?limit=200", key=key)
    assert r.status == 200, r
    return r.body["items"]


def test_subscriptions_scope_and_validation(wserver, wdb):
    s1, s2 = h.uniq("S1"), h.uniq("S2")
    _, k1 = wdb.make_key("seller", shops=s1)
    _, k2 = wdb.make_key("seller", shops=s2)
    admin = wdb.keys["admin"]
    rx = Receiver()
    try:
        sub = subscribe(wserver, k1, rx.url, event_types=["case.*"], description="shop frontend")
        assert sub["shop_id"] == s1 and sub["enabled"] is True
        assert sub["event_types"] == ["case.*"]
        # shown once: never again
        got = wserver.get(f"/v1/webhooks/{sub['id']}", key=k1)
        assert got.status == 200 and "secret" not in got.body
        assert got.body["url"] == rx.url
        # another shop's seller: as if it did not exist, for every verb
        for method, path, body in [("GET", "", None), ("PATCH", "", {"enabled": False}),
                                   ("DELETE", "", None), ("POST", "/ping", None),
                                   ("POST", "/rotate-secret", None),
                                   ("GET", "/deliveries", None), ("GET", "/events", None)]:
            r = wserver.request(method, f"/v1/webhooks/{sub['id']}{path}", body, key=k2)
            assert r.status == 404, (method, path, r)
        assert all(x["id"] != sub["id"] for x in
                   wserver.get("/v1/webhooks", key=k2).body["items"])
        # a seller cannot subscribe to another shop
        r = wserver.post("/v1/webhooks", {"url": rx.url, "shop_id": s1}, key=k2)
        assert r.status == 422 and r.body["errors"][0]["pointer"] == "/shop_id", r
        # the platform sees it
        assert wserver.get(f"/v1/webhooks/{sub['id']}", key=admin).status == 200
        lst = wserver.get("/v1/webhooks?limit=200", key=admin).body
        assert sub["id"] in [x["id"] for x in lst["items"]]
        # change it
        r = wserver.request("PATCH", f"/v1/webhooks/{sub['id']}",
                            {"event_types": ["case.accept", "case.refund.*"], "enabled": False},
                            key=k1)
        assert r.status == 200, r
        assert r.body["event_types"] == ["case.accept", "case.refund.*"]
        assert r.body["enabled"] is False and r.body["disabled_reason"]
        # bad input: a problem naming the field
        for body, pointer in [({"url": "ftp://127.0.0.1/x"}, "/url"),
                              ({"url": "not a url"}, "/url"),
                              ({"url": "http://example.com/hook"}, "/url"),
                              ({"url": rx.url, "event_types": ["Case.*"]}, "/event_types/0"),
                              ({"url": rx.url, "event_types": []}, "/event_types"),
                              ({"url": rx.url, "colour": "red"}, "/colour"),
                              ({}, "/url")]:
            r = wserver.post("/v1/webhooks", body, key=k1)
            assert r.status == 422, (body, r)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert pointer in [e["pointer"] for e in r.body["errors"]], (body, r.body)
        r = wserver.request("DELETE", f"/v1/webhooks/{sub['id']}", key=k1)
        assert r.status == 204, r
        assert wserver.get(f"/v1/webhooks/{sub['id']}", key=k1).status == 404
    finally:
        rx.close()


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data",   # the cloud metadata address
    "https://10.0.0.7/hook", "https://192.168.1.1/hook", "https://172.16.5.4/hook",
    "https://[::1]/hook", "https://[fe80::1]/hook", "https://[fd00::5]/hook",
    "https://127.0.0.2/hook",                      # loopback, but not the listed address
    "https://0.0.0.0/hook",
])
def test_ssrf_targets_refused_on_create(wserver, wdb, url):
    r = wserver.post("/v1/webhooks", {"url": url, "shop_id": h.uniq("S")}, key=wdb.keys["admin"])
    assert r.status == 422, r
    assert r.body["type"].endswith("invalid-webhook-url"), r.body
    assert r.body["errors"][0]["pointer"] == "/url"


def test_ssrf_rechecked_at_connect(wserver, wdb):
    """A subscription whose host now points somewhere refused (written past
    the API's check, as DNS rebinding would make it) is refused by the
    worker at connect time: nothing is sent."""
    shop = h.uniq("SR")
    rx = Receiver()
    sub = subscribe(wserver, wdb.keys["admin"], rx.url, shop_id=shop)
    rx.close()
    h.psql(wdb.admin_url, "UPDATE webhook_subscriptions SET url = 'http://127.0.0.2:9/hook'"
           f" WHERE id = {h.quote_literal(sub['id'])}")
    h.create_case(wserver, shop_id=shop)
    deadline = time.monotonic() + 15 * SLOW
    while True:
        items = wserver.get(f"/v1/webhooks/{sub['id']}/deliveries",
                            key=wdb.keys["admin"]).body["items"]
        if items and items[-1]["attempts"] >= 1:
            break
        assert time.monotonic() < deadline, items
        time.sleep(0.2)
    assert "SSRF" in items[-1]["last_error"] and items[-1]["last_status"] is None, items[-1]
    m = promparse.parse(wserver.get("/metrics", key=wdb.keys["ops"]).raw)
    assert promparse.value(m, "arbiter_webhook_attempts_total", {"outcome": "refused"}) >= 1


def test_signatures_verify_independently_also_during_rotation(wserver, wdb):
    shop = h.uniq("SIG")
    rx = Receiver()
    try:
        sub = subscribe(wserver, wdb.keys["admin"], rx.url, shop_id=shop)
        case = h.create_case(wserver, shop_id=shop)
        rx.wait(lambda rs: len(events_of(rs)) >= 1, 15, "the opening event")
        rec, p = events_of(rx.requests)[0]
        assert signed_by(sub["secret"], rec)
        # a wrong secret fails: the check is not vacuous
        assert not signed_by("whsec_" + base64.b64encode(b"x" * 32).decode(), rec)
        tampered = dict(rec, body=rec["body"].replace(b"}", b" }", 1))
        assert not signed_by(sub["secret"], tampered)
        d = p["data"]
        assert p["type"] == "case." + d["action"]
        assert d["case_id"] == case["id"] and d["shop_id"] == shop
        assert d["seq"] == 1 and d["case_version"] >= 1
        assert rec["headers"]["webhook-id"] == d["event_id"]
        assert rec["headers"]["content-type"] == "application/json"

        # rotate: both keys sign during the overlap
        r = wserver.post(f"/v1/webhooks/{sub['id']}/rotate-secret", key=wdb.keys["admin"])
        assert r.status == 200, r
        new = r.body["secret"]
        assert new != sub["secret"] and r.body["previous_secret_until"]
        n = len(rx.requests)
        r = wserver.post(f"/v1/webhooks/{sub['id']}/ping", key=wdb.keys["admin"])
        assert r.status == 202 and r.body["type"] == "webhook.ping", r
        rx.wait(lambda rs: len(rs) > n, 15, "the ping")
        ping = rx.requests[n]
        assert json.loads(ping["body"])["type"] == "webhook.ping"
        assert len(ping["headers"]["webhook-signature"].split(" ")) == 2
        assert signed_by(new, ping) and signed_by(sub["secret"], ping)
        # the old key alone, once its overlap is over
        h.psql(wdb.admin_url, "UPDATE webhook_subscriptions SET prev_secret_until = now()"
               f" WHERE id = {h.quote_literal(sub['id'])}")
        n = len(rx.requests)
        assert wserver.post(f"/v1/webhooks/{sub['id']}/ping", key=wdb.keys["admin"]).status == 202
        rx.wait(lambda rs: len(rs) > n, 15, "the second ping")
        assert signed_by(new, rx.requests[n]) and not signed_by(sub["secret"], rx.requests[n])
    finally:
        rx.close()


def test_seller_s2_never_receives_s1_events(wserver, wdb):
    s1, s2 = h.uniq("S1"), h.uniq("S2")
    _, k1 = wdb.make_key("seller", shops=s1)
    _, k2 = wdb.make_key("seller", shops=s2)
    r1, r2 = Receiver(), Receiver()
    try:
        subscribe(wserver, k1, r1.url)
        subscribe(wserver, k2, r2.url)
        c1 = [h.create_case(wserver, shop_id=s1)["id"] for _ in range(3)]
        c2 = [h.create_case(wserver, shop_id=s2)["id"] for _ in range(2)]
        r1.wait(lambda rs: {p["data"]["case_id"] for _, p in events_of(rs)} >= set(c1), 15, "S-1's")
        r2.wait(lambda rs: {p["data"]["case_id"] for _, p in events_of(rs)} >= set(c2), 15, "S-2's")
        # the last of them had time to arrive anywhere
        time.sleep(1)
        assert {p["data"]["shop_id"] for _, p in events_of(r1.requests)} == {s1}
        assert {p["data"]["shop_id"] for _, p in events_of(r2.requests)} == {s2}
    finally:
        r1.close()
        r2.close()


def test_hanging_receiver_does_not_hold_up_another_subscription(wserver, wdb):
    slow_shop, fast_shop = h.uniq("SLOW"), h.uniq("FAST")
    release = threading.Event()
    slow = Receiver(lambda rec: (release.wait(30), 200)[1])
    fast = Receiver()
    admin = wdb.keys["admin"]
    try:
        subscribe(wserver, admin, slow.url, shop_id=slow_shop)
        subscribe(wserver, admin, fast.url, shop_id=fast_shop)
        # more cases than the worker sends to one subscription at once
        for _ in range(12):
            h.create_case(wserver, shop_id=slow_shop)
        t0 = time.monotonic()
        fast_case = h.create_case(wserver, shop_id=fast_shop)["id"]
        fast.wait(lambda rs: any(p["data"]["case_id"] == fast_case for _, p in events_of(rs)),
                  8, "the fast subscription's event while the slow one hangs")
        assert not release.is_set()
        print(f"\nfast receiver served {time.monotonic() - t0:.2f}s after its case while the"
              " slow one hung")
    finally:
        release.set()
        slow.close()
        fast.close()


DEAD_STORED = "SELECT count(*) FROM webhook_deliveries WHERE state = 'dead'"


DEAD_COUNTED = "SELECT coalesce(sum(n), 0) FROM webhook_dead_counts"


def dead_gauge_settles(server, db, truth: str = DEAD_STORED) -> int:
    """Waits for arbiter_webhook_dead_letters (refreshed every 5 s) to equal
    truth, read anew each time (other tests' closed receivers may still be
    killing deliveries); returns that number."""
    deadline = time.monotonic() + 15 * SLOW
    while True:
        want = int(h.psql_value(db.admin_url, truth))
        m = promparse.parse(server.get("/metrics", key=db.keys["ops"]).raw)
        got = promparse.value(m, "arbiter_webhook_dead_letters")
        if got == want:
            return want
        assert time.monotonic() < deadline, f"gauge {got}, {want} by {truth}"
        time.sleep(0.3)


def test_dead_letter_then_replay_through_the_api(wserver, wdb):
    shop = h.uniq("DL")
    admin = wdb.keys["admin"]
    mode = {"status": 500}
    rx = Receiver(lambda rec: mode["status"])
    try:
        sub = subscribe(wserver, admin, rx.url, shop_id=shop)
        case = h.create_case(wserver, shop_id=shop)["id"]
        path = f"/v1/webhooks/{sub['id']}/deliveries"
        deadline = time.monotonic() + 30 * SLOW
        while True:
            dead = wserver.get(path + "?state=dead", key=admin).body["items"]
            if dead:
                break
            assert time.monotonic() < deadline, wserver.get(path, key=admin).body
            time.sleep(0.3)
        d = dead[0]
        assert d["attempts"] == 10 and d["last_status"] == 500 and d["state"] == "dead"
        assert d["last_error"].startswith("HTTP 500") and d["last_latency_ms"] is not None
        assert d["case_id"] == case and d["replayed"] is False
        ids = {r["headers"]["webhook-id"] for r in rx.requests if
               json.loads(r["body"])["data"]["seq"] == d["seq"]}
        assert ids == {d["webhook_id"]}, "every retry carries the same webhook-id"
        m = promparse.parse(wserver.get("/metrics", key=wdb.keys["ops"]).raw)
        assert promparse.value(m, "arbiter_webhook_dead_letters_total") >= 1
        assert dead_gauge_settles(wserver, wdb) >= 1
        assert "webhook.delivery.exhausted" in wserver.log_tail(400)
        # and stored, with the delivery that died, for whoever sees the subscription
        ev = ops_events(wserver, admin, sub["id"])
        ex = [e for e in ev if e["type"] == "webhook.delivery.exhausted"]
        assert len(ex) == 1, ev
        assert ex[0]["delivery_id"] == d["id"] and ex[0]["webhook_id"] == d["webhook_id"]
        assert ex[0]["webhook_id"] == f"evt_{d['webhook_id'][4:]}" and ex[0]["case_id"] == case
        assert ex[0]["event_type"] == d["type"] and ex[0]["attempts"] == 10
        assert ex[0]["last_status"] == 500 and ex[0]["detail"].startswith("HTTP 500")
        _, other = wdb.make_key("seller", shops=h.uniq("DLX"))
        assert wserver.get(f"/v1/webhooks/{sub['id']}/events", key=other).status == 404
        r = wserver.get(f"/v1/webhooks/{sub['id']}/events?after=x", key=admin)
        assert r.status == 422 and r.body["errors"][0]["pointer"] == "/query/after", r

        # the receiver is fixed: replay the dead one
        mode["status"] = 204
        n = len(rx.requests)
        r = wserver.post(f"{path}/{d['id']}/replay", key=admin)
        assert r.status == 202 and r.body["replay_of"] == d["id"], r
        rx.wait(lambda rs: any(200 <= x["status"] < 300 for x in rs[n:]), 15, "the replay")
        again = [x for x in rx.requests[n:] if 200 <= x["status"] < 300][0]
        assert again["headers"]["webhook-id"] == d["webhook_id"]
        # the dead letter now says it was sent again (the ops page hides it)
        dl = {x["id"]: x for x in wserver.get(path + "?state=dead", key=admin).body["items"]}
        assert dl[d["id"]]["replayed"] is True, dl
        assert signed_by(sub["secret"], again)
        # every delivery since a time, again
        since = "2000-01-01T00:00:00Z"
        r = wserver.post(f"/v1/webhooks/{sub['id']}/replay?since={since}", key=admin)
        assert r.status == 202 and r.body["replayed"] >= 1, r
        r = wserver.post(f"/v1/webhooks/{sub['id']}/replay?since=yesterday", key=admin)
        assert r.status == 422 and r.body["errors"][0]["pointer"] == "/query/since", r
        r = wserver.post(f"{path}/999999999/replay", key=admin)
        assert r.status == 404, r
    finally:
        rx.close()


def test_the_dead_letter_count_follows_every_change_and_the_backfill(wserver, wdb):
    """sql/031 keeps the dead letters per subscription by trigger, whoever
    writes: a dead row inserted, set to another state or deleted by hand
    moves the count, and the backfill rebuilds emptied counts from the rows.
    The gauge sums the counts, so it must equal the dead rows stored."""
    sub = subscribe(wserver, wdb.keys["admin"], "http://127.0.0.1:9/", shop_id=h.uniq("DC"))["id"]
    url = wdb.admin_url

    def count() -> int:
        return int(h.psql_value(url, "SELECT coalesce((SELECT n FROM webhook_dead_counts"
                                     f" WHERE sub_id = '{sub}'), 0)"))

    ids = h.psql_value(url, "WITH i AS (INSERT INTO webhook_deliveries (sub_id, kind, type, state)"
                            f" SELECT '{sub}', 'ping', 'webhook.ping', 'dead'"
                            " FROM generate_series(1, 3) RETURNING id)"
                            " SELECT string_agg(id::text, ',' ORDER BY id) FROM i").split(",")
    assert count() == 3
    h.psql(url, f"UPDATE webhook_deliveries SET state = 'skipped' WHERE id = {ids[0]}")
    h.psql(url, f"UPDATE webhook_deliveries SET attempts = 11 WHERE id = {ids[1]}")
    assert count() == 2, "a change of state away from dead counts, another change does not"
    h.psql(url, f"DELETE FROM webhook_deliveries WHERE id = {ids[2]}")
    assert count() == 1
    h.psql(url, f"UPDATE webhook_deliveries SET state = 'dead' WHERE id = {ids[0]}")
    assert count() == 2
    assert dead_gauge_settles(wserver, wdb) >= 2

    # the gauge is the counts' sum, not a count of the rows
    h.psql(url, "DELETE FROM webhook_dead_counts")
    assert dead_gauge_settles(wserver, wdb, DEAD_COUNTED) < int(h.psql_value(url, DEAD_STORED))
    rebuilt = int(h.psql_value(url, "SELECT arbiter_webhook_dead_backfill()"))
    assert rebuilt >= 2 and count() == 2
    assert dead_gauge_settles(wserver, wdb) >= rebuilt


def test_410_disables_and_reenabling_resumes(wserver, wdb):
    shop = h.uniq("GONE")
    admin = wdb.keys["admin"]
    mode = {"status": 410}
    rx = Receiver(lambda rec: mode["status"])
    try:
        sub = subscribe(wserver, admin, rx.url, shop_id=shop)
        h.create_case(wserver, shop_id=shop)
        rx.wait(lambda rs: len(rs) >= 1, 15, "the first attempt")
        deadline = time.monotonic() + 10 * SLOW
        while wserver.get(f"/v1/webhooks/{sub['id']}", key=admin).body["enabled"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        got = wserver.get(f"/v1/webhooks/{sub['id']}", key=admin).body
        assert "410" in got["disabled_reason"]
        ev = ops_events(wserver, admin, sub["id"])
        assert [e["type"] for e in ev] == ["webhook.subscription.disabled"], ev
        assert ev[0]["detail"] == got["disabled_reason"]
        # written while it is disabled: kept for it (its feed position
        # does not move), sent once it is enabled again
        later = h.create_case(wserver, shop_id=shop)["id"]
        time.sleep(1)
        assert len(rx.requests) == 1, "nothing more is sent to a disabled subscription"
        mode["status"] = 200
        r = wserver.request("PATCH", f"/v1/webhooks/{sub['id']}", {"enabled": True}, key=admin)
        assert r.status == 200 and r.body["disabled_reason"] is None, r
        first = rx.requests[0]["headers"]["webhook-id"]
        rx.wait(lambda rs: any(x["status"] == 200 and x["headers"]["webhook-id"] == first
                               for x in rs), 15, "the delivery resumed")
        rx.wait(lambda rs: events_of(rs, later), 15, "the event written while it was disabled")
        ev = ops_events(wserver, admin, sub["id"])
        assert [e["type"] for e in ev] == ["webhook.subscription.enabled",
                                           "webhook.subscription.disabled"], ev
        assert ev[0]["detail"] == f"enabled by key {wdb.key_ids['admin']}", ev
        # keyset pages, newest first
        p1 = wserver.get(f"/v1/webhooks/{sub['id']}/events?limit=1", key=admin).body
        assert p1["items"] == ev[:1] and p1["next"] == ev[0]["id"], p1
        p2 = wserver.get(f"/v1/webhooks/{sub['id']}/events?limit=1&after={p1['next']}",
                         key=admin).body
        assert p2["items"] == ev[1:] and p2["next"] is None, p2
    finally:
        rx.close()


# What the subscriptions have not received yet: their pending deliveries,
# and the events after their positions in the feed that the worker has
# not queued yet (sql/029).
UNDELIVERED = """
SELECT coalesce(sum((SELECT count(*) FROM case_events e
                      WHERE (s.shop_id IS NULL OR e.shop_id = s.shop_id)
                        AND (e.xid, e.id) > (s.feed_xid, s.feed_id)
                        AND arbiter_webhook_wants(s.event_types, 'case.' || e.action))
                  + (SELECT count(*) FROM webhook_deliveries d
                      WHERE d.sub_id = s.id AND d.state = 'pending')), 0)
  FROM webhook_subscriptions s WHERE NOT s.deleted"""


# Deliveries pending at the kill -9 (make test runs fewer, make webhook-kill
# the 10 000: ARBITER_TEST_WEBHOOK_KILL_DELIVERIES).
KILL_DELIVERIES = int(os.environ.get("ARBITER_TEST_WEBHOOK_KILL_DELIVERIES", "2000"))
KILL_SUBS = 4          # subscriptions of the shop: each event is one delivery to each
KILL_PER_CASE = 5      # events per case: the opening and four notes


@pytest.mark.own_servers
def test_kill9_with_pending_deliveries_loses_nothing_and_keeps_case_order(
        arbiter_bin, make_db, log_dir):
    """KILL_DELIVERIES deliveries pending (cases of five events, four
    subscriptions), a receiver answering 500 to about half the attempts
    (by a hash of subscription, webhook-id and attempt; never to a
    fourth, so none runs out of retries), kill -9 of the service while it
    delivers: after a restart every event reaches every subscription at
    least once, each case's in seq order among the 2xx-acknowledged ones,
    and a repeated event carries the same webhook-id."""
    want_n = 200 if h.VALGRIND else KILL_DELIVERIES
    n_cases = -(-want_n // (KILL_SUBS * KILL_PER_CASE))
    db = make_db(migrate=True)
    # the fast schedule; a short lease so that what the killed process had
    # in flight comes back soon
    env = {**ALLOW, **FAST_RETRY, "ARBITER_WEBHOOK_LEASE": "15"}
    # the events are written with no worker running, so that all of them
    # are pending when the delivering service starts
    writer = h.Server(arbiter_bin, db.service_url, log_dir, name="webhooks-kill-writer",
                      policy=h.DEFAULT_POLICY, env={**env, "ARBITER_WEBHOOK_WORKER": "false"})
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="webhooks-kill",
                 policy=h.DEFAULT_POLICY, env=env)
    lock = threading.Lock()
    attempts: dict[tuple, int] = {}
    acked: set[tuple] = set()           # (subscription path, case, seq)
    by_id: dict[str, set] = {}          # webhook-id -> {(case, seq)}
    order: dict[tuple, list[int]] = {}  # (path, case) -> seqs in first-ack order
    stats = {"requests": 0, "failed": 0}

    def answer(rec):
        wid, path = rec["headers"]["webhook-id"], rec["path"]
        p = json.loads(rec["body"])["data"]
        with lock:
            n = attempts.get((path, wid), 0)
            attempts[(path, wid)] = n + 1
            fail = n < 3 and hashlib.sha256(f"{path}|{wid}|{n}".encode()).digest()[0] & 1
            stats["requests"] += 1
            by_id.setdefault(wid, set()).add((p["case_id"], p["seq"]))
            if fail:
                stats["failed"] += 1
                return 500
            if (path, p["case_id"], p["seq"]) not in acked:
                acked.add((path, p["case_id"], p["seq"]))
                order.setdefault((path, p["case_id"]), []).append(p["seq"])
        return 200

    rx = Receiver(answer)
    shop = h.uniq("KILL")
    admin = db.keys["admin"]
    try:
        writer.start()
        paths = [f"/hook/{i}" for i in range(KILL_SUBS)]
        for path in paths:
            subscribe(writer, admin, rx.url.replace("/hook", path), shop_id=shop)

        def one_case(_):
            c = h.create_case(writer, shop_id=shop)
            etag = f'"{c["version"]}"'
            for _ in range(KILL_PER_CASE - 1):
                r = writer.post(f"/v1/cases/{c['id']}/actions", {"action": "note", "text": "ok"},
                                headers={"If-Match": etag}, key=db.keys["agent"])
                assert r.status == 200, r
                etag = r.headers["etag"]
            return c["id"]

        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(8) as ex:
            cases = list(ex.map(one_case, range(n_cases)))
        t_write = time.monotonic() - t0
        assert writer.stop() == 0, writer.log_tail()
        # what was written (a case may get an event of the service's own)
        expected = set()
        for row in h.psql(db.admin_url, "SELECT case_id, seq FROM case_events WHERE shop_id = "
                          + h.quote_literal(shop), check=True).stdout.split("\n"):
            if "|" in row:
                cid, seq = row.split("|")
                expected.update((pa, cid, int(seq)) for pa in paths)
        assert {c for _, c, _ in expected} == set(cases)
        total = len(expected)
        pending = int(h.psql_value(db.admin_url, UNDELIVERED))
        assert pending == total >= want_n, (pending, total)

        t0 = time.monotonic()
        s.start()
        # generous bounds (this is not a timing test): a minute and 20 ms a delivery
        bound = (60 + total / 50) * SLOW
        deadline = time.monotonic() + bound
        while len(acked) < total // 4:
            assert time.monotonic() < deadline, f"{len(acked)} of {total} acknowledged"
            time.sleep(0.05)
        s.kill9()
        left = int(h.psql_value(db.admin_url, UNDELIVERED))
        assert left > 0, "the kill must find deliveries pending"
        s.start()
        deadline = time.monotonic() + bound
        while len(acked) < total:
            assert time.monotonic() < deadline, f"{len(acked)} of {total} acknowledged"
            time.sleep(0.2)
        t_deliver = time.monotonic() - t0
        with lock:
            # every event at every subscription: none lost
            assert acked == expected
            # duplicates carry the same webhook-id: one id, one event
            assert all(len(v) == 1 for v in by_id.values())
            assert len(by_id) == total // KILL_SUBS
            for key, seqs in order.items():
                assert seqs == sorted(seqs), (key, seqs)
            dup = stats["requests"] - stats["failed"] - total
        assert int(h.psql_value(db.admin_url, "SELECT count(*) FROM webhook_deliveries"
                                " WHERE state = 'dead'")) == 0
        print(f"\nkill -9: {total} deliveries ({len(cases)} cases, {total // KILL_SUBS} events,"
              f" {KILL_SUBS} subscriptions) written in {t_write:.1f} s, {left} pending at the kill;"
              f" {stats['requests']} requests ({stats['failed']} answered 500, {dup} repeats of an"
              f" acknowledged one), all delivered in case order {t_deliver:.1f} s after the start")
        assert s.stop() == 0, s.log_tail()
    finally:
        rx.close()
        for srv in (writer, s):
            if srv.alive():
                srv.stop()


def test_a_waiting_delivery_left_without_a_head_is_moved_up(wserver, wdb):
    """A delivery queued behind one that was finished before its event's
    transaction committed waits with no head before it; the worker's sweep
    moves it up (made here by hand: such a row, and nothing else queued)."""
    shop = h.uniq("SW")
    rx = Receiver()
    try:
        # the case's events come before the subscription: none is queued
        case = h.create_case(wserver, shop_id=shop)["id"]
        sub = subscribe(wserver, wdb.keys["admin"], rx.url, shop_id=shop)
        h.psql(wdb.admin_url,
               "INSERT INTO webhook_deliveries (sub_id, event_id, case_id, seq, case_version, type,"
               " next_at) SELECT " + h.quote_literal(sub["id"]) + ", e.id, e.case_id, e.seq, 1,"
               " 'case.' || e.action, 'infinity' FROM case_events e WHERE e.case_id = "
               + h.quote_literal(case) + " AND e.seq = 1")
        got = rx.wait(lambda rs: len(rs) >= 1, 20, "the swept delivery")
        assert json.loads(got[0]["body"])["data"]["case_id"] == case
        assert signed_by(sub["secret"], got[0])
    finally:
        rx.close()


def test_redirect_not_followed_and_retry_after_honoured(wserver, wdb):
    """A 3xx is a failure (the Location is never fetched); a 503 with
    Retry-After puts the next attempt that far out, whatever the (scaled)
    schedule says."""
    admin = wdb.keys["admin"]
    hop = Receiver()
    redirect = Receiver(lambda rec: (302, {"Location": hop.url}))
    busy = Receiver(lambda rec: (503, {"Retry-After": "3600"}))
    try:
        for rx in (redirect, busy):
            shop = h.uniq("RA")
            sub = subscribe(wserver, admin, rx.url, shop_id=shop)
            h.create_case(wserver, shop_id=shop)
            rx.wait(lambda rs: len(rs) >= 1, 15, "the first attempt")
            path = f"/v1/webhooks/{sub['id']}/deliveries"
            deadline = time.monotonic() + 10 * SLOW
            while True:
                d = wserver.get(path, key=admin).body["items"][-1]
                if d["attempts"] >= 1:
                    break
                assert time.monotonic() < deadline, d
                time.sleep(0.2)
            assert d["state"] == "pending", d
            if rx is redirect:
                assert d["last_status"] == 302 and d["last_error"].startswith("HTTP 302"), d
            else:
                assert d["last_status"] == 503, d
                wait = h.parse_time(d["next_attempt_at"]) - h.parse_time(d["last_attempt_at"])
                assert wait.total_seconds() > 3500, d
        time.sleep(0.5)
        assert hop.requests == [], "a redirect is never followed"
        assert len(busy.requests) == 1
    finally:
        for rx in (hop, redirect, busy):
            rx.close()


@pytest.mark.own_servers
def test_a_subscription_failing_everything_is_disabled_and_resumes(arbiter_bin, make_db, log_dir):
    """Every attempt failing for ARBITER_WEBHOOK_DISABLE_AFTER (5 days; 2 s
    here) disables the subscription, with an event and a metric;
    re-enabling resumes where it stopped."""
    db = make_db(migrate=True)
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="webhooks-failing",
                 policy=h.DEFAULT_POLICY,
                 env={**ALLOW, **FAST_RETRY, "ARBITER_WEBHOOK_DISABLE_AFTER": "2"})
    s.start()
    mode = {"status": 500}
    rx = Receiver(lambda rec: mode["status"])
    admin, shop = db.keys["admin"], h.uniq("FAIL")
    try:
        sub = subscribe(s, admin, rx.url, shop_id=shop)
        deadline = time.monotonic() + 30 * SLOW
        while s.get(f"/v1/webhooks/{sub['id']}", key=admin).body["enabled"]:
            assert time.monotonic() < deadline, "never disabled"
            h.create_case(s, shop_id=shop)   # events keep failing
            time.sleep(0.3)
        got = s.get(f"/v1/webhooks/{sub['id']}", key=admin).body
        assert got["disabled_reason"].startswith("every delivery failed since"), got
        assert all(r["status"] == 500 for r in rx.requests)
        m = promparse.parse(s.get("/metrics", key=db.keys["ops"]).raw)
        assert promparse.value(m, "arbiter_webhook_subscriptions_disabled_total",
                               {"reason": "failing"}) == 1
        assert "webhook.subscription.disabled" in s.log_tail(400)
        ev = [e for e in ops_events(s, admin, sub["id"])
              if e["type"] == "webhook.subscription.disabled"]
        assert len(ev) == 1 and ev[0]["detail"] == got["disabled_reason"], ev
        pending = [d for d in s.get(f"/v1/webhooks/{sub['id']}/deliveries?state=pending&limit=200",
                                    key=admin).body["items"]]
        assert pending, "something was still to send when it was disabled"
        mode["status"] = 200
        r = s.request("PATCH", f"/v1/webhooks/{sub['id']}", {"enabled": True}, key=admin)
        assert r.status == 200 and r.body["enabled"] and r.body["disabled_reason"] is None, r
        want = {(d["case_id"], d["seq"]) for d in pending}
        rx.wait(lambda rs: want <= {(json.loads(x["body"])["data"]["case_id"],
                                      json.loads(x["body"])["data"]["seq"])
                                     for x in rs if x["status"] == 200}, 20, "the resumed queue")
        assert s.stop() == 0, s.log_tail()
    finally:
        rx.close()
        if s.alive():
            s.stop()


def test_events_queued_before_event_types_were_narrowed_are_skipped(wserver, wdb):
    admin, shop = wdb.keys["admin"], h.uniq("NARROW")
    release, arrived = threading.Event(), threading.Event()
    rx = Receiver(lambda rec: (arrived.set(), release.wait(20), 200)[2])
    try:
        sub = subscribe(wserver, admin, rx.url, shop_id=shop, event_types=["case.*"])
        c = h.create_case(wserver, shop_id=shop)
        assert arrived.wait(15 * SLOW), "the first event is at the receiver (which holds it)"
        etag = f'"{c["version"]}"'
        for _ in range(2):
            r = wserver.post(f"/v1/cases/{c['id']}/actions", {"action": "note", "text": "x"},
                             headers={"If-Match": etag}, key=wdb.keys["agent"])
            assert r.status == 200, r
            etag = r.headers["etag"]
        path = f"/v1/webhooks/{sub['id']}/deliveries"
        # queued (the worker reads the feed within a fraction of a second)
        # before the narrowing: an event the narrowed types no longer want
        # and that was never queued is simply not queued
        deadline = time.monotonic() + 15 * SLOW
        while len(wserver.get(path, key=admin).body["items"]) < 3:
            assert time.monotonic() < deadline, "the notes were never queued"
            time.sleep(0.05)
        r = wserver.request("PATCH", f"/v1/webhooks/{sub['id']}", {"event_types": ["case.accept"]},
                            key=admin)
        assert r.status == 200, r
        release.set()
        deadline = time.monotonic() + 15 * SLOW
        while True:
            items = wserver.get(path, key=admin).body["items"]
            if len(items) >= 3 and all(d["state"] != "pending" for d in items):
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.2)
        states = {d["seq"]: d["state"] for d in items}
        assert states[1] == "delivered" and all(v == "skipped" for k, v in states.items() if k > 1)
        assert [json.loads(x["body"])["data"]["seq"] for x in rx.requests] == [1]
        assert len(wserver.get(path + "?state=skipped", key=admin).body["items"]) == len(items) - 1
    finally:
        release.set()
        rx.close()


@pytest.mark.own_servers
def test_an_event_the_feed_orders_before_an_earlier_seq_is_still_sent_in_seq_order(
        arbiter_bin, make_db, log_dir):
    """sql/029: the worker queues deliveries from the commit-ordered feed,
    (xid, id). A transaction that took its xid before another wrote the
    case's next event, and then wrote the one after it, puts a higher seq
    first in the feed. Here that writer's event and 499 unwanted events of
    the shop fill a whole expansion round (EXPAND_BATCH, 500) without the
    lower seq: the round pulls it in early, so the receiver gets seqs
    1, 2, 3 in order, each once."""
    db = make_db(migrate=True)
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="webhooks-inverted",
                 policy=h.DEFAULT_POLICY, env=ALLOW)
    s.start()
    rx = Receiver()
    admin, shop = db.keys["admin"], h.uniq("INV")
    try:
        subscribe(s, admin, rx.url, shop_id=shop, event_types=["case.open", "case.note"])
        c = h.create_case(s, shop_id=shop)
        rx.wait(lambda rs: len(rs) >= 1, 15 * SLOW, "the open event")
        cid = h.quote_literal(c["id"])
        # the early writer: its xid first, then (after the note below has
        # committed) the case's next event and 499 of the shop's that the
        # subscription does not want, all in that one transaction
        writer = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.admin_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        writer.stdin.write(f"""
SET application_name = 'inverting-writer';
BEGIN;
SELECT pg_current_xact_id();
SELECT pg_sleep(1.5);
SET LOCAL session_replication_role = replica;
INSERT INTO case_events (case_id, shop_id, seq, actor_role, actor_id, action, from_state, to_state,
                         data, prev_hash, hash)
SELECT {cid}, {h.quote_literal(shop)}, max(seq) + 1, 'agent', 'early', 'note', 'awaiting_seller',
       'awaiting_seller', '{{"text": "late xid, written last"}}', '\\x00', '\\x00'
  FROM case_events WHERE case_id = {cid};
INSERT INTO case_events (case_id, shop_id, seq, actor_role, actor_id, action, from_state, to_state,
                         data, prev_hash, hash)
SELECT 'c_filler_' || {cid}, {h.quote_literal(shop)}, g, 'system', 'filler', 'filler',
       'awaiting_seller', 'awaiting_seller', '{{}}', '\\x00', '\\x00'
  FROM generate_series(1, 499) g;
COMMIT;
""")
        writer.stdin.close()
        deadline = time.monotonic() + 10
        while h.psql_value(db.admin_url, "SELECT count(*) FROM pg_stat_activity"
                           " WHERE application_name = 'inverting-writer'"
                           " AND backend_xid IS NOT NULL") != "1":
            assert time.monotonic() < deadline, "the early writer never took its xid"
            time.sleep(0.02)
        r = s.post(f"/v1/cases/{c['id']}/actions", {"action": "note", "text": "seq 2"},
                   headers={"If-Match": f'"{c["version"]}"'}, key=db.keys["agent"])
        assert r.status == 200, r
        assert writer.wait(30) == 0, writer.stderr.read()
        order = h.psql(db.admin_url, f"SELECT seq FROM case_events WHERE case_id = {cid}"
                       " ORDER BY xid, id").stdout.split()
        assert order == ["1", "3", "2"], ("the feed must hold the inversion", order)
        rx.wait(lambda rs: len(events_of(rs, c["id"])) >= 3, 15 * SLOW, "all three events")
        time.sleep(0.5)
        seqs = [p["data"]["seq"] for _, p in events_of(rx.requests, c["id"])]
        assert seqs == [1, 2, 3], seqs
        assert h.psql_value(db.admin_url, "SELECT count(*) FROM webhook_pulled") == "0"
        assert s.stop() == 0, s.log_tail()
    finally:
        rx.close()
        if s.alive():
            s.stop()
