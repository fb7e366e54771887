"""Black-box tests of issue 25's languages: Accept-Language (q-values)
picks en or zh-CN, Content-Language says which, Chinese readers get
Chinese decision reasons, problems and event summaries with the same rule
ids, results, codes and pointers as English readers; Chinese free text
(4-byte UTF-8 too) round-trips and length limits count characters.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import helpers as h

ZH = {"Accept-Language": "zh-CN"}
HAN = re.compile(r"[\u4e00-\u9fff]")
REPO = Path(__file__).resolve().parents[2]


def lang(r: h.Response) -> str:
    return r.headers.get("content-language")


def test_zh_reasons_keep_rule_ids_and_results(server):
    body = h.case_body(description=h.uniq("水壶烧水后接缝处漏水"))
    en = server.post("/v1/adjudications", body)
    zh = server.post("/v1/adjudications", body, headers=ZH)
    assert en.status == 200 and zh.status == 200, (en, zh)
    assert lang(en) == "en" and lang(zh) == "zh-CN", (en.headers, zh.headers)
    er, zr = en.body["decision"]["rules"], zh.body["decision"]["rules"]
    assert [(r["id"], r["result"]) for r in er] == [(r["id"], r["result"]) for r in zr]
    for e, z in zip(er, zr):
        assert not HAN.search(e["reason"]), e
        assert HAN.search(z["reason"]) and z["reason"] != e["reason"], z
    # everything but the texts is the same decision
    strip = lambda d: {k: v for k, v in d.items() if k != "rules"}
    assert strip(en.body["decision"]) == strip(zh.body["decision"])

    c = h.create_case(server, body)
    got = server.get(f"/v1/cases/{c['id']}", headers=ZH)
    assert got.status == 200 and lang(got) == "zh-CN", got
    assert all(HAN.search(r["reason"]) for r in got.body["decision"]["rules"]), got.body
    assert [r["id"] for r in got.body["decision"]["rules"]] == [r["id"] for r in c["decision"]["rules"]]


def test_money_in_texts_is_yuan_while_the_api_keeps_fen(server):
    late = h.late_shipment_body()
    late["order"]["price_cents"] = 1290
    r = server.post("/v1/adjudications", late, headers=ZH)
    assert r.status == 200, r
    total = r.body["decision"]["refund"]["total_cents"]
    assert isinstance(total, int) and total > 0, r.body
    shown = f"¥{total // 100}.{total % 100:02d}"
    texts = [x["reason"] for x in r.body["decision"]["rules"]]
    assert any(shown in t for t in texts), (shown, texts)


def test_event_summaries_in_both_languages(server):
    c = h.create_case(server)
    en = server.get(f"/v1/cases/{c['id']}/events")
    zh = server.get(f"/v1/cases/{c['id']}/events", headers={"Accept-Language": "zh"})
    assert en.status == 200 and zh.status == 200
    assert [e["action"] for e in en.body["items"]] == [e["action"] for e in zh.body["items"]]
    first_en, first_zh = en.body["items"][0], zh.body["items"][0]
    assert first_en["action"] == "open", first_en
    assert first_en["summary"] == "the buyer opened the case; now awaiting the seller", first_en
    assert first_zh["summary"] == "买家发起了售后申请，当前状态：等待卖家处理", first_zh
    assert lang(zh) == "zh-CN"


def test_problems_in_chinese_with_the_same_type_and_pointers(server):
    bad = h.case_body()
    bad["order"]["price_cents"] = -1
    del bad["reason"]
    en = server.post("/v1/cases", bad)
    zh = server.post("/v1/cases", bad, headers=ZH)
    pe, pz = h.assert_problem(en, 422), h.assert_problem(zh, 422)
    assert pe["type"] == pz["type"] == "urn:arbiter:problem:validation"
    assert h.problem_pointers(pe) == h.problem_pointers(pz) and "/reason" in h.problem_pointers(pz)
    assert pe["title"] == "Invalid request" and pz["title"] == "请求无效", (pe, pz)
    assert HAN.search(pz["detail"]) and not HAN.search(pe["detail"]), (pe, pz)
    assert lang(zh) == "zh-CN" and lang(en) == "en"

    nf = server.get("/v1/cases/c_00000000000000000000000000000000", headers=ZH)
    p = h.assert_problem(nf, 404)
    assert p["title"] == "未找到" and lang(nf) == "zh-CN", p
    unauth = server.get("/v1/cases", key=None, headers=ZH)
    assert h.assert_problem(unauth, 401)["title"] == "未认证"


def test_q_values_pick_the_language(server):
    cases = [
        ("en;q=0.5, zh-CN;q=0.9", "zh-CN"),
        ("zh-CN;q=0.1, en", "en"),
        ("zh-Hans-CN", "zh-CN"),
        ("ZH-cn;Q=1", "zh-CN"),
        ("fr-FR, zh;q=0.3", "zh-CN"),
        ("zh-TW, fr", "en"),          # Traditional Chinese is not zh-CN: the default
        ("zh-CN;q=0, en;q=0.2", "en"),
        ("zh-CN;q=0", "en"),
        ("de, *;q=0.5", "en"),
        ("en-GB;q=0.8, zh-SG;q=0.8", "en"),  # a tie: the earlier one
        ("zh-CN;q=1.5, en;q=0.4", "en"),     # a malformed q-value is ignored
        (";;, ,", "en"),
    ]
    for header, want in cases:
        r = server.get("/v1/cases?limit=1", headers={"Accept-Language": header})
        assert r.status == 200 and lang(r) == want, (header, r.headers)
        assert "accept-language" in r.headers.get("vary", "").lower(), r.headers


def test_default_language_from_config(make_db, make_server):
    db = make_db()
    s = make_server(db.service_url, name="zh-default", env={"ARBITER_DEFAULT_LANGUAGE": "zh-CN"})
    r = s.get("/v1/cases/c_00000000000000000000000000000000")
    assert lang(r) == "zh-CN" and h.assert_problem(r, 404)["title"] == "未找到", r
    r = s.get("/v1/cases/c_00000000000000000000000000000000", headers={"Accept-Language": "en"})
    assert lang(r) == "en" and r.body["title"] == "Not found", r
    r = s.get("/v1/cases?limit=1", headers={"Accept-Language": "fr, *;q=0.1"})
    assert lang(r) == "zh-CN", r.headers

    bad = make_server(db.service_url, name="bad-lang", start=False,
                      env={"ARBITER_DEFAULT_LANGUAGE": "fr"})
    bad.start(wait=False)
    assert bad.proc.wait(timeout=20) == 2
    assert "ARBITER_DEFAULT_LANGUAGE" in bad.log_tail(), bad.log_tail()


def test_chinese_text_round_trips_and_limits_count_characters(server):
    text = "商品与描述不符😀𠀀𡃁 — 颜色偏差明显"
    c = h.create_case(server, h.case_body(description=text))
    assert c["description"] == text, c["description"]
    got = server.get(f"/v1/cases/{c['id']}", headers=ZH)
    assert got.body["description"] == text
    note = "已联系买家，等待回复 🙏"
    r = server.post(f"/v1/cases/{c['id']}/actions",
                    {"action": "note", "text": note},
                    key=server.keys["agent"], headers={"If-Match": f'"{c["version"]}"'})
    assert r.status in (200, 201), r
    ev = server.get(f"/v1/cases/{c['id']}/events").body["items"]
    assert any(json.dumps(note, ensure_ascii=False) in json.dumps(e, ensure_ascii=False)
               for e in ev), ev

    # 4000 characters of 4 bytes each (16000 bytes) are within the limit
    # of 4000: characters are counted, not bytes
    c = h.create_case(server, h.case_body(description="𠀀" * 4000))
    assert c["description"] == "𠀀" * 4000
    r = server.post("/v1/cases", h.case_body(description="𠀀" * 4001), headers=ZH)
    p = h.assert_problem(r, 422)
    assert "/description" in h.problem_pointers(p), p


def test_every_problem_type_in_the_source_has_texts():
    """A problem type written anywhere in src/ has a title and detail in
    both catalogues (else a Chinese reader would get English)."""
    src = "\n".join(p.read_text() for p in (REPO / "src").glob("*.c"))
    types = set(re.findall(r'ar_err_setk?\([^,]+,\s*[^,]+,\s*"([a-z-]+)"', src))
    types |= set(re.findall(r'problem\(r,\s*\d+,\s*"([a-z-]+)"', src))
    assert len(types) > 20, types
    for name in ("en", "zh-CN"):
        cat = json.loads((REPO / "i18n" / f"{name}.json").read_text())
        missing = [t for t in sorted(types)
                   if f"problem.{t}.title" not in cat or f"problem.{t}.detail" not in cat]
        assert not missing, (name, missing)


def test_every_rule_id_has_a_text():
    src = (REPO / "src" / "policy.c").read_text()
    ids = set(re.findall(r'"(R-[A-Z0-9-]+)"', src))
    assert len(ids) > 20, ids
    for name in ("en", "zh-CN"):
        cat = json.loads((REPO / "i18n" / f"{name}.json").read_text())
        assert not [i for i in sorted(ids) if f"rule.{i}" not in cat], name
