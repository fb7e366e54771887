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


# ---------------------------------------------------------------------------
# a working-day deadline on a case (003: 补寄 通常为3个工作日)
# ---------------------------------------------------------------------------
CST = h.dt.timezone(h.dt.timedelta(hours=8))
FAST_POLICY = pathlib.Path(__file__).resolve().parent / "policy_fast.json"


def reference_due(start_local: h.dt.date, n: int, holidays: set, working: set) -> h.dt.datetime:
    """The obvious walk: the n-th working day after the start day, 24:00 CST."""
    d, left = start_local, n
    while left:
        d += h.dt.timedelta(days=1)
        if d in working or (d.weekday() < 5 and d not in holidays):
            left -= 1
    return h.dt.datetime.combine(d + h.dt.timedelta(days=1), h.dt.time(), CST)


def test_resend_deadline_lands_on_the_right_working_day(make_db, make_server, tmp_path):
    from test_refund_rules import act, seller_key
    from test_resend_rounds import missing_exchange

    db = make_db()
    cal_id = "resend-" + h.uniq("cal").split("-")[1]
    # The first Saturday at least two days ahead is a make-up working day
    # and every weekday before it a holiday: the three days skip the
    # holiday, count the Saturday, then Monday and Tuesday, whatever day the
    # test runs on.
    today = h.now_utc().astimezone(CST).date()
    makeup = next(today + h.dt.timedelta(days=i) for i in range(2, 9)
                  if (today + h.dt.timedelta(days=i)).weekday() == 5)
    holidays = [today + h.dt.timedelta(days=i) for i in range(1, (makeup - today).days)
                if (today + h.dt.timedelta(days=i)).weekday() < 5]
    assert holidays
    years: dict = {}
    for y in {today.year, today.year + 1, makeup.year}:
        years[str(y)] = {"holidays": [], "working_days": []}
    for d in holidays:
        years[str(d.year)]["holidays"].append(d.isoformat())
    years[str(makeup.year)]["working_days"].append(makeup.isoformat())

    policy = json.loads(FAST_POLICY.read_text())
    policy["version"] = "calendar-test-" + cal_id
    policy["calendar"] = cal_id
    policy["durations"]["seller_response"] = "PT1H"
    policy["durations"]["seller_resend"] = {"working_days": 3, "at": "end_of_day"}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    s = make_server(db.service_url, name="calendar", policy=str(path))
    r = put(s, cal_id, {"years": years}, db.keys["admin"])
    assert r.status == 201, r

    shop = h.uniq("cal-shop")
    c = h.create_case(s, missing_exchange(shop, 4300))
    r = act(s, c, seller_key(db, shop), "resend", note="补寄 today")
    assert r.status == 200 and r.body["state"] == "resend_pending", r
    [d] = [x for x in r.body["deadlines"] if x["name"] == "seller_resend"]
    start = h.parse_time(r.body["updated_at"]).astimezone(CST).date()
    want = reference_due(start, 3, set(holidays), {makeup})
    assert h.parse_time(d["due_at"]) == want, (d, holidays, makeup, start)
    assert d["working_days"] == 3, d
    assert d["calendar"] == {"id": cal_id, "version": 1, "calendar_incomplete": False}, d
    if start == today:   # not armed after midnight CST
        assert want.date() == makeup + h.dt.timedelta(days=4), (want, makeup)
    got = s.get(f"/v1/cases/{c['id']}").body
    assert [x for x in got["deadlines"] if x["name"] == "seller_resend"] == [d], got


def test_calendar_days_left_metric(server, keys):
    r = server.get("/metrics", key=keys["ops"])
    assert r.status == 200, r
    [line] = [x for x in r.body.splitlines()
              if x.startswith("arbiter_calendar_remaining_seconds ")]
    left = int(line.split()[1]) // 86400
    today = h.now_utc().astimezone(CST).date()
    covered = {int(y) for y in json.loads(SHIPPED.read_text())["years"]}
    if today.year in covered:
        last = h.dt.date(max(y for y in covered if y >= today.year), 12, 31)
        assert left == (last - today).days, (left, last, today)
    else:
        assert left == -1, left


def test_missing_year_counts_monday_to_friday_and_says_so(make_db, make_server, tmp_path):
    """A working-day deadline armed at opening on a calendar without today's
    year (first one the database does not hold at all, then one that covers
    2020 only): Monday to Friday, and the decision says calendar_incomplete."""
    db = make_db()
    cal_id = "gap-" + h.uniq("cal").split("-")[1]
    policy = json.loads(FAST_POLICY.read_text())
    policy["version"] = "calendar-gap-" + cal_id
    policy["calendar"] = cal_id
    policy["durations"]["seller_response"] = {"working_days": 2}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    s = make_server(db.service_url, name="calendar-gap", policy=str(path))

    def open_and_check(version: int) -> None:
        c = h.create_case(s, h.case_body(shop_id=h.uniq("gap-shop")))
        [d] = [x for x in c["deadlines"] if x["name"] == "seller_response"]
        assert d["calendar"] == {"id": cal_id, "version": version,
                                 "calendar_incomplete": True}, d
        assert c["decision"].get("calendar_incomplete") is True, c["decision"]
        start = h.parse_time(c["created_at"]).astimezone(CST).date()
        assert h.parse_time(d["due_at"]) == reference_due(start, 2, set(), set()), d

    open_and_check(0)
    r = put(s, cal_id, {"years": {"2020": {"holidays": ["2020-10-01"]}}}, db.keys["admin"])
    assert r.status == 201, r
    open_and_check(1)


def test_a_deadline_due_in_a_long_holiday_moves_past_it(make_db, make_server, tmp_path):
    """holiday_extension {"min_days": 3}: the seller's 10 minutes from now end
    inside a three-day holiday (yesterday, today and tomorrow in Shanghai,
    bounded by working days whatever day the test runs on), so the deadline
    moves three days later, to the same time of day, and says so."""
    db = make_db()
    cal_id = "holiday-" + h.uniq("cal").split("-")[1]
    today = h.now_utc().astimezone(CST).date()
    run = [today + h.dt.timedelta(days=i) for i in (-1, 0, 1)]
    edges = [today + h.dt.timedelta(days=i) for i in (-2, 2)]
    years: dict = {}
    for d in run + edges:
        years.setdefault(str(d.year), {"holidays": [], "working_days": []})
    for d in run:
        years[str(d.year)]["holidays"].append(d.isoformat())
    for d in edges:   # a weekend day next to the run is made a working day
        if d.weekday() >= 5:
            years[str(d.year)]["working_days"].append(d.isoformat())

    policy = json.loads(FAST_POLICY.read_text())
    policy["version"] = "holiday-test-" + cal_id
    policy["calendar"] = cal_id
    policy["holiday_extension"] = {"min_days": 3}
    policy["durations"]["seller_response"] = "PT10M"
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    s = make_server(db.service_url, name="holiday", policy=str(path))
    r = put(s, cal_id, {"years": years}, db.keys["admin"])
    assert r.status == 201, r

    c = h.create_case(s, h.case_body(shop_id=h.uniq("hol-shop")))
    [d] = [x for x in c["deadlines"] if x["name"] == "seller_response"]
    assert d["holiday_extended_days"] == 3, d
    assert d["working_days"] is None, d
    assert d["calendar"] == {"id": cal_id, "version": 1, "calendar_incomplete": False}, d
    # The service fixes the instant from its clock, the case's created_at
    # is the database's transaction time: the same machine, well within 1 s.
    span = h.parse_time(d["due_at"]) - h.parse_time(c["created_at"])
    want = h.dt.timedelta(days=3, minutes=10)
    assert abs(span - want) < h.dt.timedelta(seconds=1), (span, d, c["created_at"])
    got = s.get(f"/v1/cases/{c['id']}").body
    assert [x for x in got["deadlines"] if x["name"] == "seller_response"] == [d], got

    # min_days below 1 is refused, naming the field
    bad = dict(policy, version=policy["version"] + "-bad", holiday_extension={"min_days": 0})
    p = assert_problem(s.request("PUT", "/v1/policy", body=bad, key=db.keys["admin"]), 422)
    assert "/holiday_extension/min_days" in problem_pointers(p), p
