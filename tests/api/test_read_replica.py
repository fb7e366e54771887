"""Reads from a replica (ARBITER_READ_DATABASE_URL, issue 26).

Lists, the desk's queues and stats may run on a replica; a key that wrote
reads from the primary for ARBITER_READ_AFTER_WRITE_MS (read-your-writes);
a replica that cannot answer sends the read to the primary.

The "replica" here is a second, empty database: whatever a read returns
shows where it ran. (tests/ha runs the same setting on a streaming standby.)
"""
from __future__ import annotations

import time

import helpers as h
import promparse

WINDOW_MS = 1500


def reads(s: h.Server, target: str) -> float:
    r = s.get("/metrics", key=None)
    assert r.status == 200, r
    v = promparse.value(promparse.parse(r.raw), "arbiter_db_reads_total", {"target": target})
    return 0.0 if v is None else v


def ids(r: h.Response) -> set[str]:
    assert r.status == 200, r
    return {c["id"] for c in r.body["items"]}


def test_a_writer_reads_its_writes_and_others_read_the_replica(make_db, make_server):
    primary, replica = make_db(), make_db()
    s = make_server(primary.service_url, name="reads",
                    env={"ARBITER_READ_DATABASE_URL": replica.service_url,
                         "ARBITER_READ_AFTER_WRITE_MS": str(WINDOW_MS)})
    writer = primary.keys["frontend"]
    _, reader = primary.make_key("frontend", name="reader")
    shop = h.uniq("S-RR")

    created = s.post("/v1/cases", h.case_body(shop_id=shop), key=writer)
    assert created.status == 201, created
    cid = created.body["id"]
    t_write = time.monotonic()
    q = f"/v1/cases?shop_id={shop}"

    # the writer, inside its window: the primary, which has the case
    mine = s.get(q, key=writer)
    assert time.monotonic() - t_write < WINDOW_MS / 1000, "too slow to test inside the window"
    assert cid in ids(mine)
    # another key: the replica, which has nothing
    assert ids(s.get(q, key=reader)) == set()
    stats = s.get(f"/v1/stats?shop_id={shop}", key=reader)
    assert stats.status == 200, stats
    # a case by id is always read from the primary
    assert s.get(f"/v1/cases/{cid}", key=reader).status == 200
    assert reads(s, "replica") >= 2 and reads(s, "primary") >= 1

    # the writer's window over: its lists come from the replica too
    time.sleep(max(0.0, WINDOW_MS / 1000 - (time.monotonic() - t_write)) + 0.2)
    assert ids(s.get(q, key=writer)) == set()
    # a refused write still counts as a write (it may have written an expiry)
    bad = s.post(f"/v1/cases/{cid}/actions", {"action": "no-such-action"}, key=writer)
    assert 400 <= bad.status < 500, bad
    assert cid in ids(s.get(q, key=writer))


def test_a_replica_that_cannot_answer_sends_reads_to_the_primary(make_db, make_server):
    primary = make_db()
    dead = h.conninfo_replace(primary.service_url, host="127.0.0.1", port=str(h.free_port()))
    s = make_server(primary.service_url, name="reads-dead",
                    env={"ARBITER_READ_DATABASE_URL": dead})
    shop = h.uniq("S-RD")
    created = s.post("/v1/cases", h.case_body(shop_id=shop))
    assert created.status == 201, created
    _, reader = primary.make_key("frontend", name="reader")
    assert created.body["id"] in ids(s.get(f"/v1/cases?shop_id={shop}", key=reader))
    assert s.get("/v1/queues/near_deadline", key=primary.keys["agent"]).status == 200
    assert reads(s, "primary_fallback") >= 2
