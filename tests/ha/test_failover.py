"""arbiter through PostgreSQL failovers (issue 26).

A Patroni cluster (tests/ha/hacluster.py: 3 etcd, 1 primary + 2 standbys,
synchronous_mode) serves two lanes at once, each its own database and its
own arbiter process with the fast policy (deadlines in seconds, so expiries
fire throughout):

  direct   ARBITER_DATABASE_URL lists every node with
           target_session_attrs=read-write: libpq finds the primary
  pooled   pgbouncer (transaction mode) -> HAProxy (Patroni's /primary) ->
           the primary, with ARBITER_DB_PREPARED=false (unnamed statements)

Client threads per lane create refund cases and let a seller accept about
half of them, every request with an Idempotency-Key and retried with it on
503 or a lost connection. The primary's postmaster is killed (-9) twice:
Patroni promotes the synchronous standby, the old primary comes back as a
replica (rewound), the second kill fails over again. When Patroni finds no
standby it may promote at the instant of a kill and restarts the primary in
place, the kill is repeated (at most three times) and the report says why. Asserted on the last
primary, per lane: every 2xx is there, no case twice, no refund twice,
every deadline due fired exactly once, `arbiter verify` passes, and no
reply was anything but 2xx, 409/412 or 503 with Retry-After. Printed: time
from each kill to the first write, 503s, create rates before and after.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
import contract  # noqa: E402
import helpers as h  # noqa: E402

from hacluster import HaCluster  # noqa: E402

THREADS = int(os.environ.get("ARBITER_HA_THREADS", "3"))   # per lane
PHASE_S = float(os.environ.get("ARBITER_HA_PHASE", "8"))   # load before / after each kill
GIVE_UP_S = 60.0        # a request still failing after this is a failure
REJOIN_S = 150.0        # the old primary streaming again after its kill


@pytest.fixture(scope="module")
def arbiter_bin() -> str:
    b = os.environ.get("ARBITER_BIN")
    if not b or not os.access(b, os.X_OK):
        pytest.fail("ARBITER_BIN must name the built binary (run `make ha-test`)")
    return b


@pytest.fixture(scope="module")
def cluster():
    c = HaCluster(pgbouncer=True)
    try:
        c.start(timeout=150)
        yield c
    finally:
        c.stop(keep=bool(os.environ.get("ARBITER_KEEP_LOGS")))


class Lane:
    """One database and one arbiter process on it, and what its clients saw."""

    def __init__(self, name: str, cluster: HaCluster, binary: str, log_dir: Path,
                 pooled: bool):
        self.name = name
        self.db = h.TestDB(cluster.url(), prefix=f"arbiter_ha_{name}_").create()
        cluster.wait_everywhere(
            "SELECT count(*) / 3 FROM (SELECT rolname FROM pg_roles WHERE rolname IN"
            " ('arbiter', 'arbiter_owner') UNION ALL SELECT datname FROM pg_database"
            f" WHERE datname = {h.quote_literal(self.db.name)}) x;")
        self.db.migrate(binary)
        self.shop = h.uniq(f"ha-{name}")
        _, self.seller = self.db.make_key("seller", shops=self.shop, name=f"ha-seller-{name}")
        env = {"ARBITER_REQUEST_TIMEOUT": "5", "ARBITER_DB_POOL": "8"}
        url = self.db.service_url
        if pooled:
            url = cluster.bouncer_url(self.db.name, "arbiter")
            env["ARBITER_DB_PREPARED"] = "false"
        self.server = h.Server(binary, url, log_dir, name=f"ha-{name}", env=env)
        self.frontend = self.db.keys["frontend"]
        self.lock = threading.Lock()
        self.created: dict[str, str] = {}        # idempotency key -> case id (2xx)
        self.create_done: list[float] = []       # monotonic time of each 2xx create
        self.accepted: dict[str, int] = {}       # case id -> version after the acked accept
        self.attempt_ok: list[tuple[float, float]] = []  # (attempt start, end) of each 2xx write
        self.n503 = 0
        self.n_lost = 0                          # attempts whose connection failed or timed out
        self.bad: list[str] = []                 # replies the service must never give
        self.statuses: dict[int, int] = {}
        self.readyz: list[tuple[float, int]] = []
        self.late: dict[str, float] = {}         # case id -> when its accept got deadline-passed

    # ---- one request, retried with its Idempotency-Key ----
    def call(self, path: str, body: dict, key: str, headers: dict) -> h.Response | None:
        deadline = time.monotonic() + GIVE_UP_S
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                r = self.server.request("POST", path, body=body, key=key, headers=headers,
                                        timeout=10)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.n_lost += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            if r.status == 503:
                ra = r.headers.get("Retry-After")
                with self.lock:
                    self.n503 += 1
                    if not ra:
                        self.bad.append(f"503 without Retry-After: {r.body}")
                time.sleep(min(float(ra or 1), 0.3))
                continue
            ptype = r.body.get("type", "") if isinstance(r.body, dict) else ""
            if r.status == 409 and ptype.endswith("idempotency-in-flight"):
                # the first attempt's claim outlives its lost connection
                # until its lease ends
                time.sleep(0.3)
                continue
            if 200 <= r.status < 300:
                with self.lock:
                    self.attempt_ok.append((t0, time.monotonic()))
                return r
            if r.status not in (409, 412):
                with self.lock:
                    self.bad.append(f"{r.status} {path}: {r.body}")
            return r
        with self.lock:
            self.bad.append(f"gave up on {path} after {GIVE_UP_S}s")
        return None

    def client(self, stop: threading.Event, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            ikey = f"{self.name}-{n}-{i}-{h.uniq('k')}"
            # the order id from the key: random 32-bit ids (h.uniq) for
            # some 10,000 cases collide about once in 150 runs, which the
            # duplicate check below read as a retry that made two cases
            body = h.case_body(shop_id=self.shop, order_id=f"ord-{ikey}",
                               description=f"The kettle leaks from the seam ({ikey}).")
            body["order"]["sku"] = f"KETTLE-{ikey}"
            r = self.call("/v1/cases", body, self.frontend, {"Idempotency-Key": ikey})
            if r is None or r.status not in (200, 201):
                continue
            cid = r.body["id"]
            with self.lock:
                if self.created.get(ikey, cid) != cid:
                    self.bad.append(f"key {ikey} answered {self.created[ikey]} then {cid}")
                self.created[ikey] = cid
                self.create_done.append(time.monotonic())
            if i % 2:
                continue
            a = self.call(f"/v1/cases/{cid}/actions", {"action": "accept"}, self.seller,
                          {"If-Match": '"1"', "Idempotency-Key": f"acc-{ikey}"})
            if a is not None and a.status == 200:
                with self.lock:
                    self.accepted[cid] = a.body["version"]
            elif a is not None and a.status == 409 and \
                    str(a.body.get("type", "")).endswith("deadline-passed"):
                with self.lock:
                    self.late[cid] = time.monotonic()

    def poll_readyz(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                st = self.server.request("GET", "/readyz", key=None, timeout=8).status
            except (OSError, http.client.HTTPException):
                st = 0
            with self.lock:
                self.readyz.append((time.monotonic(), st))
            if st not in (200, 503):
                with self.lock:
                    self.bad.append(f"/readyz answered {st}")
            time.sleep(0.2)

    def rate(self, t0: float, t1: float) -> float:
        with self.lock:
            n = sum(1 for t in self.create_done if t0 <= t < t1)
        return n / (t1 - t0)

    def first_write_after(self, t: float) -> float | None:
        with self.lock:
            ends = [e for s, e in self.attempt_ok if s >= t]
        return min(ends) - t if ends else None

    def readyz_between(self, t0: float, t1: float, status: int) -> int:
        with self.lock:
            return sum(1 for t, st in self.readyz if t0 <= t < t1 and st == status)

    def late_between(self, t0: float, t1: float) -> int:
        with self.lock:
            return sum(1 for t in self.late.values() if t0 <= t < t1)


def rows(url: str, sql: str) -> list[list[str]]:
    out = h.psql(url, sql).stdout
    return [line.split("|") for line in out.splitlines() if line]


def check_lane(lane: Lane, binary: str) -> None:
    url = lane.db.admin_url
    assert not lane.bad, f"{lane.name}: replies outside 2xx/409/412/503+Retry-After: {lane.bad[:10]}"
    assert lane.created, f"{lane.name}: no create ever succeeded"

    # Every acknowledged create is there, under its key, once.
    have = {r[0]: (r[1], int(r[2])) for r in rows(
        url, "SELECT idem_key, id, count(*) OVER (PARTITION BY idem_key) FROM cases"
             " WHERE idem_key IS NOT NULL;")}
    lost = [k for k, cid in lane.created.items() if have.get(k, ("", 0))[0] != cid]
    assert not lost, f"{lane.name}: {len(lost)} acknowledged creates missing: {lost[:5]}"
    dups = rows(url, "SELECT shop_id, order_id, count(*), string_agg(idem_key, ' ') FROM cases"
                     " GROUP BY 1, 2 HAVING count(*) > 1;")
    assert not dups, f"{lane.name}: duplicate cases {dups[:5]}"

    # Every acknowledged accept is in its case's trail, once.
    acc = {r[0]: int(r[1]) for r in rows(
        url, "SELECT case_id, count(*) FROM case_events WHERE action = 'accept' GROUP BY 1;")}
    missing = [c for c in lane.accepted if acc.get(c) != 1]
    assert not missing, f"{lane.name}: acknowledged accepts not stored once: {missing[:5]}"

    # Wait until every deadline due by now has fired (the fast policy's
    # seller_response is 2 s; the scheduler resumes from the table).
    deadline = time.monotonic() + 45
    while True:
        due = int(h.psql_value(url, "SELECT count(*) FROM case_deadlines"
                                    " WHERE due_at < clock_timestamp() - interval '1 second';"))
        waiting = int(h.psql_value(url, "SELECT count(*) FROM cases WHERE state = 'awaiting_seller';"))
        if due == 0 and waiting == 0:
            break
        assert time.monotonic() < deadline, (
            f"{lane.name}: {due} deadlines overdue, {waiting} cases still awaiting the seller\n"
            + lane.server.log_tail(30))
        time.sleep(0.5)

    # Exactly once: each case has one seller_response outcome (the seller's
    # accept or its expiry, never both, never two) and at most one refund.
    per_case = rows(url, """
        SELECT c.id,
               count(*) FILTER (WHERE e.action = 'expire_seller_response'),
               count(*) FILTER (WHERE e.action = 'accept'),
               count(*) FILTER (WHERE e.action = 'refund.instructed')
          FROM cases c JOIN case_events e ON e.case_id = c.id
         WHERE c.shop_id = {shop} GROUP BY c.id;""".format(shop=h.quote_literal(lane.shop)))
    unseen = set(lane.created.values()) - {r[0] for r in per_case}
    assert not unseen, f"{lane.name}: acknowledged cases without events: {sorted(unseen)[:5]}"
    wrong = [r for r in per_case if int(r[1]) + int(r[2]) != 1 or int(r[3]) > 1]
    assert not wrong, f"{lane.name}: cases fired or refunded other than once: {wrong[:5]}"
    expired = sum(int(r[1]) for r in per_case)
    assert expired > 0, f"{lane.name}: no deadline fired"

    # The clock decides, during the switch too. The fast policy gives the
    # seller 2 s from the create's transaction start (the open event's `at`):
    # an accept was applied only if its write began before that instant, and
    # no expiry was written before its due_at (kept in the event to the ms).
    late_ok = rows(url, """
        SELECT a.case_id, a.at - o.at FROM case_events a
          JOIN case_events o ON o.case_id = a.case_id AND o.seq = 1
         WHERE a.action = 'accept' AND a.at >= o.at + interval '2 seconds';""")
    assert not late_ok, f"{lane.name}: accepts applied after the seller's deadline: {late_ok[:5]}"
    early = rows(url, """
        SELECT case_id, data->>'due_at', data->>'fired_at' FROM case_events
         WHERE action = 'expire_seller_response'
           AND (data->>'fired_at')::timestamptz
               < (data->>'due_at')::timestamptz - interval '1 millisecond';""")
    assert not early, f"{lane.name}: deadlines fired before their due_at: {early[:5]}"
    with lane.lock:
        late = dict(lane.late)
    fired = {r[0] for r in per_case if int(r[1]) == 1}
    unfired = [c for c in late if c not in fired]
    assert not unfired, f"{lane.name}: accepts refused as late whose deadline never fired: {unfired[:5]}"

    cp = h.run_bin(binary, ["verify"], database_url=url)
    assert cp.returncode == 0, f"{lane.name}: arbiter verify failed:\n{cp.stdout}\n{cp.stderr}"
    lane.expired = expired


def log_since(path: Path, at: int) -> str:
    with open(path, "rb") as f:
        f.seek(at)
        return f.read().decode(errors="replace")


def why_no_failover(path: Path, at: int) -> str:
    reasons = [ln[24:] for ln in log_since(path, at).splitlines()
               if any(k in ln for k in ("Member ", "Request failed", "exceeds", "Timeline "))]
    return "; ".join(reasons) or "(Patroni logged no reason)"


def wait_promotion(cluster: HaCluster, old: str, old_log: Path, at: int,
                   t_kill: float) -> str | None:
    """The node promoted after a kill of old's postmaster, or None when
    old's Patroni restarted it in place as the primary instead."""
    while True:
        new = cluster.primary()
        if new and new != old:
            return new
        if "starting as readonly because i had the session lock" in log_since(old_log, at):
            return None
        assert time.monotonic() - t_kill < 60, "no promotion within 60 s\n" + cluster.logs()
        time.sleep(0.1)


def test_two_failovers_under_load(arbiter_bin, cluster, tmp_path):
    log_dir = tmp_path
    lanes = [Lane("direct", cluster, arbiter_bin, log_dir, pooled=False),
             Lane("pooled", cluster, arbiter_bin, log_dir, pooled=True)]
    for ln in lanes:
        ln.server.start()
    stop = threading.Event()
    threads = []
    for ln in lanes:
        threads.append(threading.Thread(target=ln.poll_readyz, args=(stop,), daemon=True))
        threads += [threading.Thread(target=ln.client, args=(stop, n), daemon=True)
                    for n in range(THREADS)]
    for t in threads:
        t.start()
    report = []
    rounds = []
    restarts_in_place: list[str] = []
    try:
        first = None
        for rnd in (1, 2):
            old = cluster.primary()
            assert old, "no single primary before the kill"
            t_load = time.monotonic()
            if first:
                # fail back: the first primary, rewound and streaming again,
                # is made the one synchronous standby, which Patroni promotes
                others = [n.name for n in cluster.nodes if n.name not in (old, first)]
                for o in others:
                    cluster.set_nosync(o, True)
                cluster.wait_sync_standby(first)
            first = first or old
            time.sleep(PHASE_S)
            old_log = cluster.node(old).dir / "patroni.log"
            log_at = old_log.stat().st_size
            new, t_kill, kills = None, 0.0, 0
            while new is None:
                kill_at = old_log.stat().st_size
                t_kill = time.monotonic()
                cluster.kill_postmaster(old)
                kills += 1
                new = wait_promotion(cluster, old, old_log, kill_at, t_kill)
                if new is None:
                    # Patroni found no standby it may fail over to at that
                    # instant (it asks each with a 2 s timeout, which a
                    # loaded standby can miss) and restarted the primary in
                    # place: a disruption too, but not the one under test
                    assert kills < 3, f"{old} restarted in place {kills} times:\n" + cluster.logs()
                    restarts_in_place.append(f"round {rnd}: {old} restarted in place: "
                                             + why_no_failover(old_log, kill_at))
                    cluster.wait_healthy(90)
            t_promoted = time.monotonic() - t_kill
            # the old primary back as a replica of the new one (pg_rewind):
            # locally 9 to 23 s (30 rejoins in 15 runs, 5 of them beside a
            # busy loop and a disk writer), but one CI run still saw the
            # rewound node 'starting' after 90 s. The report prints the time;
            # a node that never streams still fails, with its PostgreSQL log.
            cluster.wait_healthy(REJOIN_S)
            t_rejoined = time.monotonic() - t_kill
            t_after = time.monotonic()
            time.sleep(PHASE_S)
            t_end = time.monotonic()
            with open(old_log, "rb") as f:
                f.seek(log_at)
                rewound = b"running pg_rewind" in f.read()
            rounds.append((rnd, old, new, t_promoted, t_rejoined, rewound))
            if rnd == 2:
                assert new == first, f"the second failover went to {new}, not back to {first}"
            for ln in lanes:
                fw = ln.first_write_after(t_kill)
                report.append(
                    f"round {rnd} [{ln.name}] kill -9 {old} -> {new} promoted in {t_promoted:.1f} s;"
                    f" first write {'%.1f s' % fw if fw is not None else 'none'} after the kill;"
                    f" {old} streaming again after {t_rejoined:.1f} s"
                    f" ({'rewound' if rewound else 'no rewind needed'});"
                    f" creates/s {ln.rate(t_load, t_kill):.1f} before,"
                    f" {ln.rate(t_after, t_end):.1f} after;"
                    f" /readyz 503 x{ln.readyz_between(t_kill, t_after, 503)};"
                    f" accepts judged late by the clock during the switch"
                    f" {ln.late_between(t_kill, t_after)}")
                assert fw is not None, f"{ln.name}: no write succeeded after the kill in round {rnd}"
                # /readyz back to 200 once the new primary writes
                assert ln.readyz_between(t_after, t_end, 200) > 0, \
                    f"{ln.name}: /readyz not 200 again after round {rnd}"
            # Direct lane: the kill leaves no writable primary for at least
            # Patroni's loop (loop_wait 1 s, and it took 2 s or more in every
            # run seen), while /readyz is polled every 0.2 s. The pooled
            # lane's check waits in pgbouncer's queue for a server instead,
            # so a 503 there depends on how long the switch takes.
            assert lanes[0].readyz_between(t_kill, t_kill + t_promoted, 503) > 0, \
                f"direct: /readyz never 503 between the kill and the promotion in round {rnd}"
    finally:
        stop.set()
        for t in threads:
            t.join(GIVE_UP_S + 15)
    for ln in lanes:
        report.append(f"[{ln.name}] {len(ln.created)} cases acked, {len(ln.accepted)} accepts acked,"
                      f" 503 replies {ln.n503}, lost connections {ln.n_lost},"
                      f" statuses {dict(sorted(ln.statuses.items()))}")
    print("\n" + "\n".join(report + restarts_in_place))
    for ln in lanes:
        assert ln.server.request("GET", "/readyz", key=None, timeout=5).status == 200
        check_lane(ln, arbiter_bin)
        print(f"[{ln.name}] checks passed: {ln.expired} seller deadlines fired once each")
    for ln in lanes:
        rc = ln.server.stop()
        assert rc == 0, f"{ln.name}: arbiter exited {rc}\n{ln.server.log_tail()}"
    assert not contract.violations(), contract.report()


def test_lists_read_from_a_standby(arbiter_bin, cluster, tmp_path):
    """ARBITER_READ_DATABASE_URL naming the standbys: another key's list
    runs there (and sees the case once the standby has replayed it); the
    writer's own list, inside its window, runs on the primary."""
    db = h.TestDB(cluster.url(), prefix="arbiter_ha_reads_").create()
    cluster.wait_everywhere(
        "SELECT count(*) FROM pg_database WHERE datname = " + h.quote_literal(db.name) + ";")
    db.migrate(arbiter_bin)
    _, reader = db.make_key("frontend", name="ha-reader")
    standbys = cluster.url(dbname=db.name, user="arbiter", attrs="standby")
    s = h.Server(arbiter_bin, db.service_url, tmp_path, name="ha-reads",
                 env={"ARBITER_READ_DATABASE_URL": standbys, "ARBITER_READ_AFTER_WRITE_MS": "60000"})
    s.start()
    try:
        shop = h.uniq("ha-reads")
        c = s.request("POST", "/v1/cases", body=h.case_body(shop_id=shop), key=db.keys["frontend"])
        assert c.status == 201, c
        q = f"/v1/cases?shop_id={shop}"
        mine = s.request("GET", q, key=db.keys["frontend"])
        assert mine.status == 200 and [x["id"] for x in mine.body["items"]] == [c.body["id"]], mine
        deadline = time.monotonic() + 15
        while True:
            theirs = s.request("GET", q, key=reader)
            assert theirs.status == 200, theirs
            if theirs.body["items"]:
                break
            assert time.monotonic() < deadline, "the standby never showed the case"
            time.sleep(0.2)
        on_standby = 0
        for n in cluster.nodes:
            if n.name == cluster.primary():
                continue
            on_standby += int(h.psql_value(cluster.node_url(n), (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = {d}"
                " AND application_name = 'arbiter';").format(d=h.quote_literal(db.name))))
        assert on_standby >= 1, "no arbiter connection on a standby"
        m = s.request("GET", "/metrics", key=None)
        assert 'arbiter_db_reads_total{target="replica"}' in m.raw.decode()
        assert 'arbiter_db_reads_total{target="primary"} 1' in m.raw.decode(), \
            "the writer's list did not run on the primary"
    finally:
        rc = s.stop()
    assert rc == 0, s.log_tail()
    print(f"\nreads from a standby: the reader's list showed the case; {on_standby}"
          " arbiter connection(s) on standbys")
