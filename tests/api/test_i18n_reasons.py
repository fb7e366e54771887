"""Black-box tests of issue 25's localised decision reasons that name their
numbers: each rule trace carries args (the numbers and names the rule
compared, amounts in fen), and a zh-CN reader's reason says the same days
and amounts (as ¥ with two decimals) as the English engine reason, with the
same rule ids and results. A decision stored before traces had args still
reads (the rule's general text).
"""
from __future__ import annotations

import re

import helpers as h

ZH = {"Accept-Language": "zh-CN"}


def yuan(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def rules(d: dict) -> dict:
    return {r["id"]: r for r in d["rules"]}


def read_both(server, case_id: str) -> tuple[dict, dict]:
    en = server.get(f"/v1/cases/{case_id}")
    zh = server.get(f"/v1/cases/{case_id}", headers=ZH)
    assert en.status == 200 and zh.status == 200, (en, zh)
    ed, zd = en.body["decision"], zh.body["decision"]
    assert [(r["id"], r["result"], r.get("args")) for r in ed["rules"]] == \
        [(r["id"], r["result"], r.get("args")) for r in zd["rules"]], (ed, zd)
    return rules(ed), rules(zd)


def late_return(days: int) -> dict:
    body = h.case_body(kind="return", reason="changed_mind",
                       description=h.uniq("changed my mind about the colour"))
    delivered = h.now_utc() - h.dt.timedelta(days=days, hours=1)
    body["order"]["delivered_at"] = h.fmt_time(delivered)
    body["order"]["shipped_at"] = h.fmt_time(delivered - h.dt.timedelta(days=2))
    body["order"]["paid_at"] = h.fmt_time(delivered - h.dt.timedelta(days=3))
    body.pop("evidence", None)
    return body


def test_outside_the_window_says_its_days_in_both_languages(server, db):
    c = h.create_case(server, late_return(9))
    assert c["decision"]["outcome"] == "ineligible", c["decision"]
    en, zh = read_both(server, c["id"])
    e, z = en["R-NOREASON-7D"], zh["R-NOREASON-7D"]
    assert e["result"] == "fail" and e["args"]["days"] == 9 and e["args"]["window_days"] == 7, e
    assert "9 days" in e["reason"] and "> 7 days" in e["reason"], e
    assert "签收后已过 9 天" in z["reason"] and "超过 7 天无理由退货期限" in z["reason"], z

    # stored before traces had args: the rule's general text, never a 500
    h.psql(db.admin_url,
           "UPDATE cases SET decision = jsonb_set(decision::jsonb, '{rules}', "
           "(SELECT jsonb_agg(r - 'args') FROM jsonb_array_elements(decision::jsonb->'rules') r)"
           f")::json WHERE id = '{c['id']}';")
    old = server.get(f"/v1/cases/{c['id']}", headers=ZH)
    assert old.status == 200, old
    z = rules(old.body["decision"])["R-NOREASON-7D"]
    assert "args" not in z and z["reason"] == "未通过：七天无理由退货须在签收后的规定期限内申请", z


def test_requested_amounts_in_yuan_in_both_languages(server):
    body = h.case_body(requested_cents=4550)
    c = h.create_case(server, body)
    most = c["decision"]["refund"]["max_cents"]
    assert c["decision"]["refund"]["total_cents"] == 4550 and most > 4550, c["decision"]
    en, zh = read_both(server, c["id"])
    for rid in ("R-REQUESTED", "R-PAY-REQUESTED"):
        e, z = en[rid], zh[rid]
        assert e["args"] == {"requested_cents": 4550, "max_cents": most}, e
        # the English engine text in fen, the Chinese one in yuan: the same numbers
        assert "4550" in e["reason"] and str(most) in e["reason"], e
        assert yuan(4550) in z["reason"] and yuan(most) in z["reason"], z
    assert "未超过可退最高" in zh["R-REQUESTED"]["reason"], zh["R-REQUESTED"]
    price, ship = body["order"]["price_cents"], body["order"]["shipping_fee_cents"]
    seller = zh["R-REFUND-SELLER"]
    assert yuan(price) in seller["reason"] and yuan(ship) in seller["reason"], seller
    assert yuan(4550) in seller["reason"], seller   # {total}: what is paid

    # above the most owed the policy refuses: the problem names both amounts in yuan
    over = h.case_body(requested_cents=most + 1)
    pe = server.post("/v1/cases", over)
    pz = server.post("/v1/cases", over, headers=ZH)
    assert pe.status == 422 and pz.status == 422, (pe, pz)
    fe = [e for e in pe.body["errors"] if e["pointer"] == "/requested_cents"]
    fz = [e for e in pz.body["errors"] if e["pointer"] == "/requested_cents"]
    assert fe and fz, (pe.body, pz.body)
    for f in (fe[0], fz[0]):
        assert yuan(most + 1) in f["message"] and yuan(most) in f["message"], f
    assert re.search(r"[\u4e00-\u9fff]", fz[0]["message"]), fz


def test_late_penalty_and_risk_counts_are_named(server):
    late = h.late_shipment_body()
    late["order"]["price_cents"] = 1290
    r = server.post("/v1/adjudications", late, headers=ZH)
    assert r.status == 200, r
    got = rules(r.body["decision"])
    pen = got["R-LATE-PENALTY"]
    assert pen["result"] == "fired", pen
    assert yuan(1290) in pen["reason"] and yuan(pen["args"]["penalty_cents"]) in pen["reason"], pen
    assert r.body["decision"]["refund"]["penalty_cents"] == pen["args"]["penalty_cents"], pen
    score = got["R-RISK-SCORE"]
    assert f"风险分 {score['args']['score']}" in score["reason"], score
    assert score["args"]["score"] == r.body["decision"]["risk"]["score"], score
    assert set(score["args"]) == {"score", "review_score"}, score


def test_repair_inside_and_outside_the_warranty(server):
    for days, when, text in ((30, "seller_pays", "在保修期内（剩余 "),
                             (-3, "expired", "保修期已过 3 天")):
        body = h.case_body(kind="repair", reason="quality_defect")
        body["order"]["warranty_until"] = h.fmt_time(h.now_utc().replace(microsecond=0)
                                                     + h.dt.timedelta(days=days))
        r = server.post("/v1/adjudications", body, headers=ZH)
        assert r.status == 200, r
        w = rules(r.body["decision"])["R-REPAIR-WARRANTY"]
        assert w["args"]["when"] == when and text in w["reason"], w
