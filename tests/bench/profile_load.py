"""The requests of one callgrind phase (tests/bench/callgrind.sh), sent one
at a time: create (a new case per request, with an Idempotency-Key), get
(the cases created, by id) or note (a note action on each, with If-Match).
Usage: profile_load.py URL FRONTEND_KEY AGENT_KEY N IDS_FILE; the phase
comes from PROFILE_PHASE. Fails on any non-2xx."""

import datetime as dt
import http.client
import json
import os
import sys
import urllib.parse
import uuid


def iso(days_ago: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def body(i: int) -> dict:
    tag = uuid.uuid4().hex[:12]
    return {
        "kind": "refund", "reason": "quality_defect",
        "description": f"The kettle leaks from the seam after the first boil ({tag}).",
        "order": {"id": f"prof-{tag}", "shop_id": f"prof-shop-{i % 50}",
                  "buyer_id": f"prof-buyer-{tag}", "sku": f"SKU-{tag}", "category": "kitchen",
                  "price_cents": 10000, "shipping_fee_cents": 800, "free_shipping": False,
                  "paid_at": iso(4), "promised_ship_by": iso(2), "shipped_at": iso(3),
                  "delivered_at": iso(1)},
        "evidence": [{"kind": "photo", "url": f"https://img.example.com/ev/{tag}.jpg",
                      "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
    }


def main() -> None:
    url, fe_key, ag_key, n, ids_file = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    phase = os.environ["PROFILE_PHASE"]
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    ids = []
    if phase != "create":
        ids = [line.split() for line in open(ids_file)]
    out = []
    for i in range(n):
        if phase == "create":
            hdrs = {"Authorization": f"Bearer {fe_key}", "Content-Type": "application/json",
                    "Idempotency-Key": uuid.uuid4().hex}
            conn.request("POST", "/v1/cases", json.dumps(body(i)), hdrs)
        elif phase == "get":
            conn.request("GET", f"/v1/cases/{ids[i % len(ids)][0]}",
                         headers={"Authorization": f"Bearer {ag_key}"})
        else:
            cid, ver = ids[i % len(ids)]
            hdrs = {"Authorization": f"Bearer {ag_key}", "Content-Type": "application/json",
                    "If-Match": f'"{ver}"'}
            conn.request("POST", f"/v1/cases/{cid}/actions",
                         json.dumps({"action": "note", "text": f"profile note {i}"}), hdrs)
        r = conn.getresponse()
        data = r.read()
        if r.status // 100 != 2:
            sys.exit(f"{phase} {i}: {r.status} {data[:300]!r}")
        if phase == "create":
            c = json.loads(data)
            out.append(f"{c['id']} {c['version']}")
    if phase == "create":
        with open(ids_file, "w") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
