"""Black-box tests of the access log (issue 22, item 1): at the default level
(info) every request is one JSON line with typed fields (numbers as numbers,
booleans as booleans), who called (key id, never the key; role; shops),
where from (X-Forwarded-For only from a trusted proxy) and how it ended
(status, the problem type of an error). Long values are cut per field with a
marker, never the line. ARBITER_ACCESS_LOG=off and health-check sampling
quiet the routine lines.
"""
from __future__ import annotations

import json
import subprocess

import helpers as h

TRUNC_MARK = "...[truncated "


def lines_of(s: h.Server) -> list[dict]:
    out = []
    for line in s.log_path.read_text().splitlines():
        if line.startswith("--- start"):   # the harness's own marker
            continue
        out.append(json.loads(line))       # every line is one JSON object
    return out


def access_of(entries: list[dict], rid: str) -> dict:
    mine = [e for e in entries if e.get("msg") == "access" and e.get("request_id") == rid]
    assert len(mine) == 1, (rid, mine)
    return mine[0]


def rid(tag: str) -> str:
    return h.uniq("al-" + tag)


def test_access_lines_are_typed_and_name_the_caller(db, make_server):
    s = make_server(db.service_url, name="accesslog",
                    env={"ARBITER_LOG_LEVEL": "info", "ARBITER_TRUSTED_PROXIES": "127.0.0.1, ::1"})
    frontend = db.keys["frontend"]
    seller_id, seller = db.make_key("agent", shops=["S-AL-1", "S-AL-2"])
    ids = {t: rid(t) for t in ("ok", "missing", "nokey", "invalid", "seller", "xff", "long")}

    ok = s.get("/v1/cases?limit=1", key=frontend, headers={"X-Request-Id": ids["ok"]})
    assert ok.status == 200, ok
    missing = s.get("/v1/cases/c_nosuchcase", key=frontend, headers={"X-Request-Id": ids["missing"]})
    assert missing.status == 404, missing
    nokey = s.get("/v1/cases", key=None, headers={"X-Request-Id": ids["nokey"]})
    assert nokey.status == 401, nokey
    bad = {"kind": "refund", "reason": "quality_defect"}
    invalid = s.post("/v1/cases", bad, key=frontend, headers={"X-Request-Id": ids["invalid"]})
    assert invalid.status == 422, invalid
    sel = s.get("/v1/cases?limit=1", key=seller, headers={"X-Request-Id": ids["seller"]})
    assert sel.status == 200, sel
    xff = s.get("/healthz", key=None, headers={"X-Request-Id": ids["xff"],
                                               "X-Forwarded-For": "203.0.113.9, 127.0.0.1"})
    assert xff.status == 200, xff
    long_path = "/v1/" + "x" * 3000
    lng = s.get(long_path, key=None, headers={"X-Request-Id": ids["long"]})
    assert lng.status == 404, lng
    assert s.stop() == 0

    entries = lines_of(s)
    e = access_of(entries, ids["ok"])
    assert e["level"] == "info" and e["method"] == "GET", e
    assert e["route"] == "/v1/cases" and e["path"] == "/v1/cases", e
    assert e["status"] == 200 and type(e["status"]) is int, e
    assert type(e["duration_ms"]) in (int, float) and 0 <= e["duration_ms"] < 60000, e
    assert type(e["bytes_in"]) is int and e["bytes_in"] == 0, e
    assert type(e["bytes_out"]) is int and e["bytes_out"] == len(ok.raw), (e, len(ok.raw))
    assert e["authenticated"] is True, e
    assert e["key_id"] == h.key_id_of(frontend) and e["role"] == "frontend", e
    assert e["shops"] == "*" and e["client"] == "127.0.0.1" and "problem" not in e, e
    assert "peer" not in e, e

    e = access_of(entries, ids["missing"])
    assert e["status"] == 404 and e["route"] == "/v1/cases/{id}", e
    assert e["path"] == "/v1/cases/c_nosuchcase", e
    assert e["problem"] == missing.body["type"] == "urn:arbiter:problem:not-found", e

    e = access_of(entries, ids["nokey"])
    assert e["status"] == 401 and e["authenticated"] is False, e
    assert "key_id" not in e and "role" not in e and "shops" not in e, e
    assert e["problem"] == nokey.body["type"], e

    e = access_of(entries, ids["invalid"])
    body_len = len(json.dumps(bad).encode())
    assert e["status"] == 422 and e["method"] == "POST" and e["bytes_in"] == body_len, e
    assert e["problem"] == invalid.body["type"], e

    e = access_of(entries, ids["seller"])
    assert e["role"] == "agent" and e["key_id"] == seller_id, e
    assert e["shops"] == "S-AL-1,S-AL-2", e

    # the peer is a trusted proxy, and so is the hop it names: the client is
    # the first untrusted hop from the right
    e = access_of(entries, ids["xff"])
    assert e["client"] == "203.0.113.9" and e["peer"] == "127.0.0.1", e
    assert e["route"] == "/healthz", e

    # a 3000-byte path: its field is cut and marked, the fields after it stay
    e = access_of(entries, ids["long"])
    assert e["path"].startswith("/v1/xxx") and TRUNC_MARK in e["path"], e
    assert len(e["path"]) < 1100 and e["path"].endswith(" bytes]"), e
    assert e["status"] == 404 and e["problem"] == "urn:arbiter:problem:not-found", e

    text = s.log_path.read_text()
    assert frontend not in text and seller not in text and "Bearer" not in text


def test_forwarded_for_is_ignored_from_an_untrusted_peer(db, make_server):
    s = make_server(db.service_url, name="accesslog-untrusted",
                    env={"ARBITER_LOG_LEVEL": "info"})
    r_id = rid("untrusted")
    r = s.get("/v1/cases?limit=1", key=db.keys["frontend"],
              headers={"X-Request-Id": r_id, "X-Forwarded-For": "198.51.100.7"})
    assert r.status == 200, r
    assert s.stop() == 0
    e = access_of(lines_of(s), r_id)
    assert e["client"] == "127.0.0.1" and "peer" not in e, e


def test_health_checks_are_sampled_and_the_log_can_be_off(db, make_server):
    sampled = make_server(db.service_url, name="accesslog-sampled",
                          env={"ARBITER_LOG_LEVEL": "info", "ARBITER_ACCESS_LOG_HEALTH_EVERY": "4"})
    tag = rid("health")
    for i in range(12):
        assert sampled.get("/healthz", key=None, headers={"X-Request-Id": f"{tag}-{i}"}).status == 200
    other = rid("other")
    assert sampled.get("/v1/cases?limit=1", key=db.keys["frontend"],
                       headers={"X-Request-Id": other}).status == 200
    assert sampled.stop() == 0
    entries = lines_of(sampled)
    health = [e for e in entries if e.get("msg") == "access"
              and str(e.get("request_id", "")).startswith(tag + "-")]
    # 12 checks, one in four logged: which ones depends on the start-up's own
    # checks (the harness polls /healthz); 4 when the client retried one
    assert 3 <= len(health) <= 4, health
    access_of(entries, other)

    none = make_server(db.service_url, name="accesslog-nohealth",
                       env={"ARBITER_LOG_LEVEL": "info", "ARBITER_ACCESS_LOG_HEALTH_EVERY": "0"})
    for i in range(5):
        assert none.get("/healthz", key=None, headers={"X-Request-Id": f"{tag}-n{i}"}).status == 200
    assert none.get("/v1/cases?limit=1", key=db.keys["frontend"],
                    headers={"X-Request-Id": other + "-n"}).status == 200
    assert none.stop() == 0
    entries = lines_of(none)
    assert not [e for e in entries if e.get("msg") == "access" and e.get("route") == "/healthz"]
    access_of(entries, other + "-n")

    off = make_server(db.service_url, name="accesslog-off",
                      env={"ARBITER_LOG_LEVEL": "info", "ARBITER_ACCESS_LOG": "off"})
    quiet = rid("off")
    assert off.get("/v1/cases?limit=1", key=db.keys["frontend"],
                   headers={"X-Request-Id": quiet}).status == 200
    assert off.get("/v1/cases/c_nosuchcase", key=db.keys["frontend"]).status == 404
    assert off.stop() == 0
    assert not [e for e in lines_of(off) if e.get("msg") == "access"]


def test_a_bad_access_log_setting_stops_the_start(db, make_server, arbiter_bin):
    for var, val in (("ARBITER_ACCESS_LOG", "maybe"), ("ARBITER_ACCESS_LOG_HEALTH_EVERY", "-1"),
                     ("ARBITER_TRUSTED_PROXIES", "10.0.0.0/8")):
        s = make_server(db.service_url, name="accesslog-bad", start=False, env={var: val})
        s.start(wait=False)
        try:
            rc = s.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            raise AssertionError(f"{var}={val}: the server started")
        assert rc != 0, (var, val, rc)
        assert var in s.log_path.read_text(), s.log_tail()
