"""Black-box tests of issue 25's localised problem details: a zh-CN reader
gets a Chinese title and detail, and Chinese field messages, that say the
same specific thing as the English ones: the same type, pointers, field
names, limits, times and amounts (money as ¥, two decimals). Covered: a
nested field's validation error, a 409 deadline-passed, a 422 policy
refusal, a 404.
"""
from __future__ import annotations

import re
import time

import helpers as h
from test_sla import FAST, Shop, if_match, only_deadline

ZH = {"Accept-Language": "zh-CN"}
HAN = re.compile(r"[\u4e00-\u9fff]")
# what must survive translation: field names, codes, times, numbers, money
TOKENS = re.compile(r"¥\d+\.\d\d|\d{4}-\d\d-\d\dT[\d:.]+Z|[A-Za-z_][A-Za-z0-9_]*_[A-Za-z0-9_]+|\d+")


TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z")


def tokens(s: str, times: bool = True) -> list[str]:
    return sorted(TOKENS.findall(s if times else TIME.sub("<time>", s)))


def pair(en: h.Response, zh: h.Response, status: int,
         times: bool = True) -> tuple[dict, dict]:
    """Both problems, checked to be the same problem in two languages (times
    compared too unless the two requests were about different cases)."""
    pe, pz = h.assert_problem(en, status), h.assert_problem(zh, status)
    assert en.headers.get("content-language") == "en", en.headers
    assert zh.headers.get("content-language") == "zh-CN", zh.headers
    assert pe["type"] == pz["type"] and h.problem_pointers(pe) == h.problem_pointers(pz), (pe, pz)
    assert HAN.search(pz["title"]) and not HAN.search(pe["title"]), (pe, pz)
    assert HAN.search(pz["detail"]) and not HAN.search(pe["detail"]), (pe, pz)
    assert tokens(pe["detail"], times) == tokens(pz["detail"], times), (pe, pz)
    for fe, fz in zip(pe.get("errors") or [], pz.get("errors") or []):
        assert HAN.search(fz["message"]) and not HAN.search(fe["message"]), (fe, fz)
        assert tokens(fe["message"]) == tokens(fz["message"]), (fe, fz)
    return pe, pz


def test_nested_field_errors_name_the_same_field_and_limits(server):
    late = h.case_body()
    o = late["order"]
    o["delivered_at"], o["shipped_at"] = o["shipped_at"], o["delivered_at"]
    odd = h.case_body()
    odd["order"].update(quantity=0, colour="white")
    msgs = {}
    for bad in (late, odd):
        en, zh = server.post("/v1/cases", bad), server.post("/v1/cases", bad, headers=ZH)
        pe, pz = pair(en, zh, 422)
        assert pz["title"] == "请求无效" and pz["detail"] == "一个或多个字段无效", pz
        msgs.update({e["pointer"]: (e["message"], z["message"])
                     for e, z in zip(pe["errors"], pz["errors"])})
    assert msgs["/order/delivered_at"] == ("must not be before shipped_at", "不得早于 shipped_at"), msgs
    qe, qz = msgs["/order/quantity"]
    assert qe.startswith("must be an integer from 1 to ") and qz.startswith("必须是 1 到 "), msgs
    assert msgs["/order/colour"] == ("unknown field", "未知字段"), msgs


def test_not_found_names_the_same_id(server):
    cid = "c_00000000000000000000000000000000"
    en, zh = server.get(f"/v1/cases/{cid}"), server.get(f"/v1/cases/{cid}", headers=ZH)
    pe, pz = pair(en, zh, 404)
    assert pe["detail"] == f"no case with id '{cid}'", pe
    assert pz["detail"] == f"没有 ID 为“{cid}”的案件" and pz["title"] == "未找到", pz


def test_policy_refusal_names_the_same_amounts(server):
    body = h.case_body(requested_cents=99_999_900)
    en = server.post("/v1/adjudications", body)
    zh = server.post("/v1/adjudications", body, headers=ZH)
    pe, pz = pair(en, zh, 422)
    assert pe["type"] == "urn:arbiter:problem:policy-refused", pe
    (fe,), (fz,) = pe["errors"], pz["errors"]
    assert fe["pointer"] == "/requested_cents", fe
    money = re.findall(r"¥\d+\.\d\d", fe["message"])
    assert "¥999999.00" in money and len(money) == 2, fe
    assert re.findall(r"¥\d+\.\d\d", fz["message"]) == money, (fe, fz)
    assert fz["message"].startswith("申请金额 ¥999999.00 超过了规则"), fz


def test_deadline_passed_names_the_same_deadline_time_and_state(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="i18n-late", policy=FAST,
                    env={"ARBITER_SCHEDULER": "false"})
    shop = Shop(db)
    a, b = shop.create(s), shop.create(s)
    due = max(h.parse_time(only_deadline(c, "seller_response")["due_at"]).timestamp()
              for c in (a, b))
    time.sleep(max(0.0, due - time.time()) + 0.05)
    act = {"action": "accept"}
    en = s.post(f"/v1/cases/{a['id']}/actions", act, key=shop.key["seller"], headers=if_match(1))
    zh = s.post(f"/v1/cases/{b['id']}/actions", act, key=shop.key["seller"],
                headers={**if_match(1), **ZH})
    pe, pz = pair(en, zh, 409, times=False)
    assert pe["type"] == "urn:arbiter:problem:deadline-passed", pe
    for p, c in ((pe, a), (pz, b)):
        assert only_deadline(c, "seller_response")["due_at"] in p["detail"], p
        assert "seller_response" in p["detail"] and p["state"] in p["detail"], p
    assert pz["title"] == "期限已过" and "期限已于" in pz["detail"], pz
