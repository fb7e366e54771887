"""Black-box tests of issue 25's platform vocabulary: each platform preset
(deploy/policy/presets/) is a policy PUT /v1/policy accepts, and a return
case walked under it gets the preset's deadlines (merchant 48 h to handle
the request, buyer 7 days to ship back, merchant 10 days to confirm
receipt) while its platform_status speaks Taobao's and Pinduoduo's
vocabulary at each step.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import helpers as h

PRESETS = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "presets"
HOUR = h.dt.timedelta(hours=1)
DAY = h.dt.timedelta(days=1)


def due(case: dict, name: str) -> h.dt.datetime:
    found = [d for d in case["deadlines"] if d["name"] == name]
    assert len(found) == 1, (name, case["deadlines"])
    return h.parse_time(found[0]["due_at"])


def near(t: h.dt.datetime, want: h.dt.datetime) -> bool:
    # the deadline is armed by the database's clock during the request
    return abs((t - want).total_seconds()) < 120


@pytest.mark.parametrize("preset", ["taobao", "pinduoduo", "wechat-mini"])
def test_one_case_per_platform_preset(make_db, make_server, preset):
    doc = json.loads((PRESETS / f"{preset}.json").read_text())
    assert doc["durations"]["seller_response"] == "PT48H", doc["durations"]
    assert doc["durations"]["buyer_ship_back"] == "P7D", doc["durations"]
    assert doc["durations"]["seller_receipt"] == "P10D", doc["durations"]
    db = make_db()
    s = make_server(db.service_url, name=f"preset-{preset}", policy=h.DEFAULT_POLICY)
    doc = copy.deepcopy(doc)
    doc["version"] = h.uniq(doc["version"])
    r = s.request("PUT", "/v1/policy", body=doc, key=db.keys["admin"])
    assert r.status == 200 and r.body["version"] == doc["version"], r

    shop = h.uniq("pshop")
    _, seller = db.make_key("seller", shops=shop, name=f"preset-seller-{preset}")
    body = h.case_body(shop_id=shop, kind="return", reason="quality_defect",
                       description=h.uniq("质量问题，申请退货退款"))
    c = h.create_case(s, body)
    opened = h.parse_time(c["created_at"])
    assert c["policy_version"] == doc["version"], c
    assert c["state"] == "awaiting_seller", c
    assert c["platform_status"] == {"taobao": "WAIT_SELLER_AGREE", "pinduoduo": 3}, c
    assert near(due(c, "seller_response"), opened + 48 * HOUR), c["deadlines"]

    def act(key, action, **fields):
        r = s.post(f"/v1/cases/{c['id']}/actions", {"action": action, **fields}, key=key,
                   headers={"If-Match": f'"{c["version"]}"'})
        assert r.status == 200, (action, r)
        return r.body

    c = act(seller, "accept")
    assert c["state"] == "awaiting_buyer_return", c
    assert c["platform_status"] == {"taobao": "WAIT_BUYER_RETURN_GOODS", "pinduoduo": 7}, c
    assert near(due(c, "buyer_ship_back"), h.parse_time(c["updated_at"]) + 7 * DAY), c["deadlines"]

    c = act(db.keys["frontend"], "ship_back", carrier="顺丰速运", tracking_no="SF1234567890")
    assert c["state"] == "awaiting_seller_receipt", c
    assert c["platform_status"] == {"taobao": "WAIT_SELLER_CONFIRM_GOODS", "pinduoduo": 3}, c
    assert near(due(c, "seller_receipt"), h.parse_time(c["updated_at"]) + 10 * DAY), c["deadlines"]

    total = c["decision"]["refund"]["total_cents"]
    c = act(seller, "confirm_receipt", condition="as_sent")
    assert c["state"] == "refund_pending", c
    assert c["platform_status"] == {"taobao": "SUCCESS", "pinduoduo": 4}, c
    c = act(db.keys["payment"], "refund_executed", payment_ref=h.uniq("pay"))
    assert (c["state"], c["outcome"]) == ("refunded", "refunded"), c
    assert c["platform_status"] == {"taobao": "SUCCESS", "pinduoduo": 10}, c
    assert c["refund_cents"] == total, c

    # the same case read in Chinese: the same statuses, Chinese reasons
    g = s.get(f"/v1/cases/{c['id']}", headers={"Accept-Language": "zh-CN"})
    assert g.status == 200 and g.body["platform_status"] == c["platform_status"], g
    assert g.body["description"] == body["description"]


def test_complaints_have_no_platform_status(server):
    c = h.create_case(server, h.complaint_body())
    assert c["platform_status"] == {"taobao": None, "pinduoduo": None}, c
