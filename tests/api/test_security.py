"""The HTTP edge under attack (issue #18): slowloris, floods, forged cursors,
hostile identifiers and URLs, NUL in paths, missing hardening headers, and
feed cursors that told one shop how busy the others are.

Every load loop is bounded in count and time and stays on loopback
(127.0.0.0/8).
"""

from __future__ import annotations

import base64
import hashlib
import re
import selectors
import socket
import time
import urllib.parse

import pytest

import helpers as h
from helpers import assert_problem, case_body, problem_pointers


def b64url(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


def pointers(r) -> list[str]:
    return problem_pointers(assert_problem(r, r.status))


# ---------------------------------------------------------------------------
# no starving: absolute deadlines, budgets that shed instead of refusing
# ---------------------------------------------------------------------------
def _connect_from(src: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def _closed_within(s: socket.socket, trickle: bytes, every: float, limit: float) -> float | None:
    """Trickles `trickle` one byte every `every` s until the server closes
    the connection; the seconds that took, or None if still open at limit."""
    s.setblocking(True)
    s.settimeout(every)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            s.send(trickle[i % len(trickle):i % len(trickle) + 1])
            i += 1
            data = s.recv(4096)
            if data == b"" or b"HTTP/1.1" in data:
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def test_trickled_headers_and_body_are_cut_at_their_deadline(make_server, db):
    s = make_server(db.service_url, name="deadline",
                    env={"ARBITER_HEADER_TIMEOUT": "2", "ARBITER_BODY_TIMEOUT": "2"})
    # headers: one byte of a header line every 0.3 s never completes them
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    took = _closed_within(c, b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0.3, 7)
    c.close()
    assert took is not None and took < 4.5, f"a trickled header block held on for {took} s"
    # body: the headers at once, then one byte of the body every 0.3 s
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"POST /v1/adjudications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + db.keys["agent"].encode() + b"\r\n"
              b"Content-Length: 5000\r\n\r\n{")
    took = _closed_within(c, b" ", 0.3, 7)
    c.close()
    assert took is not None and took < 4.5, f"a trickled body held on for {took} s"
    m = s.get("/metrics", key=None)
    assert re.search(r'arbiter_http_connections_shed_total\{reason="header_deadline"\} [1-9]',
                     m.body), m.body[-800:]
    assert s.get("/healthz").status == 200


def test_healthz_answers_within_a_second_through_a_slowloris(make_server, db):
    """240 trickling connections from 127.0.0.2..9 against a budget of 120
    (per address 40): the newest idle connection is shed, not the health
    check refused."""
    s = make_server(db.service_url, name="slowloris",
                    env={"ARBITER_MAX_CONNECTIONS": "120", "ARBITER_MAX_CONNECTIONS_PER_IP": "40",
                         "ARBITER_HEADER_TIMEOUT": "3"})
    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    per_source, duration, max_opened = 30, 8.0, 3000
    sel = selectors.DefaultSelector()
    socks: dict[socket.socket, str] = {}
    opened = 0

    def open_one(src: str) -> None:
        nonlocal opened
        c = _connect_from(src, s.port)
        opened += 1
        socks[c] = src
        sel.register(c, selectors.EVENT_READ)

    def drop(c: socket.socket) -> None:
        sel.unregister(c)
        src = socks.pop(c)
        c.close()
        if opened < max_opened and time.monotonic() < end:
            open_one(src)

    failures, retried, checks = [], [], 0
    end = time.monotonic() + duration
    try:
        for src in sources:
            for _ in range(per_source):
                open_one(src)
        time.sleep(0.3)
        for c in list(socks):
            try:
                c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                drop(c)
        last_trickle = time.monotonic()
        while time.monotonic() < end:
            # the attacker: a header byte now and then, reconnect when shed
            for key, _ in sel.select(timeout=0):
                drop(key.fileobj)
            if time.monotonic() - last_trickle > 1.0:
                for c in list(socks):
                    try:
                        c.send(b"X-a: b\r\n")
                    except (BlockingIOError, OSError):
                        drop(c)
                last_trickle = time.monotonic()
            # the health check: within 1 s; one slower answer is asked
            # again at once, since the attacker, the server and PostgreSQL
            # share this machine's 2 cores (a starved service fails the
            # retry too: before the fix every check failed)
            checks += 1
            for attempt in (1, 2):
                t0 = time.monotonic()
                try:
                    r = h.http_request("127.0.0.1", s.port, "GET", "/healthz", timeout=1)
                    ok = r.status == 200
                except OSError as e:
                    ok, r = False, e
                took = time.monotonic() - t0
                if ok and took <= 1.0:
                    break
                (failures if attempt == 2 else retried).append(
                    (round(t0 - (end - duration), 2), round(took, 3), repr(r)[:80]))
            time.sleep(0.2)
    finally:
        for c in list(socks):
            sel.unregister(c)
            c.close()
        sel.close()
    assert checks >= 10
    assert not failures, f"/healthz failed {len(failures)} of {checks} checks twice: {failures[:5]}"
    assert len(retried) * 10 <= checks, \
        f"/healthz was slower than 1 s in {len(retried)} of {checks} checks: {retried[:5]}"
    m = s.get("/metrics", key=None)
    assert re.search(r'arbiter_http_connections_shed_total\{reason="(global|address)_budget"\} [1-9]',
                     m.body), m.body[-800:]


# ---------------------------------------------------------------------------
# rate limits
# ---------------------------------------------------------------------------
def test_rate_limit_per_key_429_with_headers_and_metric(make_server, db):
    s = make_server(db.service_url, name="ratelimit",
                    env={"ARBITER_RATE_LIMIT_KEY": "20000,seller=5:10"})
    shop = h.uniq("shop")
    _, seller = db.make_key("seller", shops=shop)
    statuses, throttled = [], None
    for _ in range(40):
        r = s.get(f"/v1/cases?shop_id={shop}", key=seller)
        statuses.append(r.status)
        if r.status == 429 and throttled is None:
            throttled = r
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[:10] == [200] * 10, statuses   # the burst
    assert throttled is not None, f"40 requests at once with a 5/s key, none throttled: {statuses}"
    p = assert_problem(throttled, 429)
    assert p["type"] == "urn:arbiter:problem:rate-limited", p
    assert int(throttled.headers["retry-after"]) >= 1, throttled.headers
    assert throttled.headers["ratelimit-policy"] == '"key";q=5;w=1', throttled.headers
    assert re.fullmatch(r'"key";r=0;t=[1-9][0-9]*', throttled.headers["ratelimit"]), throttled.headers
    # other keys have their own buckets; health and metrics are exempt
    assert s.get(f"/v1/cases?shop_id={shop}").status == 200
    for _ in range(30):
        assert s.get("/healthz", key=None).status == 200
    m = s.get("/metrics", key=None)
    assert m.status == 200
    got = re.search(r'arbiter_http_throttled_total\{scope="key"\} (\d+)', m.body)
    assert got and int(got.group(1)) == statuses.count(429), m.body[-600:]
    # the bucket refills
    time.sleep(1.2)
    assert s.get(f"/v1/cases?shop_id={shop}", key=seller).status == 200


def test_rate_limit_per_address_for_requests_without_a_valid_key(make_server, db):
    s = make_server(db.service_url, name="ratelimit-addr",
                    env={"ARBITER_RATE_LIMIT_ADDRESS": "2:5"})
    statuses = [s.get("/v1/cases", key="ak_000000000000_" + "0" * 48).status for _ in range(15)]
    assert statuses[:5] == [401] * 5 and 429 in statuses, statuses
    r = s.get("/openapi.json", key=None)
    assert r.status == 429 and r.headers["ratelimit-policy"] == '"address";q=2;w=1', r
    # a valid key is not held up by its address's guessing
    assert s.get("/v1/cases?limit=1").status == 200
    m = s.get("/metrics", key=None)
    assert re.search(r'arbiter_http_throttled_total\{scope="address"\} [1-9]', m.body)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def assert_invalid_cursor(r, param: str) -> None:
    p = assert_problem(r, 400)
    assert p["type"] == "urn:arbiter:problem:invalid-cursor", p
    assert problem_pointers(p) == [f"/query/{param}"], p


# (endpoint, its cursor parameter): every route that takes one
CURSORS = [("/v1/cases", "cursor"), ("/v1/events", "after")]


@pytest.mark.parametrize("path,param", CURSORS)
@pytest.mark.parametrize("kind,value", [
    # well-formed, but naming a position no reply handed out: the list's
    # with an id no case has the form of, the feed's with no such event
    ("forged", {"cursor": b64url("1.c_x'--"), "after": b64url("1.c_" + "0" * 32)}),
    ("out of range", b64url("9223372036854775807.c_x")),
    ("out of range (year 10000)", b64url("253402300800000000.c_x")),
    ("negative", b64url("-1.c_x")),
    ("garbage", "!!!!"),
    ("not base64url of a cursor", "not-a-cursor"),
    ("too long", "A" * 400),
])
def test_a_cursor_not_handed_out_is_400_naming_it(server, path, param, kind, value):
    v = value[param] if isinstance(value, dict) else value
    r = server.get(path + "?" + urllib.parse.urlencode({param: v}))
    assert_invalid_cursor(r, param)


@pytest.mark.parametrize("field,value", [
    ("shop_id", "../S-2"), ("shop_id", "S-1'; --"), ("shop_id", 'S"1'), ("buyer_id", "B 1"),
    ("id", "O/1"), ("sku", "-SKU"), ("sku", "店"), ("id", "x" * 65),
])
def test_identifiers_outside_the_charset_are_refused(server, field, value):
    body = case_body()
    body["order"][field] = value
    r = server.post("/v1/cases", body)
    assert r.status == 422, r
    assert f"/order/{field}" in pointers(r), r


def test_order_timeline_must_be_in_order_and_not_in_the_future(server):
    body = case_body()
    body["order"]["delivered_at"] = "2020-01-01T00:00:00Z"
    r = server.post("/v1/cases", body)
    assert r.status == 422 and "/order/delivered_at" in pointers(r), r
    body = case_body()
    body["order"]["delivered_at"] = "9999-12-31T00:00:00Z"
    r = server.post("/v1/cases", body)
    assert r.status == 422 and "/order/delivered_at" in pointers(r), r
    body = case_body()
    body["order"]["shipped_at"] = h.fmt_time(h.now_utc() - h.dt.timedelta(days=10))
    r = server.post("/v1/cases", body)
    assert r.status == 422 and "/order/shipped_at" in pointers(r), r
    # a frontend clock a minute ahead is fine
    body = case_body()
    body["order"]["delivered_at"] = h.fmt_time(h.now_utc() + h.dt.timedelta(minutes=1))
    assert server.post("/v1/cases", body).status == 201


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/x.jpg", "https://169.254.169.254/latest/meta-data/", "https://[::1]/x",
    "https://user:pw@img.example.com/x.jpg", "https://img.example.com@10.0.0.1/x",
    "https://localhost/x", "https://192.168.0.10/x", "https://2130706433/x",
    "http://img.example.com/x.jpg",
])
def test_evidence_urls_to_internal_hosts_are_refused(server, url):
    body = case_body(evidence=[{"kind": "photo", "url": url}])
    r = server.post("/v1/cases", body)
    assert r.status == 422, r
    assert "/evidence/0/url" in pointers(r), r


@pytest.mark.parametrize("path", ["/v1/cases/%00", "/v1/cases/%00x", "/v1/cases%0a",
                                  "/healthz%01", "/v1/cases?shop_id=S%001"])
def test_control_bytes_in_the_target_are_400(server, path):
    r = server.get(path)
    p = assert_problem(r, 400)
    assert p["type"] == "urn:arbiter:problem:bad-request-target", p
    assert "/path" in problem_pointers(p), p


# ---------------------------------------------------------------------------
# headers
# ---------------------------------------------------------------------------
def test_every_reply_says_nosniff(server):
    for path, key in [("/healthz", None), ("/readyz", None), ("/metrics", None),
                      ("/openapi.json", None), ("/ui/", None), ("/v1/cases?limit=1", h.DEFAULT_KEY),
                      ("/v1/cases", None), ("/nowhere", None), ("/v1/cases/c_nope", h.DEFAULT_KEY)]:
        r = server.get(path, key=key)
        assert r.headers.get("x-content-type-options") == "nosniff", (path, r.status, r.headers)


def test_ui_csp_allows_only_its_own_script(server):
    r = server.get("/ui/", key=None)
    assert r.status == 200
    csp = r.headers["content-security-policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, csp
    scripts = re.findall(r"<script>(.*?)</script>", r.raw.decode(), re.S)
    assert len(scripts) == 1, "the page's script moved: recheck the policy"
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in script_src, csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, csp


# ---------------------------------------------------------------------------
# feed cursors name the caller's own position
# ---------------------------------------------------------------------------
def _tail(server, key) -> str:
    cur = None
    for _ in range(1000):
        q = {"limit": "1000"}
        if cur:
            q["after"] = cur
        r = server.get("/v1/events?" + urllib.parse.urlencode(q), key=key)
        assert r.status == 200, r
        if not r.body["items"]:
            return r.body["next_cursor"]
        cur = r.body["next_cursor"]
    raise AssertionError("the feed does not end")


def test_feed_cursors_reveal_nothing_about_other_shops(server, db):
    shop_a, shop_b = h.uniq("shopa"), h.uniq("shopb")
    _, seller_a = db.make_key("seller", shops=shop_a)
    _, seller_b = db.make_key("seller", shops=shop_b)
    start = _tail(server, seller_a)
    h.create_case(server, shop_id=shop_a)
    for _ in range(3):
        h.create_case(server, shop_id=shop_b)
    h.create_case(server, shop_id=shop_a)
    items, cur = [], start
    deadline = time.monotonic() + 20
    while len(items) < 2 and time.monotonic() < deadline:
        r = server.get("/v1/events?" + urllib.parse.urlencode({"after": cur, "limit": 10}),
                       key=seller_a)
        assert r.status == 200, r
        items += r.body["items"]
        cur = r.body["next_cursor"]
        if not r.body["items"]:
            time.sleep(0.05)
    assert len(items) == 2 and {e["shop_id"] for e in items} == {shop_a}, items
    for e in items:
        c = e["cursor"]
        # not the feed's global position ("<xid>.<event id>")
        assert not re.fullmatch(r"\d+\.\d+", c), c
        raw = base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).decode()
        assert e["case_id"] in raw and not re.search(r"\d{6,}", raw.replace(e["case_id"], "")), raw
    # the cursor is the seller's own: another shop's seller cannot use it,
    # exactly as if it named nothing
    r = server.get("/v1/events?" + urllib.parse.urlencode({"after": items[0]["cursor"]}),
                   key=seller_b)
    assert_invalid_cursor(r, "after")
    forged = b64url("1.c_" + "0" * 32)
    r2 = server.get("/v1/events?" + urllib.parse.urlencode({"after": forged}), key=seller_b)
    assert_invalid_cursor(r2, "after")
    assert r2.body["errors"] == r.body["errors"] and r2.body["detail"] == r.body["detail"], (r, r2)
    # a global position is refused from a shop's key
    r = server.get("/v1/events?after=1.1", key=seller_a)
    assert_invalid_cursor(r, "after")
    # and the seller resumes from its own cursor
    r = server.get("/v1/events?" + urllib.parse.urlencode({"after": items[0]["cursor"]}),
                   key=seller_a)
    assert r.status == 200 and [e["cursor"] for e in r.body["items"]][:1] == [items[1]["cursor"]], r
