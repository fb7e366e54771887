"""Black-box tests of policy backtests (issue 28): a job replays recorded
cases under a draft policy, read-only, and reports what the draft would
change.

- The policy the cases were decided with, replayed over every kind and
  reason, changes nothing: same rule ids and results, same money, for
  every case (the engine's regression test).
- A draft lowering the late-shipment penalty cap changes exactly the
  capped cases' money and nothing else; a draft whose rule refuses some
  cases reports them as errors and the job still finishes.
- Selection (shops, kinds, sample), roles and scope, bad drafts (422
  naming the field), the activation link, a job whose process stopped,
  and `arbiter backtest` on the command line.

One database and one server (the shipped policy, nothing expires) for the
module: the cases are created once.
"""
from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path

import pytest

import helpers as h

KINDS = ["refund", "return", "exchange", "repair", "complaint"]
REASONS = ["quality_defect", "not_as_described", "wrong_item", "missing_item", "counterfeit",
           "late_shipment", "out_of_stock", "damaged_in_transit", "lost_in_transit",
           "changed_mind", "wrong_size_chosen", "bought_by_mistake", "damaged_by_buyer",
           "poor_service", "safety_hazard", "price_protection"]


def late_body(shop: str, price: int) -> dict:
    b = h.case_body(shop_id=shop, reason="late_shipment", description=h.uniq("late"))
    b["order"].pop("shipped_at")
    b["order"].pop("delivered_at")
    b["order"]["price_cents"] = price
    b["order"]["promised_ship_by"] = h.fmt_time(h.now_utc() - h.dt.timedelta(days=2))
    b.pop("evidence")
    return b


def variety(shop: str) -> list[dict]:
    """Every kind with every reason (the ones the codec refuses are left
    out by the caller), and the inputs the risk, category and 004 rules read."""
    out = []
    for k in KINDS:
        for r in REASONS:
            b = h.case_body(shop_id=shop, kind=k, reason=r, description=h.uniq(f"{k} {r}"))
            if r == "price_protection":
                b["new_price_cents"] = 7000
            out.append(b)
    buyer = h.uniq("busy-buyer")
    for i in range(5):   # past the 7-day case count: manual review
        out.append(h.case_body(shop_id=shop, buyer_id=buyer, description=h.uniq("again")))
    same = h.uniq("the very same words")
    for i in range(3):   # the same text at other shops
        out.append(h.case_body(shop_id=h.uniq("other"), description=same))
    car = h.case_body(shop_id=shop, reason="safety_hazard", defect="brake")
    car["order"].update(category="family_car", usage_km=1200)
    out.append(car)
    pts = h.case_body(shop_id=shop, kind="return", reason="changed_mind")
    pts["order"].update(points_used=300, coupon_cents=500)
    pts.pop("evidence")
    out.append(pts)
    out.append(h.case_body(shop_id="S-60", kind="return", reason="changed_mind"))
    return out


@pytest.fixture(scope="module")
def env(make_db, arbiter_bin, log_dir):
    db = make_db()
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="backtest", policy=h.DEFAULT_POLICY)
    s.start()
    shop, late_shop = h.uniq("bt-shop"), h.uniq("bt-late")
    made, kinds_reasons = [], set()
    for b in variety(shop):
        r = s.post("/v1/cases", b)
        assert r.status in (201, 422), r
        if r.status == 201:
            made.append(r.body["id"])
            kinds_reasons.add((b["kind"], b["reason"]))
    # 2000.00 and 1200.00 pay 30 % above a 300.00 cap; 500.00 pays 150.00
    late = {}
    for price in (200000, 120000, 50000):
        r = s.post("/v1/cases", late_body(late_shop, price))
        assert r.status == 201 and r.body["decision"]["refund"]["penalty_cents"] > 0, r
        late[price] = r.body["id"]
        made.append(r.body["id"])
    yield {"db": db, "server": s, "shop": shop, "late_shop": late_shop, "late": late,
           "cases": made, "kinds_reasons": kinds_reasons,
           "policy": s.get("/v1/policy").body}
    assert s.stop() == 0, s.log_tail()


def admin(env) -> str:
    return env["db"].keys["admin"]


def run_backtest(env, policy: dict, selection: dict | None = None, key=None) -> dict:
    s = env["server"]
    body = {"policy": policy}
    if selection is not None:
        body["selection"] = selection
    r = s.post("/v1/policy/backtests", body, key=key or admin(env))
    assert r.status == 202, r
    assert r.headers["Location"] == f"/v1/policy/backtests/{r.body['id']}", r.headers
    assert r.body["state"] in ("running", "done"), r.body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        g = s.get(r.headers["Location"], key=key or admin(env))
        assert g.status == 200, g
        if g.body["state"] != "running":
            assert g.body["state"] == "done", g.body
            return g.body
        time.sleep(0.1)
    raise AssertionError(f"backtest still running: {g.body}")


def draft(env, **changes) -> dict:
    p = copy.deepcopy(env["policy"])
    p["version"] = h.uniq("2099.9-draft")
    for path, value in changes.items():
        node = p
        parts = path.split("__")
        for k in parts[:-1]:
            node = node[k]
        node[parts[-1]] = value
    return p


def test_the_deciding_policy_reproduces_every_decision(env):
    # the variety covers every kind and most reasons
    assert {k for k, _ in env["kinds_reasons"]} == set(KINDS), env["kinds_reasons"]
    assert len({r for _, r in env["kinds_reasons"]}) >= 14, env["kinds_reasons"]
    job = run_backtest(env, env["policy"])
    rep = job["report"]
    n = len(env["cases"])
    assert job["progress"]["seen"] == n and rep["cases"]["seen"] == n, (n, rep["cases"])
    assert rep["cases"] == {"seen": n, "replayed": n, "unchanged": n, "changed": 0,
                            "money_changed": 0, "rules_changed": 0, "errors": 0}, rep["cases"]
    assert rep["outcomes"]["changed"] == [] and rep["outcomes"]["before"] == rep["outcomes"]["after"]
    assert rep["money"]["refund_cents"]["before"] == rep["money"]["refund_cents"]["after"] > 0
    assert rep["money"]["penalty_cents"]["before"] == rep["money"]["penalty_cents"]["after"] > 0
    assert rep["rules"]["more"] == [] and rep["rules"]["less"] == [], rep["rules"]
    assert rep["deadlines"]["longer"] == rep["deadlines"]["shorter"] == 0, rep["deadlines"]
    assert rep["deadlines"]["same"] > 0, rep["deadlines"]
    at_open = rep["deadlines"]["auto_refunds"]["at_open"]
    assert at_open["before"] == at_open["after"] >= 3, at_open   # the late shipments at least
    assert sum(d["cases"] for d in rep["per_day"]["days"]) == n, rep["per_day"]
    # nothing was written to cases or events
    db = env["db"]
    assert db.count("cases") == n and db.count("case_events") >= n


def test_a_lower_penalty_cap_changes_exactly_the_capped_cases(env):
    job = run_backtest(env, draft(env, late_shipment__penalty_cap_cents=30000))
    rep = job["report"]
    late = env["late"]
    assert rep["cases"]["errors"] == 0, rep["errors"]
    assert rep["cases"]["money_changed"] == 2, rep["money"]
    assert set(rep["money"]["examples"]) == {late[200000], late[120000]}, rep["money"]
    assert rep["cases"]["changed"] == 2 and rep["outcomes"]["changed"] == [], rep
    # 50000 -> 30000 and 36000 -> 30000
    for k in ("penalty_cents", "refund_cents"):
        assert rep["money"][k]["before"] - rep["money"][k]["after"] == 26000, rep["money"]
    shops = {s["shop_id"]: s for s in rep["money"]["per_shop"]}
    ls = shops[env["late_shop"]]
    assert ls["penalty_cents"]["before"] - ls["penalty_cents"]["after"] == 26000, ls
    for sid, s in shops.items():
        if sid != env["late_shop"]:
            assert s["refund_cents"]["before"] == s["refund_cents"]["after"], s
            assert s["penalty_cents"]["before"] == s["penalty_cents"]["after"], s


def test_a_broken_rule_reports_errors_per_case_and_the_job_finishes(env):
    p = draft(env)
    p["evidence"]["required_for"] = p["evidence"]["required_for"] + ["late_shipment"]
    job = run_backtest(env, p, {"shops": [env["late_shop"]]})
    rep = job["report"]
    assert job["state"] == "done"
    assert rep["cases"]["seen"] == 3 and rep["cases"]["errors"] == 3, rep["cases"]
    assert rep["cases"]["replayed"] == 0, rep["cases"]
    [e] = rep["errors"]["by_type"]
    assert e["type"] == "policy-refused" and e["count"] == 3, e
    assert {x["case_id"] for x in e["examples"]} == set(env["late"].values()), e
    assert all(x["reason"].startswith("/evidence") for x in e["examples"]), e


def test_selection_by_shop_kind_and_sample(env):
    rep = run_backtest(env, env["policy"], {"shops": [env["late_shop"]], "kinds": ["refund"],
                                            "reasons": ["late_shipment"]})["report"]
    assert rep["cases"]["seen"] == 3, rep["cases"]
    rep = run_backtest(env, env["policy"], {"sample": 7})["report"]
    assert rep["cases"]["seen"] == 7, rep["cases"]
    future = h.fmt_time(h.now_utc() + h.dt.timedelta(days=1))
    rep = run_backtest(env, env["policy"], {"created_after": future})["report"]
    assert rep["cases"]["seen"] == 0, rep["cases"]
    past = h.fmt_time(h.now_utc() - h.dt.timedelta(days=1))
    rep = run_backtest(env, env["policy"], {"created_after": past, "created_before": future,
                                            "kinds": ["complaint"]})["report"]
    assert 0 < rep["cases"]["seen"] < len(env["cases"]), rep["cases"]


def test_roles_scope_and_bad_input(env):
    s = env["server"]
    body = {"policy": env["policy"]}
    seller = env["db"].make_key("seller", shops=[env["shop"]])[1]
    for key in (seller, env["db"].keys["frontend"], env["db"].keys["agent"]):
        r = s.post("/v1/policy/backtests", body, key=key)
        assert r.status == 403, r
    ok = run_backtest(env, env["policy"], {"sample": 1}, key=env["db"].keys["ops"])
    for key in (seller, env["db"].keys["payment"]):
        assert s.get(f"/v1/policy/backtests/{ok['id']}", key=key).status == 403
    r = s.get("/v1/policy/backtests/bt_nosuchjob", key=admin(env))
    assert r.status == 404, r

    bad = draft(env, late_shipment__penalty_cap_cents=-1)
    r = s.post("/v1/policy/backtests", {"policy": bad}, key=admin(env))
    assert r.status == 422, r
    assert "/policy/late_shipment/penalty_cap_cents" in [e["pointer"] for e in r.body["errors"]], r
    for sel, ptr in (({"shop": ["x"]}, "/selection/shop"),
                     ({"kinds": ["refunds"]}, "/selection/kinds/0"),
                     ({"sample": 0}, "/selection/sample"),
                     ({"created_after": "yesterday"}, "/selection/created_after")):
        r = s.post("/v1/policy/backtests", {"policy": env["policy"], "selection": sel},
                   key=admin(env))
        assert r.status == 422 and ptr in [e["pointer"] for e in r.body["errors"]], (sel, r)
    r = s.post("/v1/policy/backtests", {"selection": {}}, key=admin(env))
    assert r.status == 422 and "/policy" in [e["pointer"] for e in r.body["errors"]], r
    r = s.post("/v1/policy/backtests", {"policy": env["policy"], "extra": 1}, key=admin(env))
    assert r.status == 422 and "/extra" in [e["pointer"] for e in r.body["errors"]], r


def test_activation_names_the_backtest(env):
    s, db = env["server"], env["db"]
    p = draft(env, late_shipment__penalty_cap_cents=45000)
    job = run_backtest(env, p, {"sample": 3})
    r = s.request("PUT", "/v1/policy?backtest_id=bt_nosuchjob", body=p, key=admin(env))
    assert r.status == 422 and r.body["errors"][0]["pointer"] == "/query/backtest_id", r
    assert s.get("/v1/policy").body["version"] == env["policy"]["version"]
    r = s.request("PUT", f"/v1/policy?backtest_id={job['id']}", body=p, key=admin(env))
    assert r.status == 200 and r.body["version"] == p["version"], r
    row = h.psql_value(db.admin_url, "SELECT version || ' ' || coalesce(backtest_id, '-') "
                       "FROM policy_activations ORDER BY id DESC LIMIT 1;")
    assert row == f"{p['version']} {job['id']}", row
    # back to the shipped policy, an activation without a backtest
    r = s.request("PUT", "/v1/policy", body=env["policy"], key=admin(env))
    assert r.status == 200, r
    row = h.psql_value(db.admin_url, "SELECT version || ' ' || coalesce(backtest_id, '-') "
                       "FROM policy_activations ORDER BY id DESC LIMIT 1;")
    assert row == f"{env['policy']['version']} -", row


def test_a_job_whose_process_stopped_reads_failed(env):
    s, db = env["server"], env["db"]
    h.psql(db.admin_url,
           "INSERT INTO policy_backtests (id, state, created_by, policy_version, policy, selection,"
           " updated_at) VALUES ('bt_0000000000000000dead', 'running', 'k', 'v', '{}', '{}',"
           " now() - interval '10 minutes');")
    r = s.get("/v1/policy/backtests/bt_0000000000000000dead", key=admin(env))
    assert r.status == 200 and r.body["state"] == "failed", r
    assert "stopped" in r.body["error"] and "finished_at" in r.body, r.body


def test_cli_prints_the_report(env, arbiter_bin, tmp_path):
    p = draft(env, late_shipment__penalty_cap_cents=30000)
    f = tmp_path / "draft.json"
    f.write_text(json.dumps(p))
    cp = h.run_bin(arbiter_bin, ["backtest", "--policy", str(f), "--shop", env["late_shop"],
                                 "--json"], database_url=env["db"].service_url)
    assert cp.returncode == 0, cp.stderr
    rep = json.loads(cp.stdout)
    assert rep["cases"]["seen"] == 3 and rep["cases"]["money_changed"] == 2, rep["cases"]
    cp = h.run_bin(arbiter_bin, ["backtest", "--policy", str(f), "--sample", "2"],
                   database_url=env["db"].service_url)
    assert cp.returncode == 0 and "2 cases, 2 replayed" in cp.stdout, (cp.stdout, cp.stderr)
    assert "penalties" in cp.stdout
    # strict flags, --help without a database
    assert h.run_bin(arbiter_bin, ["backtest", "--help"]).returncode == 0
    bad = h.run_bin(arbiter_bin, ["backtest", "--policy", str(f), "--shops", "x"],
                    database_url=env["db"].service_url)
    assert bad.returncode == 2 and "--shops" in bad.stderr, bad.stderr
    assert h.run_bin(arbiter_bin, ["backtest"]).returncode == 2
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(draft(env, late_shipment__penalty_cap_cents=-1)))
    cp = h.run_bin(arbiter_bin, ["backtest", "--policy", str(broken)],
                   database_url=env["db"].service_url)
    assert cp.returncode == 2 and "penalty_cap_cents" in cp.stderr, cp.stderr


def test_the_share_is_checked_at_start_applied_and_reported(env, arbiter_bin, tmp_path):
    # the service's default, in the report of its job
    rep = run_backtest(env, env["policy"], {"sample": 2})["report"]
    run = rep["run"]
    assert {k: run[k] for k in ("share_percent", "batch", "batch_under_share")} == {
        "share_percent": 10, "batch": 1000, "batch_under_share": 100}, run
    assert 0 <= run["cases_under_share"] <= 2 and run["under_share_ms"] >= 0 and run["waited_ms"] >= 0, run
    f = tmp_path / "policy.json"
    f.write_text(json.dumps(env["policy"]))
    url = env["db"].service_url
    # the setting, then the flag over it; the run's first half second
    # counts as live traffic, so a share below 100 makes it wait (its
    # query and replay take far more than 1 % of the moment since it
    # started) and 100 never does
    for extra, env_share, want in (([], "30", 30), (["--share", "100"], "30", 100),
                                   (["--share", "1"], None, 1)):
        cp = h.run_bin(arbiter_bin, ["backtest", "--policy", str(f), "--sample", "3", "--json", *extra],
                       database_url=url,
                       env={"ARBITER_BACKTEST_SHARE": env_share} if env_share else None)
        assert cp.returncode == 0, cp.stderr
        out = json.loads(cp.stdout)
        assert out["run"]["share_percent"] == want and out["cases"]["seen"] == 3, (extra, out["run"])
        assert out["run"]["cases_under_share"] == 3, out["run"]
        assert (out["run"]["waited_ms"] > 0) == (want < 100), out["run"]
    for bad in ("0", "101", "half"):
        cp = h.run_bin(arbiter_bin, ["backtest", "--policy", str(f), "--share", bad], database_url=url)
        assert cp.returncode == 2 and "--share must be a percentage from 1 to 100" in cp.stderr, (bad, cp.stderr)
    for bad in ("0", "half"):
        # refused at start-up, before the service touches its database
        cp = h.run_bin(arbiter_bin, ["serve"], env={"ARBITER_BACKTEST_SHARE": bad,
                                                    "ARBITER_LISTEN": "127.0.0.1:1"},
                       database_url="postgresql://127.0.0.1:1/none?connect_timeout=1", timeout=60)
        assert cp.returncode == 2, (bad, cp.returncode, cp.stderr)
        assert f"ARBITER_BACKTEST_SHARE: expected an integer in [1, 100], got '{bad}'" in cp.stderr, cp.stderr


def test_a_replica_url_is_read_and_a_shutdown_fails_the_running_job(env, make_db, make_server):
    """ARBITER_READ_DATABASE_URL: the job reads that database (here another
    one, of 20,000 cases: copies of real ones), and keeps its row in the
    main one; SIGTERM while it runs records it failed at once."""
    import sys
    sys.path.insert(0, str(h.REPO / "tests" / "bench"))
    import backtest_bench

    big = make_db()
    loader = make_server(big.service_url, name="bt-big", policy=h.DEFAULT_POLICY)
    backtest_bench.creates(loader, 40, "replica")
    loader.stop()
    assert backtest_bench.multiply(big.admin_url, 500) == 20000
    db = env["db"]
    s = make_server(db.service_url, name="bt-replica", policy=h.DEFAULT_POLICY,
                    env={"ARBITER_READ_DATABASE_URL": big.service_url})
    r = s.post("/v1/policy/backtests", {"policy": env["policy"]}, key=admin(env))
    assert r.status == 202, r
    loc = r.headers["Location"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        g = s.get(loc, key=admin(env))
        # more than the main database holds: it reads the other one
        if g.body["progress"]["seen"] > len(env["cases"]) or g.body["state"] != "running":
            break
        time.sleep(0.05)
    assert g.body["state"] == "running" and g.body["progress"]["seen"] > len(env["cases"]), g.body
    assert s.stop() == 0
    g = env["server"].get(loc, key=admin(env))
    assert g.status == 200 and g.body["state"] == "failed", g.body
    assert "shut down" in g.body["error"] and g.body["progress"]["seen"] > 0, g.body
    assert "finished_at" in g.body, g.body


def test_a_case_opened_before_inputs_were_recorded_cannot_be_replayed(env):
    """An open event without `inputs` (as every case opened before issue 28
    has): reported as an error with its reason, never guessed."""
    db, src = env["db"], env["late"][50000]
    old = "c_" + "0" * 31 + "1"
    h.psql(db.admin_url, f"""
SET session_replication_role = replica;
DO $$DECLARE cols text; vals text; BEGIN
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
         string_agg(CASE attname WHEN 'id' THEN '''{old}''' WHEN 'idem_key' THEN 'NULL'
                      WHEN 'idem_scope' THEN 'NULL' ELSE quote_ident(attname) END, ', ' ORDER BY attnum)
    INTO cols, vals FROM pg_attribute
   WHERE attrelid = 'cases'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
  EXECUTE format('INSERT INTO cases (%s) SELECT %s FROM cases WHERE id = ''{src}''', cols, vals);
END$$;
INSERT INTO case_events (case_id, shop_id, seq, at, actor_role, actor_id, action, from_state,
                         to_state, data, policy_version, prev_hash, hash)
SELECT '{old}', shop_id, seq, at, actor_role, actor_id, action, from_state, to_state,
       data - 'inputs', policy_version, prev_hash, hash
  FROM case_events WHERE case_id = '{src}' AND seq = 1;
""")
    rep = run_backtest(env, env["policy"], {"shops": [env["late_shop"]]})["report"]
    assert rep["cases"]["seen"] == 4 and rep["cases"]["replayed"] == 3, rep["cases"]
    [e] = rep["errors"]["by_type"]
    assert e["type"] == "inputs-not-recorded" and e["count"] == 1, e
    assert e["examples"][0]["case_id"] == old and "not recorded" in e["examples"][0]["reason"], e


def test_a_decision_recorded_before_rule_args_replays_unchanged(env):
    """Issue 25: rule traces gained args; an open event recorded without
    them is the same decision when the replay has them."""
    db, shop = env["db"], env["late_shop"]
    stripped = h.psql_value(db.admin_url, f"""
SET session_replication_role = replica;
WITH u AS (
UPDATE case_events e
   SET data = jsonb_set(data, '{{decision,rules}}',
                        (SELECT jsonb_agg(r - 'args') FROM jsonb_array_elements(data #> '{{decision,rules}}') r))
 WHERE e.shop_id = '{shop}' AND e.seq = 1
   AND EXISTS (SELECT 1 FROM jsonb_array_elements(data #> '{{decision,rules}}') r WHERE r ? 'args')
RETURNING 1)
SELECT count(*) FROM u;
""")
    assert int(stripped) >= 3, stripped
    rep = run_backtest(env, env["policy"], {"shops": [shop]})["report"]
    n = rep["cases"]["replayed"]
    assert n >= 3 and rep["cases"]["unchanged"] == n and rep["cases"]["changed"] == 0, rep["cases"]
    assert rep["cases"]["rules_changed"] == 0, rep["cases"]
