"""The OpenAPI contract (openapi/arbiter.yaml) and its checker (contract.py).

- The spec itself: it parses, converts to the JSON the service serves, names
  every route and method of src/routes.c and the vocabularies of the C code
  (states, actions, roles, deadlines, problem types), and its examples and the
  shipped policies validate against its schemas.
- The checker passes real traffic: a tour of every route and of the problem
  statuses, against a real server, where every exchange must keep the contract.
- The checker can fail: a real case with an undocumented field, a missing
  required field or header, an undocumented status, a wrong Allow list, an
  unknown path answered 200 are all reported.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

import contract
import helpers as h
from helpers import case_body, complaint_body

REPO = h.REPO
SPEC = contract.SPEC_PATH


@pytest.fixture(scope="module")
def spec_contract() -> contract.Contract:
    return contract.Contract()


def schema(c: contract.Contract, name: str) -> dict:
    return c.resolved["components"]["schemas"][name]


# --------------------------------------------------------------------------
# The spec itself (no server needed)
# --------------------------------------------------------------------------
def test_spec_is_openapi_31_and_converts_to_the_served_json(tmp_path):
    doc = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    out = tmp_path / "openapi.json"
    cp = subprocess.run(["/usr/bin/python3", str(REPO / "openapi" / "tojson.py"), str(SPEC), str(out)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == doc
    # the converter refuses what would silently change the document
    bad = tmp_path / "dup.yaml"
    bad.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\npaths: {}\n")
    cp = subprocess.run(["/usr/bin/python3", str(REPO / "openapi" / "tojson.py"), str(bad),
                         str(tmp_path / "x.json")], capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0 and "duplicate key" in cp.stderr, cp
    bad.write_text("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\nx-when: 2026-01-01\n")
    cp = subprocess.run(["/usr/bin/python3", str(REPO / "openapi" / "tojson.py"), str(bad),
                         str(tmp_path / "x.json")], capture_output=True, text=True, timeout=60)
    assert cp.returncode != 0 and "x-when" in cp.stderr, cp


def _router_table() -> dict[str, set[str]]:
    src = (REPO / "src" / "routes.c").read_text()
    rows = re.findall(r'\{\s*((?:M_[A-Z]+\s*\|?\s*)+),\s*"([^"]+)",', src)
    assert len(rows) >= 13, "cannot read the route table of src/routes.c"
    table = {}
    for mask, tmpl in rows:
        methods = {m.strip()[2:] for m in mask.split("|")}
        table.setdefault(tmpl.rstrip("/") or "/", set()).update(methods)
    return table


def test_spec_names_every_route_and_method_the_router_serves(spec_contract):
    router = _router_table()
    served = {}
    for tmpl, item in spec_contract.spec["paths"].items():
        key = re.sub(r"\{[^}]+\}", "{id}", tmpl).rstrip("/") or "/"
        served[key] = {m.upper() for m in contract.HTTP_METHODS if m in item}
    assert served == router, (
        f"routes in the router but not in the spec: {sorted(set(router) - set(served))}; "
        f"in the spec but not the router: {sorted(set(served) - set(router))}; "
        f"methods differing: { {k: (router[k], served[k]) for k in router if k in served and router[k] != served[k]} }")


def _c_names(path: str, array: str) -> list[str]:
    src = (REPO / path).read_text()
    m = re.search(array + r"\s*\[[^\]]*\]\s*=\s*\{(.*?)\};", src, re.S)
    assert m, f"{array} not found in {path}"
    return re.findall(r'"([^"]*)"', m.group(1))


def _enum(c: contract.Contract, name: str) -> set:
    return set(schema(c, name)["enum"])


def test_spec_vocabularies_are_the_codes(spec_contract):
    c = spec_contract
    states = _c_names("src/casefsm.c", "state_names")
    actions = _c_names("src/casefsm.c", "action_names")
    roles = _c_names("src/casefsm.c", "role_names")
    outcomes = _c_names("src/casefsm.c", "outcome_names")
    deadlines = _c_names("src/casefsm.c", "deadline_names")
    assert _enum(c, "CaseState") == set(states)
    assert _enum(c, "ActionName") == {a for a in actions if not a.startswith("expire_")}
    assert _enum(c, "EventAction") == set(actions) | {
        "open", "refund.instructed", "compensation.instructed", "deadline.approaching",
        "sla.breached", "sku.batch_defect",
        "deadline.paused", "deadline.resumed"}  # src/store_pauses.c
    assert _enum(c, "ActorRole") == set(roles)
    assert _enum(c, "Role") == set(roles) - {"system"}
    assert set(schema(c, "CaseFields")["properties"]["outcome"]["enum"]) == \
        (set(outcomes) - {"none"}) | {None}
    assert _enum(c, "DeadlineName") == set(deadlines)
    assert _enum(c, "CaseKind") == set(_c_names("src/model.c", "kind_names"))
    assert _enum(c, "Reason") == set(_c_names("src/model.c", "reason_names"))
    assert _enum(c, "EvidenceKind") == set(_c_names("src/model.c", "evidence_names"))
    src = (REPO / "src" / "policy.c").read_text()
    body = re.search(r"static const char \*on_expiry\(.*?\n\}", src, re.S).group(0)
    returned = {x for stmt in re.findall(r"return ([^;]*);", body)
                for x in re.findall(r'"([a-z_]+)"', stmt)}
    assert _enum(c, "OnExpiry") == returned - {"none"}


def _spec_problem_types(c: contract.Contract) -> set[tuple[int, str]]:
    found = set()
    for resp in c.resolved["components"]["responses"].values():
        s = ((resp.get("content") or {}).get("application/problem+json") or {}).get("schema")
        if not s:
            continue
        for part in s.get("allOf", []):
            props = part.get("properties") or {}
            if "status" in props and "const" in props["status"]:
                t = props.get("type") or {}
                for v in t.get("enum", [t.get("const")]):
                    if v:
                        found.add((props["status"]["const"], v.rsplit(":", 1)[1]))
    return found


def test_spec_names_every_problem_type_the_code_answers(spec_contract):
    code = set()
    for f in sorted((REPO / "src").glob("*.c")):
        if f.name in ("app.c", "main.c"):   # start-up errors, never an HTTP answer
            continue
        text = f.read_text()
        for st, slug in re.findall(r'(?:ar_err_set\([^,]+|problem\(r),\s*(\d{3}),\s*"([a-z-]+)"', text):
            code.add((int(st), slug))
        if "ar_err_field(" in text:
            code.add((422, "validation"))
    assert code, "no problem types found in src/"
    missing = code - _spec_problem_types(spec_contract)
    assert not missing, f"problem types the code answers but the spec does not describe: {sorted(missing)}"


def _examples(node, where="#"):
    """(where, schema, example value) for every media-type example in the spec."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node.get("examples"), dict):
            for name, ex in node["examples"].items():
                if "value" in ex:
                    yield f"{where}/examples/{name}", node["schema"], ex["value"]
        for k, v in node.items():
            yield from _examples(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _examples(v, f"{where}/{i}")


def test_spec_examples_are_valid(spec_contract):
    c = spec_contract
    seen = 0
    for where, sch, value in _examples(c.resolved["paths"]):
        seen += 1
        assert not c.schema_errors(sch, value, where), c.schema_errors(sch, value, where)
    for where, sch, value in _examples(c.resolved["components"]["responses"]):
        seen += 1
        assert not c.schema_errors(sch, value, where), c.schema_errors(sch, value, where)
    assert seen >= 40


@pytest.mark.parametrize("path", ["deploy/policy/default.json", "tests/api/policy_fast.json"])
def test_shipped_policies_are_valid_policies(spec_contract, path):
    doc = json.loads((REPO / path).read_text())
    assert not spec_contract.schema_errors(schema(spec_contract, "Policy"), doc, path)


def test_case_input_schema_keeps_the_codec_limits(spec_contract):
    c = spec_contract
    s = schema(c, "CaseInput")
    good = case_body()
    assert not c.schema_errors(s, good, "")
    for mutate, why in [
        (lambda b: b.update(colour="red"), "unknown field"),
        (lambda b: b.update(description="x" * 4001), "description too long"),
        (lambda b: b.update(description=""), "description empty"),
        (lambda b: b["order"].update(price_cents=-1), "negative money"),
        (lambda b: b["order"].update(price_cents=1.5), "fractional money"),
        (lambda b: b["order"].update(id="o" * 65), "id too long"),
        (lambda b: b["order"].update(id="a\tb"), "control character"),
        (lambda b: b.update(evidence=[b["evidence"][0]] * 21), "21 evidence items"),
        (lambda b: b["evidence"][0].update(url="ftp://x"), "not an http URL"),
        (lambda b: b.update(currency="cny"), "lower-case currency"),
        (lambda b: b["order"].pop("paid_at"), "missing paid_at"),
    ]:
        b = copy.deepcopy(good)
        mutate(b)
        assert c.schema_errors(s, b, ""), f"the schema accepts a body with {why}"


# --------------------------------------------------------------------------
# Real traffic: every route, every problem status, validated
# --------------------------------------------------------------------------
class Tour:
    """Sends requests through a Server and checks each exchange with a private
    Recorder (so this test does not depend on the session-wide hook)."""

    def __init__(self, server: h.Server, keys: dict[str, str]):
        self.s = server
        self.keys = keys
        self.rec = contract.Recorder()
        self.statuses: list[tuple[str, str, int]] = []

    def __call__(self, method, path, body=None, *, role="frontend", key=None, headers=None,
                 raw=None, expect=None) -> h.Response:
        hdrs = dict(headers or {})
        k = key if key is not None else (self.keys.get(role) if role else None)
        if k:
            hdrs.setdefault("Authorization", "Bearer " + k)
        r = self.s.request(method, path, body=body, headers=hdrs, raw=raw, key=None)
        sent = dict(h.default_headers())
        if body is not None or raw is not None:
            sent["Content-Type"] = "application/json"
        sent.update({x: v for x, v in hdrs.items() if v is not None})
        found = self.rec.record(method, path, sent, raw if raw is not None else body,
                                r.status, r.headers, r.body)
        assert not found, f"{method} {path} -> {r!r}:\n" + "\n".join(found)
        if expect is not None:
            assert r.status == expect, f"{method} {path}: expected {expect}, got {r!r}"
        self.statuses.append((method, path, r.status))
        return r


def test_real_traffic_keeps_the_contract(stable_server, db, keys):
    t = Tour(stable_server, keys)
    shop = h.uniq("S-ct")
    seller_id, seller_key = db.make_key("seller", shops=shop)

    # health, metrics, the page
    t("GET", "/healthz", role=None, expect=200)
    t("HEAD", "/healthz", role=None, expect=200)
    t("GET", "/readyz", role=None, headers={"X-Request-Id": "tour-ready-1"}, expect=200)
    t("HEAD", "/readyz", role=None, expect=200)
    t("GET", "/metrics", role=None, expect=200)
    t("GET", "/ui/", role=None, expect=200)
    t("GET", "/ui", role=None, expect=200)
    t("HEAD", "/ui/index.html", role=None, expect=200)

    # open a case, idempotently
    body = case_body(shop_id=shop)
    r = t("POST", "/v1/cases", body, headers={"Idempotency-Key": h.uniq("idem"),
                                             "X-Request-Id": "tour-create-1"}, expect=201)
    case = r.body
    key1 = h.uniq("idem")
    t("POST", "/v1/cases", case_body(shop_id=shop, kind="return"),
      headers={"Idempotency-Key": key1}, expect=201)
    r = t("POST", "/v1/cases", case_body(shop_id=shop, kind="return"),
          headers={"Idempotency-Key": key1}, expect=None)
    assert r.status == 422, r   # another body (new order ids) under the same key
    t("GET", f"/v1/cases/{case['id']}", expect=200)
    t("GET", f"/v1/cases/{case['id']}/", expect=200)
    t("GET", f"/v1/cases/{case['id']}/events", expect=200)
    r = t("GET", "/v1/cases?" + urllib.parse.urlencode({"shop_id": shop, "limit": 1}), expect=200)
    assert r.body["next_cursor"], r
    t("GET", "/v1/cases?" + urllib.parse.urlencode(
        {"shop_id": shop, "limit": 1, "cursor": r.body["next_cursor"], "kind": "return",
         "created_after": "2020-01-01T00:00:00Z"}), expect=200)
    t("GET", "/v1/cases?state=bogus&limit=0", expect=422)
    t("GET", f"/v1/cases?shop_id={shop}", key=seller_key, expect=200)

    # act: the refund case through to refunded
    acts = f"/v1/cases/{case['id']}/actions"
    t("POST", acts, {"action": "accept"}, role="agent", expect=428)
    t("POST", acts, {"action": "accept"}, role="agent", headers={"If-Match": '"7"'}, expect=412)
    r = t("POST", acts, {"action": "accept"}, role="frontend", headers={"If-Match": '"1"'}, expect=409)
    assert r.body["state"] == "awaiting_seller", r
    t("POST", acts, {"action": "fly"}, role="agent", headers={"If-Match": '"1"'}, expect=422)
    t("POST", acts, {"action": "accept", "note": "ok"}, key=seller_key,
      headers={"If-Match": '"1"', "Idempotency-Key": h.uniq("a")}, expect=200)
    t("POST", acts, {"action": "refund_executed", "payment_ref": "PAY-" + shop}, role="payment",
      headers={"If-Match": 'W/"2"'}, expect=200)

    # a return: offer, escalate, rule
    ret = t("POST", "/v1/cases", case_body(shop_id=shop, kind="return"), expect=201).body
    acts = f"/v1/cases/{ret['id']}/actions"
    t("POST", acts, {"action": "offer", "refund_cents": 3000, "message": "half"}, role="agent",
      headers={"If-Match": '"1"'}, expect=200)
    t("POST", acts, {"action": "escalate", "statement": "not enough"}, headers={"If-Match": '"2"'},
      expect=200)
    t("POST", acts, {"action": "rule", "in_favour_of": "split", "refund_cents": 4000,
                     "fault": "seller", "statement": "split"}, role="arbiter",
      headers={"If-Match": '"3"'}, expect=200)

    # a complaint: note with a signal, acknowledge, resolve, reopen, evidence
    cp = t("POST", "/v1/cases", complaint_body(shop_id=shop), expect=201).body
    acts = f"/v1/cases/{cp['id']}/actions"
    t("POST", acts, {"action": "note", "text": "asked money to delete a review",
                     "signal": "review_extortion"}, role="agent", headers={"If-Match": '"1"'},
      expect=200)
    t("POST", acts, {"action": "acknowledge", "message": "on it"}, role="agent",
      headers={"If-Match": '"2"'}, expect=200)
    t("POST", acts, {"action": "resolve", "resolution": "apology"}, role="agent",
      headers={"If-Match": '"3"'}, expect=200)
    t("POST", acts, {"action": "reopen", "reason": "no"}, headers={"If-Match": '"4"'}, expect=200)
    t("POST", acts, {"action": "add_evidence", "evidence": [
        {"kind": "chat_log", "url": "https://chat.example.com/1", "sha256": None}]},
      headers={"If-Match": '"5"'}, expect=200)
    major = t("POST", "/v1/cases", complaint_body(shop_id=shop, reason="safety_hazard"),
              expect=201).body
    t("POST", f"/v1/cases/{major['id']}/actions", {"action": "acknowledge"}, role="agent",
      headers={"If-Match": '"1"'}, expect=403)

    # the feed, adjudication, the policy
    r = t("GET", "/v1/events?limit=5", role="payment", expect=200)
    t("GET", "/v1/events?" + urllib.parse.urlencode({"after": r.body["next_cursor"], "limit": 1}),
      role="payment", expect=200)
    t("GET", "/v1/events?after=zz", role="payment", expect=400)
    t("POST", "/v1/adjudications", case_body(shop_id=shop), role="agent", expect=200)
    t("POST", "/v1/adjudications", case_body(shop_id=shop), role="ops", expect=403)
    t("POST", "/v1/adjudications", case_body(shop_id=shop, evidence=[]), role="agent", expect=422)
    pol = t("GET", "/v1/policy", expect=200).body
    t("PUT", "/v1/policy", pol, role="admin", expect=200)     # the same document: no change
    t("PUT", "/v1/policy", {"version": "x"}, role="admin", expect=422)
    t("PUT", "/v1/policy", pol, role="frontend", expect=403)

    # keys
    t("GET", "/v1/keys", role="admin", expect=200)
    t("GET", "/v1/keys", role="agent", expect=403)
    nk = t("POST", "/v1/keys", {"role": "seller", "shops": [shop], "name": "tour seller"},
           role="admin", expect=201).body
    t("POST", "/v1/keys", {"role": "nobody", "name": "x"}, role="admin", expect=422)
    t("DELETE", f"/v1/keys/{nk['id']}", role="admin", expect=204)
    t("DELETE", "/v1/keys/000000000000", role="admin", expect=404)

    # the desk
    t("GET", f"/v1/stats?shop_id={shop}", role="ops", expect=200)
    t("GET", "/v1/stats?from=yesterday", role="ops", expect=422)
    t("GET", "/v1/queues/manual_review?limit=5", role="agent", expect=200)
    t("GET", "/v1/queues/major_complaints", role="agent", expect=200)
    t("GET", "/v1/queues/nope", role="agent", expect=404)
    t("GET", "/v1/queues/in_arbitration", role="frontend", expect=403)
    t("GET", "/v1/sku-flags", role="agent", expect=200)
    t("DELETE", f"/v1/sku-flags/{shop}/NO-SUCH-SKU", role="agent", expect=404)
    t("DELETE", f"/v1/sku-flags/{shop}/NO-SUCH-SKU", role="frontend", expect=403)

    # the problems every route shares
    t("GET", "/v1/cases", role=None, expect=401)
    t("GET", "/v1/cases", key="ak_000000000000_" + "0" * 48, expect=401)
    t("POST", "/v1/cases", case_body(shop_id=shop), role="agent", expect=403)
    t("GET", "/v1/cases/c_00000000000000000000000000000000", expect=404)
    t("GET", "/v1/cases/not%20an%20id", expect=404)
    t("GET", "/no/such/path", role=None, expect=404)
    t("DELETE", "/v1/cases", expect=405)
    t("HEAD", "/metrics", role=None, expect=405)
    t("POST", "/v1/cases", raw=b"{}", headers={"Content-Type": "text/plain"}, expect=415)
    t("POST", "/v1/cases", raw=b"{" + b" " * (70 * 1024) + b"}", expect=413)
    t("POST", "/v1/cases", raw=b'{"kind": ', expect=400)
    t("POST", "/v1/cases", raw=b'{"a": 1, "a": 2}', expect=400)
    t("POST", "/v1/cases", {"kind": "refund", "colour": "red"}, expect=422)

    assert t.rec.violations() == []
    seen = {s for _, _, s in t.statuses}
    assert seen >= {200, 201, 204, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 428}, seen


def test_served_openapi_json_is_this_spec(stable_server):
    r = stable_server.get("/openapi.json", key=None)
    found = contract.Recorder().record("GET", "/openapi.json", {}, None, r.status, r.headers, r.body)
    assert r.status == 200, f"/openapi.json is not served: {r!r}"
    assert not found, found
    assert r.body == yaml.safe_load(SPEC.read_text(encoding="utf-8")), \
        "the binary serves another document than openapi/arbiter.yaml (rebuild?)"


# --------------------------------------------------------------------------
# The checker fails when the service breaks the contract
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_case(request):
    """A real case as the service answers it: status, headers, body."""
    srv = request.getfixturevalue("stable_server")
    body = case_body(shop_id=h.uniq("S-ct"))
    r = srv.post("/v1/cases", body)
    assert r.status == 201, r
    return body, r


def _case_exchange(c, resp, body_override=None, status=None, headers=None, method="GET",
                   req_body=None):
    case = resp.body
    path = f"/v1/cases/{case['id']}" if method == "GET" else "/v1/cases"
    return c.validate(method, path, None, {"Authorization": "Bearer x"}, req_body,
                      status or (200 if method == "GET" else 201),
                      headers if headers is not None else dict(resp.headers),
                      body_override if body_override is not None else copy.deepcopy(case))


def test_the_real_case_keeps_the_contract(spec_contract, real_case):
    sent, r = real_case
    assert _case_exchange(spec_contract, r) == []
    assert _case_exchange(spec_contract, r, method="POST", req_body=sent) == []


def test_an_undocumented_field_is_a_violation(spec_contract, real_case):
    _, r = real_case
    c = spec_contract
    broken = copy.deepcopy(r.body)
    broken["colour"] = "red"
    found = _case_exchange(c, r, broken)
    assert found and any("colour" in v for v in found), found
    # deeper down too: in the decision, an order, a list item, a problem
    broken = copy.deepcopy(r.body)
    broken["decision"]["colour"] = "red"
    assert any("colour" in v for v in _case_exchange(c, r, broken))
    broken = copy.deepcopy(r.body)
    broken["order"]["colour"] = "red"
    assert any("colour" in v for v in _case_exchange(c, r, broken))
    item = copy.deepcopy(r.body)
    item["colour"] = "red"
    found = c.validate("GET", "/v1/cases", "limit=1", {"Authorization": "Bearer x"}, None, 200,
                       {"Content-Type": "application/json", "X-Request-Id": "x1"},
                       {"items": [item], "next_cursor": None})
    assert any("colour" in v for v in found), found
    problem = {"type": "urn:arbiter:problem:not-found", "title": "Not found", "status": 404,
               "detail": "no", "errors": [], "request_id": "x2"}
    hdrs = {"Content-Type": "application/problem+json", "X-Request-Id": "x2"}
    assert c.validate("GET", f"/v1/cases/{r.body['id']}", None, {}, None, 404, hdrs, problem) == []
    found = c.validate("GET", f"/v1/cases/{r.body['id']}", None, {}, None, 404, hdrs,
                       dict(problem, colour="red"))
    assert any("colour" in v for v in found), found
    # and in what a client sent, when the service accepted it
    sent = dict(real_case[0], colour="red")
    found = _case_exchange(c, r, method="POST", req_body=sent)
    assert any("request body" in v and "colour" in v for v in found), found


def test_a_missing_or_wrong_field_is_a_violation(spec_contract, real_case):
    _, r = real_case
    for mutate in (lambda b: b.pop("allowed_actions"),
                   lambda b: b.update(version="1"),
                   lambda b: b.update(state="lost"),
                   lambda b: b["decision"]["refund"].update(total_cents=1.5),
                   lambda b: b.update(created_at="yesterday")):
        broken = copy.deepcopy(r.body)
        mutate(broken)
        assert _case_exchange(spec_contract, r, broken), broken


def test_an_undocumented_status_is_a_violation(spec_contract, real_case):
    _, r = real_case
    c = spec_contract
    found = _case_exchange(c, r, status=201)
    assert found and "not documented" in found[0], found
    found = c.validate("GET", "/healthz", None, {}, None, 418,
                       {"Content-Type": "application/json", "X-Request-Id": "a"}, {"status": "ok"})
    assert found and "418" in found[0], found
    found = c.validate("GET", "/no/such/path", None, {}, None, 200,
                       {"Content-Type": "application/json", "X-Request-Id": "a"}, {})
    assert found and "no path" in found[0], found
    problem = {"type": "urn:arbiter:problem:method-not-allowed", "title": "Method not allowed",
               "status": 405, "detail": "no", "errors": [], "request_id": "a"}
    hdrs = {"Content-Type": "application/problem+json", "X-Request-Id": "a", "Allow": "GET, POST"}
    assert c.validate("DELETE", "/v1/cases", None, {}, None, 405, hdrs, problem) == []
    found = c.validate("DELETE", "/v1/cases", None, {}, None, 405, dict(hdrs, Allow="GET"), problem)
    assert found and "Allow" in found[0], found
    found = c.validate("DELETE", "/v1/cases", None, {}, None, 200, hdrs, problem)
    assert found and "expected 405" in found[0], found


def test_missing_or_wrong_headers_are_violations(spec_contract, real_case):
    _, r = real_case
    c = spec_contract
    hdrs = {k: v for k, v in r.headers.items() if k.lower() != "etag"}
    found = _case_exchange(c, r, headers=hdrs)
    assert any("ETag" in v for v in found), found
    hdrs = dict(r.headers)
    hdrs["etag"] = '"99"'
    assert any("ETag" in v for v in _case_exchange(c, r, headers=hdrs))
    hdrs = {k: v for k, v in r.headers.items() if k.lower() != "location"}
    found = _case_exchange(c, r, method="POST", headers=hdrs, req_body=real_case[0])
    assert any("Location" in v for v in found), found
    hdrs = {k: v for k, v in r.headers.items() if k.lower() != "x-request-id"}
    assert any("X-Request-Id" in v for v in _case_exchange(c, r, headers=hdrs))
    hdrs = dict(r.headers)
    hdrs["content-type"] = "text/plain"
    assert any("Content-Type" in v for v in _case_exchange(c, r, headers=hdrs))
    problem = {"type": "urn:arbiter:problem:unauthorized", "title": "Unauthorized", "status": 401,
               "detail": "no key", "errors": [], "request_id": "a"}
    found = c.validate("GET", "/v1/cases", None, {}, None, 401,
                       {"Content-Type": "application/problem+json", "X-Request-Id": "a"}, problem)
    assert any("WWW-Authenticate" in v for v in found), found
    found = c.validate("GET", "/v1/cases", None, {}, None, 401,
                       {"Content-Type": "application/problem+json", "X-Request-Id": "b",
                        "WWW-Authenticate": 'Bearer realm="arbiter"'}, problem)
    assert any("request_id" in v for v in found), found
    # a 2xx to a request without a key, on a route that needs one
    found = c.validate("GET", f"/v1/cases/{r.body['id']}", None, {}, None, 200, dict(r.headers),
                       copy.deepcopy(r.body))
    assert any("Authorization" in v for v in found), found


def test_record_keeps_violations(real_case):
    _, r = real_case
    rec = contract.Recorder()
    broken = copy.deepcopy(r.body)
    broken["colour"] = "red"
    path = f"/v1/cases/{r.body['id']}?x=1"
    assert rec.record("GET", path, {"Authorization": "Bearer x"}, None, 200, r.headers,
                      copy.deepcopy(r.body)) == []
    assert rec.record("GET", path, {"Authorization": "Bearer x"}, b"", 200, r.headers, broken)
    assert rec.exchanges() == 2
    v = rec.violations()
    assert len(v) >= 1 and v[0].startswith(f"GET {path} -> 200: ") and "colour" in v[0], v
    assert "1 violations" in rec.report() or f"{len(v)} violations" in rec.report()
    # bodies may come as bytes or text as well as parsed
    assert rec.record("GET", path, {"Authorization": "Bearer x"}, None, 200, r.headers,
                      json.dumps(broken).encode())
    assert rec.record("GET", path, {"Authorization": "Bearer x"}, None, 200, r.headers,
                      "not json at all")
    rec.reset()
    assert rec.violations() == [] and rec.exchanges() == 0
    # the process-wide hook counts a good exchange without inventing a violation
    before_n, before_v = contract.exchanges(), len(contract.violations())
    assert contract.record("GET", path, {"Authorization": "Bearer x"}, None, 200, r.headers,
                           copy.deepcopy(r.body)) == []
    assert contract.exchanges() == before_n + 1 and len(contract.violations()) == before_v


def test_answers_of_the_http_library_keep_the_contract(spec_contract):
    """431 comes from libmicrohttpd itself (HTML, no X-Request-Id) on any path;
    413 from the service on any path, even one whose operation takes no body."""
    html = "<html><head><title>Request too big</title></head></html>"
    assert spec_contract.validate("GET", "/v1/cases", None, {}, None, 431,
                                  {"Content-Length": str(len(html))}, html) == []
    assert spec_contract.validate("GET", "/nowhere", None, {}, None, 431, {}, html) == []
    problem = {"type": "urn:arbiter:problem:payload-too-large", "title": "Payload too large",
               "status": 413, "detail": "too big", "errors": [], "request_id": "r413"}
    hdrs = {"Content-Type": "application/problem+json", "X-Request-Id": "r413"}
    assert spec_contract.validate("GET", "/healthz", None, {}, b"x", 413, hdrs, problem) == []
    found = spec_contract.validate("GET", "/healthz", None, {}, b"x", 413, hdrs,
                                   dict(problem, type="urn:arbiter:problem:not-found"))
    assert found, "a 413 must still be a payload-too-large problem"


def _spec_example_case() -> dict:
    doc = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    ex = doc["paths"]["/v1/cases"]["post"]["responses"]["201"]["content"]["application/json"]
    return copy.deepcopy(ex["examples"]["opened"]["value"])   # a real response, captured


# Collected only in the pytest of its own that the next test starts
# (conftest.py deselects it elsewhere).
def test_contract_selftest_records_a_broken_exchange():
    case = _spec_example_case()
    case["colour"] = "red"     # undocumented
    contract.record("GET", f"/v1/cases/{case['id']}", {"Authorization": "Bearer x"}, None, 200,
                    {"Content-Type": "application/json", "X-Request-Id": "selftest",
                     "ETag": f'"{case["version"]}"'}, case)


def test_a_violation_fails_the_session():
    """The whole suite's traffic goes through contract.record(); a session that
    recorded a violation must fail even when every test passed. Runs a pytest
    whose only test records a real case with an undocumented field."""
    me = Path(__file__).resolve()
    cp = subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{me}::test_contract_selftest_records_a_broken_exchange"],
        env=dict(os.environ, ARBITER_CONTRACT_SELFTEST="1"), cwd=str(me.parent),
        capture_output=True, text=True, timeout=300)
    out = cp.stdout + cp.stderr
    assert "1 passed" in out, out
    assert cp.returncode != 0, f"the session passed although a response broke the contract:\n{out}"
    assert "colour" in out and "OpenAPI contract" in out, out
