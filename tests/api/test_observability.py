"""Black-box tests of issue 7's metrics and logs: /metrics parsed by the
strict exposition parser moves as a scripted case lives (opened, expired by
the scheduler, refunded by the payment system), and every log line is one
JSON object carrying the request id the caller sent.

Each test runs its own server on its own database with the seconds-long test
policy, so counters start at zero and the seller's deadline expires within
the test.
"""
from __future__ import annotations

import json
import time

import helpers as h
import promparse


def scrape(s: h.Server) -> dict:
    r = s.get("/metrics", key=None)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return promparse.parse(r.raw)


def val(fams: dict, name: str, **labels) -> float:
    v = promparse.value(fams, name, labels)
    return 0.0 if v is None else v


def wait_for(what: str, cond, timeout: float = 20.0, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_move_through_a_case_life(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="metrics", policy=h.FAST_POLICY)
    before = scrape(s)
    info = promparse.series(before, "arbiter_build_info")
    assert len(info) == 1 and info[0][1] == 1 and info[0][0]["version"], info
    assert val(before, "process_start_time_seconds") > 1.7e9

    r = s.post("/v1/cases", h.case_body())
    assert r.status == 201, r
    case = r.body
    after_open = scrape(s)
    assert val(after_open, "arbiter_cases_opened_total", kind="refund", outcome="seller_review") == \
        val(before, "arbiter_cases_opened_total", kind="refund", outcome="seller_review") + 1
    # A request is counted when libmicrohttpd reports it complete, just after
    # its reply is on the wire: a scrape right behind it may come first.
    wait_for("the POST to be counted", lambda: val(
        scrape(s), "arbiter_http_requests_total", route="/v1/cases", method="POST",
        status="201") == 1, timeout=10)
    # by route template, never by raw path
    s.get(f"/v1/cases/{case['id']}")
    wait_for("the GET to be counted", lambda: val(
        scrape(s), "arbiter_http_requests_total", route="/v1/cases/{id}", method="GET",
        status="200") == 1, timeout=10)
    fams = scrape(s)
    assert not [lab for lab, _ in promparse.series(fams, "arbiter_http_requests_total")
                if case["id"] in lab["route"]]
    # latency by route template and method (issue 22): one series each
    dur = "arbiter_http_request_duration_seconds_count"
    assert val(fams, dur, route="/v1/cases", method="POST") == 1
    assert val(fams, dur, route="/v1/cases/{id}", method="GET") == 1
    assert val(fams, dur, route="/v1/cases/{id}", method="POST") == 0
    assert not [lab for lab, _ in promparse.series(fams, dur) if set(lab) != {"route", "method"}]

    # The seller stays silent: the scheduler refunds (policy: 2 s).
    fired = wait_for("the automatic refund", lambda: (lambda f: f if val(
        f, "arbiter_sla_fired_total", deadline="seller_response") >= 1 else None)(scrape(s)))
    assert val(fired, "arbiter_auto_refunds_total") == 1
    assert val(fired, "arbiter_refunds_instructed_total", reason="seller_silent") == 1
    assert val(fired, "arbiter_refunds_instructed_cents_total", currency="CNY") == \
        case["decision"]["refund"]["total_cents"]
    assert val(fired, "arbiter_transitions_total", action="expire_seller_response",
               actor_role="system") == 1
    assert val(fired, "arbiter_sla_firing_lag_seconds_count") == 1
    # lag = now - due: the scheduler fires on time, well within a minute
    assert val(fired, "arbiter_sla_firing_lag_seconds_bucket", le="60") == 1

    # The payment system reports the refund executed.
    cur = s.get(f"/v1/cases/{case['id']}").body
    assert cur["state"] == "refund_pending", cur
    r = s.post(f"/v1/cases/{case['id']}/actions", {"action": "refund_executed", "payment_ref": "P-1"},
               key=db.keys["payment"], headers={"If-Match": f'"{cur["version"]}"'})
    assert r.status == 200, r
    # recorded before the reply is sent: visible at once
    fams = scrape(s)
    assert val(fams, "arbiter_transitions_total", action="refund_executed", actor_role="payment") == 1

    # The gauge comes from the scheduler's periodic count, not from the scrape.
    wait_for("arbiter_cases to show the refunded case",
             lambda: val(scrape(s), "arbiter_cases", state="refunded", kind="refund") == 1,
             timeout=25)
    fams = scrape(s)
    assert val(fams, "arbiter_cases", state="awaiting_seller", kind="refund") == 0
    assert val(fams, "arbiter_db_query_duration_seconds_count") > 0
    assert val(fams, "arbiter_db_errors_total") == 0
    pool = {lab["state"]: v for lab, v in promparse.series(fams, "arbiter_db_pool_connections")}
    assert set(pool) == {"idle", "in_use", "broken"} and pool["broken"] == 0, pool


def test_metrics_can_require_a_key(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="metrics-closed", env={"ARBITER_METRICS_OPEN": "false"})
    r = s.get("/metrics", key=None)
    assert r.status == 401 and "Bearer" in r.headers["www-authenticate"], r
    assert s.get("/metrics", key=db.keys["frontend"]).status == 403
    r = s.get("/metrics", key=db.keys["ops"])
    assert r.status == 200
    promparse.parse(r.raw)


def test_log_lines_are_json_with_the_request_id(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="logs", env={"ARBITER_LOG_LEVEL": "debug"})
    rid = "trace-" + h.uniq("rid")
    r = s.post("/v1/cases", h.case_body(), headers={"X-Request-Id": rid})
    assert r.status == 201 and r.headers["x-request-id"] == rid, r
    case_id = r.body["id"]
    r = s.get("/v1/cases/c_doesnotexist")
    generated = r.headers["x-request-id"]
    assert r.status == 404 and generated and r.body["request_id"] == generated, r
    assert s.stop() == 0

    entries = []
    for line in s.log_path.read_text().splitlines():
        if line.startswith("--- start"):   # the harness's own marker
            continue
        entry = json.loads(line)           # every line is one JSON object
        assert {"ts", "level", "msg"} <= entry.keys(), entry
        assert entry["level"] in ("debug", "info", "warn", "error"), entry
        entries.append(entry)
    mine = [e for e in entries if e.get("request_id") == rid]
    assert len(mine) == 1, mine
    e = mine[0]
    assert e["msg"] == "access" and e["level"] == "info", e
    assert e["route"] == "/v1/cases" and e["method"] == "POST" and e["status"] == 201, e
    assert e["case_id"] == case_id and isinstance(e["duration_ms"], (int, float)), e
    assert e["duration_ms"] >= 0, e
    assert any(x.get("request_id") == generated and x["status"] == 404 for x in entries)
    # no key, no body with personal data
    text = s.log_path.read_text()
    assert "ak_" not in text and "The kettle leaks" not in text
