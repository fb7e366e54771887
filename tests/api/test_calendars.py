"""Black-box tests of issue 25, calendars: the shipped calendar is served as
deploy/calendars/cn-mainland.json says, an admin loads a new version (a
repeated load changes nothing), older versions stay readable, invalid
documents and other roles change nothing."""

from __future__ import annotations

import json
import pathlib

import helpers as h
from helpers import assert_problem, problem_pointers

SHIPPED = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "calendars" / "cn-mainland.json"


def put(server: h.Server, cal_id: str, doc, key: str):
    return server.request("PUT", f"/v1/calendars/{cal_id}", body=doc, key=key)


def test_shipped_calendar_is_the_file(server):
    r = server.get("/v1/calendars/cn-mainland")
    assert r.status == 200, r
    assert r.body["id"] == "cn-mainland"
    assert r.body["version"] >= 1
    first = server.get("/v1/calendars/cn-mainland?version=1")
    assert first.status == 200, first
    assert first.body["recorded_by"] == "migration 017"
    # The migration's copy and the file must not drift apart.
    assert first.body["calendar"] == json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert "2026-10-10" in first.body["calendar"]["years"]["2026"]["working_days"]


def test_load_new_version_and_repeat(server, keys, db):
    cal_id = h.uniq("t").lower().replace(".", "-")[:40]
    doc = {"name": "测试日历 4-byte 𠮷", "time_zone": "Asia/Shanghai",
           "years": {"2026": {"holidays": ["2026-10-01"], "working_days": ["2026-10-10"]}}}
    r = put(server, cal_id, doc, keys["admin"])
    assert r.status == 201, r
    assert r.body["version"] == 1 and r.body["recorded_by"] == db.key_ids["admin"]
    assert r.body["calendar"]["id"] == cal_id
    assert r.body["calendar"]["name"] == doc["name"]
    # The same content again: nothing new.
    again = put(server, cal_id, doc, keys["admin"])
    assert again.status == 200, again
    assert again.body["version"] == 1
    doc["years"]["2027"] = {"holidays": ["2027-01-01"]}
    v2 = put(server, cal_id, doc, keys["admin"])
    assert v2.status == 201 and v2.body["version"] == 2, v2
    assert server.get(f"/v1/calendars/{cal_id}").body["version"] == 2
    old = server.get(f"/v1/calendars/{cal_id}?version=1")
    assert old.status == 200 and "2027" not in old.body["calendar"]["years"], old
    assert_problem(server.get(f"/v1/calendars/{cal_id}?version=3"), 404)
    assert_problem(server.get(f"/v1/calendars/{cal_id}?version=zero"), 422)


def test_invalid_calendars_change_nothing(server, keys):
    cal_id = h.uniq("bad").lower().replace(".", "-")[:40]
    cases = [
        ({"years": {"2026": {"holidays": ["2026-02-30"]}}}, "/years/2026/holidays"),
        ({"years": {"2026": {"holidays": ["2026-10-10"], "working_days": ["2026-10-10"]}}},
         "/years"),
        ({"time_zone": "Mars/Olympus", "years": {}}, "/time_zone"),
        ({"id": "someone-else", "years": {}}, "/id"),
        ({"years": {"2026": {"holiday": []}}}, "/years/2026"),
    ]
    for doc, pointer in cases:
        p = assert_problem(put(server, cal_id, doc, keys["admin"]), 422)
        assert pointer in problem_pointers(p), (doc, p)
    assert_problem(server.get(f"/v1/calendars/{cal_id}"), 404)


def test_only_admin_loads(server, keys):
    doc = {"years": {"2026": {}}}
    for role in ("frontend", "agent", "arbiter", "ops"):
        assert_problem(put(server, "cn-mainland", doc, keys[role]), 403)
    assert server.get("/v1/calendars/cn-mainland?version=1").status == 200
    # Every role reads.
    assert server.get("/v1/calendars/cn-mainland", key=keys["ops"]).status == 200
