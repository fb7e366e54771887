"""Black-box tests of issue 8: the process under load (SIGTERM, a PostgreSQL
restart) and scale-out (replicas on one database, one policy for all).

Every test runs its own server(s) on its own database (or its own throwaway
PostgreSQL cluster), so nothing another test does can interfere. The load
clients speak HTTP/1.1 over raw sockets (one connection per request,
`Connection: close`) so that every outcome is classified exactly:

  a complete reply   status line, headers and Content-Length bytes of body
                     (JSON that parses); checked against the OpenAPI contract
  no reply           refused, or closed/reset before a single byte came back
                     (the request may or may not have been processed)
  a cut reply        some bytes came back, then EOF or a reset before the
                     reply was complete: never allowed from a live server

Loops are bounded in count and in time; waits are liveness bounds many times
the expected time, never assertions of speed.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import contract
import helpers as h

FAST = h.FAST_POLICY        # every deadline in seconds (seller_response 2 s)
DAYS = h.DEFAULT_POLICY     # the shipped policy: nothing expires during a test
ACCEPT = "application/json, application/problem+json"


# ---------------------------------------------------------------------------
# a client that tells a complete reply from a cut one
# ---------------------------------------------------------------------------
class Exchange:
    """One request and its fate (see the module docstring)."""

    __slots__ = ("method", "path", "sent", "done", "status", "headers", "body", "raw",
                 "error", "cut", "violations", "tag", "target")

    def __init__(self, method: str, path: str):
        self.method, self.path = method, path
        self.sent = self.done = 0.0
        self.status: int | None = None     # set only for a complete reply
        self.headers = h.CIDict()
        self.body = None
        self.raw = b""
        self.error: str | None = None
        self.cut = False
        self.violations: list[str] = []
        self.tag = None
        self.target = None

    @property
    def refused(self) -> bool:
        return self.status is None and not self.cut and bool(self.error) \
            and self.error.startswith("connect:")

    @property
    def no_reply(self) -> bool:
        return self.status is None and not self.cut

    @property
    def problem_type(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("type"), str):
            return self.body["type"].rsplit(":", 1)[-1]
        return ""

    def __repr__(self):
        what = (f"{self.status}" if self.status is not None else
                "CUT" if self.cut else "no reply")
        return (f"<{self.method} {self.path} -> {what} t={self.sent:.3f}..{self.done:.3f}"
                f"{' ' + self.error if self.error else ''} {self.raw[:300]!r}>")


class _Garbled(Exception):
    pass


_STATUS_LINE = re.compile(r"^HTTP/1\.[01] (\d{3})(?: .*)?$")


def _parse_reply(buf: bytes, eof: bool):
    """(status, [(name, value)], body) once buf holds a complete final reply;
    None while it does not. Interim 1xx replies are skipped."""
    i = 0
    while True:
        end = buf.find(b"\r\n\r\n", i)
        if end < 0:
            if len(buf) - i > 64 * 1024:
                raise _Garbled("no end of the header block")
            return None
        lines = bytes(buf[i:end]).decode("latin-1").split("\r\n")
        m = _STATUS_LINE.match(lines[0])
        if not m:
            raise _Garbled(f"bad status line {lines[0]!r}")
        status = int(m.group(1))
        hdrs = []
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            if not sep or not k.strip():
                raise _Garbled(f"bad header line {ln!r}")
            hdrs.append((k.strip(), v.strip()))
        start = end + 4
        if 100 <= status < 200:
            i = start
            continue
        names = {k.lower(): v for k, v in hdrs}
        if "chunked" in names.get("transfer-encoding", "").lower():
            raise _Garbled("chunked replies are not expected from arbiter")
        if "content-length" in names:
            n = int(names["content-length"])
            if len(buf) - start >= n:
                return status, hdrs, bytes(buf[start:start + n])
            return None
        if status in (204, 304):
            return status, hdrs, b""
        return (status, hdrs, bytes(buf[start:])) if eof else None


def exchange(port: int, method: str, path: str, body=None, headers: dict | None = None,
             timeout: float = 30.0) -> Exchange:
    """One request on a fresh connection to 127.0.0.1:port; never raises on
    network trouble (see Exchange)."""
    x = Exchange(method, path)
    payload = json.dumps(body).encode() if body is not None else None
    hdrs = {"Host": f"127.0.0.1:{port}", "Accept": ACCEPT, "Connection": "close"}
    if payload is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    if payload is not None or method in ("POST", "PUT"):
        hdrs["Content-Length"] = str(len(payload or b""))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    data = (head + "\r\n").encode() + (payload or b"")
    buf = bytearray()
    parsed = None
    x.sent = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        x.error = f"connect: {e!r}"
        x.done = time.monotonic()
        return x
    try:
        try:
            sock.sendall(data)
        except OSError as e:
            x.error = f"send: {e!r}"      # a reply may still be readable
        while True:
            try:
                parsed = _parse_reply(buf, eof=False)
            except _Garbled as e:
                x.error = f"garbled: {e}"
                break
            if parsed:
                break
            try:
                chunk = sock.recv(65536)
            except OSError as e:
                x.error = (x.error + "; " if x.error else "") + f"recv: {e!r}"
                break
            if not chunk:
                try:
                    parsed = _parse_reply(buf, eof=True)
                except _Garbled as e:
                    x.error = f"garbled: {e}"
                if not parsed and not x.error:
                    x.error = "closed before the reply was complete" if buf else \
                        "closed without a reply"
                break
            buf += chunk
    finally:
        sock.close()
    x.done = time.monotonic()
    x.raw = bytes(buf)
    if not parsed:
        x.cut = len(buf) > 0
        return x
    return _complete(x, parsed[0], parsed[1], parsed[2], hdrs, body)


def _complete(x: Exchange, status: int, rh, rbody: bytes, req_headers: dict,
              req_body) -> Exchange:
    """Fills x from a complete reply: a JSON body must parse; the exchange
    is checked against the OpenAPI contract."""
    x.headers = h.CIDict(rh)
    ct = (x.headers.get("content-type") or "").lower()
    x.body = rbody.decode("utf-8", "replace")
    if "json" in ct and rbody:
        try:
            x.body = json.loads(rbody)
        except ValueError:
            x.cut, x.error = True, "unparseable JSON body"
            return x
    x.status = status
    x.violations = contract.record(x.method, x.path, req_headers, req_body, status,
                                   x.headers, x.body)
    return x


class SlowUpload:
    """A POST whose body is held back: begin() sends the headers with
    `Expect: 100-continue` and returns once the server has answered
    `100 Continue`, i.e. once the request is in the handler's hands (in
    flight); finish() sends the body and reads the reply."""

    def __init__(self, port: int, path: str, body: dict, headers: dict):
        self.port, self.path = port, path
        self.payload = json.dumps(body).encode()
        self.headers = {"Host": f"127.0.0.1:{port}", "Accept": ACCEPT, "Connection": "close",
                        "Content-Type": "application/json",
                        "Content-Length": str(len(self.payload)),
                        "Expect": "100-continue", **headers}
        self.body = body
        self.sock: socket.socket | None = None

    def begin(self, timeout: float = 20.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        head = f"POST {self.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in self.headers.items()) + "\r\n"
        self.sock.sendall(head.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before 100 Continue: {got!r}"
            got += chunk
        assert got.startswith(b"HTTP/1.1 100"), f"expected 100 Continue, got {got!r}"
        assert got.endswith(b"\r\n\r\n"), f"more than 100 Continue came: {got!r}"

    def finish(self) -> Exchange:
        x = Exchange("POST", self.path)
        x.sent = time.monotonic()
        buf = bytearray()
        parsed = None
        try:
            self.sock.sendall(self.payload)
            while True:
                parsed = _parse_reply(buf, eof=False)
                if parsed:
                    break
                chunk = self.sock.recv(65536)
                if not chunk:
                    parsed = _parse_reply(buf, eof=True)
                    break
                buf += chunk
        except (OSError, _Garbled) as e:
            x.error = repr(e)
        finally:
            self.sock.close()
        x.done = time.monotonic()
        x.raw = bytes(buf)
        if not parsed:
            x.cut = len(buf) > 0
            return x
        status, rh, rbody = parsed
        x.headers = h.CIDict(rh)
        try:
            x.body = json.loads(rbody)
        except ValueError:
            x.cut, x.error = True, "unparseable JSON body"
            return x
        x.status = status
        x.violations = contract.record("POST", self.path, self.headers, self.body, status,
                                       x.headers, x.body)
        return x


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def fresh_body(shop_id: str | None = None, **top) -> dict:
    """A plain seller-review refund case (quality defect with a photo,
    delivered yesterday) whose description, buyer, order and SKU are its own,
    so that no risk or batch rule links it to another case."""
    tag = h.uniq("t")
    b = h.case_body(shop_id=shop_id, description=f"The kettle leaks from the seam ({tag}).")
    b["order"]["sku"] = f"KETTLE-{tag}"
    b.update(top)
    return b


def auth(key: str, **more) -> dict:
    return {"Authorization": "Bearer " + key, **more}


def rows(url: str, sql: str) -> list[list[str]]:
    out = h.psql(url, sql).stdout
    return [line.split("|") for line in out.splitlines() if line]


def wait_for(pred, timeout: float, what: str, interval: float = 0.1, servers=()):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            tails = "\n".join(s.log_tail(20) for s in servers)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"last: {last!r}\n{tails}")
        time.sleep(interval)


def wait_exit(s: h.Server, timeout: float) -> int:
    try:
        return s.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        s.proc.wait()
        raise AssertionError(f"{s.name} did not exit within {timeout}s of SIGTERM\n"
                             + s.log_tail())


def verify_ok(arbiter_bin: str, url: str) -> None:
    cp = h.run_bin(arbiter_bin, ["verify"], database_url=url)
    assert cp.returncode == 0, f"arbiter verify failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}"


# seq of every case's events is 1..n without a gap or a repeat
SEQ_GAPS_SQL = """
SELECT case_id, count(*), min(seq), max(seq), count(DISTINCT seq) FROM case_events
 GROUP BY case_id
HAVING min(seq) <> 1 OR max(seq) <> count(*) OR count(DISTINCT seq) <> count(*);
"""

DUPLICATE_ORDERS_SQL = "SELECT order_id, count(*) FROM cases GROUP BY order_id HAVING count(*) > 1;"

# one row per case: order, id, state, version, events, open events at seq 1, deadlines
CASES_SQL = """
SELECT c.order_id, c.id, c.state, c.version,
       (SELECT count(*) FROM case_events e WHERE e.case_id = c.id),
       (SELECT count(*) FROM case_events e WHERE e.case_id = c.id AND e.seq = 1
                                            AND e.action = 'open'),
       coalesce((SELECT string_agg(d.name, ',' ORDER BY d.name) FROM case_deadlines d
                  WHERE d.case_id = c.id), '')
  FROM cases c;
"""


def assert_db_consistent(url: str) -> None:
    gaps = rows(url, SEQ_GAPS_SQL)
    assert not gaps, f"event seq not 1..n (case, n, min, max, distinct): {gaps[:10]}"
    dups = rows(url, DUPLICATE_ORDERS_SQL)
    assert not dups, f"orders with more than one case: {dups[:10]}"


def cases_by_order(url: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r in rows(url, CASES_SQL):
        out.setdefault(r[0], []).append(r)
    return out


def assert_fresh_case_row(r: list[str]) -> None:
    """A case just opened under the days-long policy: its open event (seq 1)
    and nothing else, its seller_response deadline, awaiting the seller."""
    order, cid, state, version, n_ev, n_open, deadlines = r
    assert (state, version, n_ev, n_open, deadlines) == \
        ("awaiting_seller", "1", "1", "1", "seller_response"), r


def assert_no_cuts(xs: list[Exchange], what: str) -> None:
    cuts = [x for x in xs if x.cut]
    assert not cuts, f"{len(cuts)} {what} replies were cut mid-way: {cuts[:5]}"
    bad = [v for x in xs for v in x.violations]
    assert not bad, f"{what}: replies outside the OpenAPI contract: {bad[:5]}"


def assert_unavailable(x: Exchange) -> None:
    """x is a 503 problem+json with a usable Retry-After."""
    assert x.status == 503, x
    assert x.headers.get("content-type", "").startswith("application/problem+json"), x
    assert isinstance(x.body, dict) and x.body.get("status") == 503, x
    ra = (x.headers.get("retry-after") or "").strip()
    assert re.fullmatch(r"\d+", ra) or ra.endswith("GMT"), x


# ---------------------------------------------------------------------------
# 1. SIGTERM under load
# ---------------------------------------------------------------------------
def refused(probe: tuple) -> bool:
    return probe[2] is None and "ConnectionRefusedError" in str(probe[4])


class ReadyProbe(threading.Thread):
    """GET /readyz every 20 ms on one keep-alive connection (a new one after
    an error); records (sent, done, status or None, Retry-After, detail)."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.probes: list[tuple] = []
        self.cuts: list[str] = []

    def run(self):
        conn = None
        for _ in range(20000):
            if self.stop.is_set():
                break
            t0 = time.monotonic()
            got_status = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz", headers={"Accept": ACCEPT})
                r = conn.getresponse()
                got_status = True
                data = r.read()
                body = json.loads(data) if data else None
                self.probes.append((t0, time.monotonic(), r.status, r.getheader("Retry-After"),
                                    body))
                contract.record("GET", "/readyz", {"Accept": ACCEPT}, None, r.status,
                                h.CIDict(r.getheaders()), body)
            except (OSError, http.client.HTTPException, ValueError) as e:
                if got_status:
                    self.cuts.append(repr(e))
                self.probes.append((t0, time.monotonic(), None, None, repr(e)))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.02)
        if conn is not None:
            conn.close()


@pytest.mark.parametrize("hold", [True, False], ids=["drain-held-by-a-slow-upload", "plain"])
def test_sigterm_under_load_cuts_nothing_and_loses_nothing(arbiter_bin, make_db, make_server,
                                                           hold):
    """held: a request in flight across the signal (its body held back)
    keeps the process draining for a moment; plain: nothing holds it."""
    db = make_db()
    s = make_server(db.service_url, name="ops-term", policy=DAYS)
    key = db.keys["frontend"]
    port = s.port
    stop = threading.Event()
    posts: list[Exchange] = []      # list.append is atomic
    started = time.monotonic()

    def worker():
        for _ in range(3000):
            if stop.is_set():
                break
            body = fresh_body()
            x = exchange(port, "POST", "/v1/cases", body,
                         auth(key, **{"Idempotency-Key": h.uniq("ik")}), timeout=30)
            x.tag = body["order"]["id"]
            posts.append(x)
            if x.no_reply:
                time.sleep(0.02)    # refused after the exit: do not spin

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    probe = ReadyProbe(port, stop)
    for t in workers + [probe]:
        t.start()
    try:
        wait_for(lambda: sum(1 for x in posts if x.status == 201) >= 40
                 and time.monotonic() - started >= 1.0, 60,
                 "40 acknowledged cases and a second of load", servers=[s])
        assert any(p[2] == 200 for p in probe.probes), probe.probes[:5]
        slow = None
        if hold:
            slow = SlowUpload(port, "/v1/cases", fresh_body(),
                              auth(key, **{"Idempotency-Key": h.uniq("ik")}))
            slow.begin()
        t_sig = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        slow_x = None
        if hold:
            # the held request keeps the process draining: readyz says so
            # (or the listening socket refuses a new probe connection)
            wait_for(lambda: any(p[1] >= t_sig and (p[2] == 503 or refused(p))
                                 for p in probe.probes), 10,
                     "/readyz to answer 503 (or refuse) while draining", servers=[s])
            time.sleep(0.5)
            assert s.alive(), "exited with a request still in flight\n" + s.log_tail()
            t_release = time.monotonic()
            slow_x = slow.finish()
        rc = wait_exit(s, 15)
        t_exit = time.monotonic()
    finally:
        stop.set()
        for t in workers + [probe]:
            t.join(60)
    assert not any(t.is_alive() for t in workers + [probe]), "a client thread hangs"
    assert rc == 0, f"exit {rc} on SIGTERM under load\n{s.log_tail()}"

    # no reply was cut; complete replies are 201 (or a 503 problem)
    assert_no_cuts(posts, "POST /v1/cases")
    assert not probe.cuts, f"/readyz replies cut mid-way: {probe.cuts[:5]}"
    for x in posts:
        if x.status is not None and x.status != 201:
            assert_unavailable(x)
    if hold:
        assert slow_x.status == 201, f"the request in flight at SIGTERM: {slow_x!r}"
        posts.append(slow_x)
        slow_x.tag = slow.body["order"]["id"]

    # /readyz: 503 (with Retry-After) or no connection once draining; never
    # ready again after the first sign of draining; refused once exited
    last = exchange(port, "GET", "/readyz", timeout=5)
    assert last.refused, f"/readyz after the exit: {last!r}"
    after = sorted((p for p in probe.probes if p[1] >= t_sig), key=lambda p: p[0])
    after.append((last.sent, last.done, None, None, last.error))
    draining = [p for p in after if p[2] != 200]
    assert draining, f"no /readyz probe after SIGTERM saw the drain: {after[:5]}"
    first = draining[0][0]
    assert not [p for p in after if p[0] > first and p[2] == 200], after
    for p in after:
        if p[2] is not None and p[2] != 200:
            assert p[2] == 503 and p[3], p
    if hold:
        assert any(p[2] == 503 or refused(p) for p in after if p[1] < t_release), after[:10]

    # the database: every acknowledged case once; an unacknowledged one only
    # from a request that may have been taken before the drain showed, whole
    url = db.admin_url
    assert_db_consistent(url)
    by_order = cases_by_order(url)
    acked = {x.tag: x.body["id"] for x in posts if x.status == 201}
    for order, cid in acked.items():
        got = by_order.get(order, [])
        assert [r[1] for r in got] == [cid], (order, cid, got)
    signs = [p[1] for p in after if p[2] != 200] + \
            [x.done for x in posts if x.refused and x.sent >= t_sig] + [t_exit]
    drain_seen = min(signs)
    by_tag = {x.tag: x for x in posts}
    extra = []
    for order, got in by_order.items():
        for r in got:
            assert_fresh_case_row(r)
        if order in acked:
            continue
        x = by_tag.get(order)
        assert x is not None, f"a case nobody asked for: {got}"
        assert x.no_reply and x.sent < drain_seen, \
            f"case {got} exists but its request was answered {x!r} (drain seen at {drain_seen:.3f})"
        extra.append(x)
    in_flight = [x for x in posts if x.no_reply and x.sent < t_sig]
    print(f"\nSIGTERM ({'held' if hold else 'plain'}): {len(posts)} POSTs, {len(acked)} "
          f"acknowledged, {len(in_flight)} in flight at the signal without a reply, "
          f"{len(extra)} of them committed; {sum(1 for x in posts if x.refused)} refused; "
          f"exit {t_exit - t_sig:.2f}s after the signal")
    verify_ok(arbiter_bin, db.service_url)


class Draining:
    """A server held in its drain: a POST whose body is held back is in
    flight, a kept-alive connection was opened before the signal, SIGTERM
    is sent, and /readyz on that connection has answered 503 (or closed the
    connection). .ready_reply is that reply (http.client.HTTPResponse); .end()
    sends the held body and returns (its Exchange, the exit code)."""

    def __init__(self, db: h.TestDB, s: h.Server):
        self.s = s
        self.slow = SlowUpload(s.port, "/v1/cases", fresh_body(),
                               auth(db.keys["frontend"], **{"Idempotency-Key": h.uniq("ik")}))
        self.slow.begin()
        self.conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        r = self._readyz()
        assert r.status == 200, r.status
        s.proc.send_signal(signal.SIGTERM)
        for _ in range(200):
            r = self._readyz()
            if r.status == 503 or r.will_close:     # draining (or shedding the connection)
                break
            time.sleep(0.05)
        assert r.status == 503 or r.will_close, (r.status, r.getheaders())
        self.ready_reply = r

    def _readyz(self):
        self.conn.request("GET", "/readyz", headers={"Accept": ACCEPT})
        r = self.conn.getresponse()
        r.read()
        return r

    def end(self) -> tuple[Exchange, int]:
        self.conn.close()
        done = self.slow.finish()
        return done, wait_exit(self.s, 15)


def test_new_connections_while_draining_are_refused_or_answered(make_db, make_server):
    """While a request in flight keeps the process draining, a new connection
    is refused at once (or answered 503): a load balancer or probe is never
    left waiting on a process that will not serve it."""
    db = make_db()
    s = make_server(db.service_url, name="ops-drain", policy=DAYS)
    d = Draining(db, s)
    try:
        x = exchange(s.port, "GET", "/readyz", timeout=3)
        assert s.alive(), "the held request did not keep the process draining"
        assert x.refused or x.status == 503, x
    finally:
        done, rc = d.end()
    assert done.status == 201, done
    assert rc == 0


def test_replies_while_draining_close_kept_alive_connections(make_db, make_server):
    """A reply sent while draining tells a kept-alive client to go
    (`Connection: close`, RFC 9112 section 9.6), so that no new request
    arrives on an old connection while the process is stopping."""
    db = make_db()
    s = make_server(db.service_url, name="ops-drain-ka", policy=DAYS)
    d = Draining(db, s)
    try:
        assert (d.ready_reply.getheader("Connection") or "").lower() == "close", \
            d.ready_reply.getheaders()
    finally:
        done, rc = d.end()
    assert done.status == 201, done
    assert rc == 0


# ---------------------------------------------------------------------------
# 2. PostgreSQL restarted under load
# ---------------------------------------------------------------------------
def test_postgres_restart_under_load(arbiter_bin, make_server):
    cl = h.PgCluster()
    try:
        cl.start()
        url = cl.url()
        keys = cl.migrate(arbiter_bin)
        # the idempotency lease is 2 x ARBITER_REQUEST_TIMEOUT: a claim left
        # by a request the outage cut short is taken over after 10 s
        s = make_server(url, name="ops-pgrestart", policy=DAYS,
                        env={"ARBITER_REQUEST_TIMEOUT": "5"})
        _run_pg_restart(arbiter_bin, cl, url, keys, s)
    finally:
        cl.destroy()


def _run_pg_restart(arbiter_bin, cl: h.PgCluster, url: str, keys: dict, s: h.Server):
    port = s.port
    key = keys["frontend"]
    stop = threading.Event()
    hard_end = time.monotonic() + 150        # no loop outlives this
    log: list[Exchange] = []                  # every exchange
    creates: list[dict] = []                  # {order, ik, final: Exchange|None, tries}
    acked: list[dict] = []
    lock = threading.Lock()
    unexpected: list[Exchange] = []

    def create_one():
        body = fresh_body()
        op = {"order": body["order"]["id"], "ik": h.uniq("ik"), "final": None, "tries": 0}
        with lock:
            creates.append(op)
        # retried with the same body and key until acknowledged (a client's
        # duty after a 503): the case must exist exactly once in the end
        while time.monotonic() < hard_end:
            x = exchange(port, "POST", "/v1/cases", body,
                         auth(key, **{"Idempotency-Key": op["ik"]}), timeout=30)
            x.tag = "create"
            log.append(x)
            op["tries"] += 1
            if x.status == 201:
                op["final"] = x
                with lock:
                    acked.append(x.body)
                return
            if x.status == 503:
                time.sleep(0.1)
            elif x.status == 409 and x.problem_type == "idempotency-in-flight" \
                    and op["tries"] > 1:
                time.sleep(0.3)     # a claim left by an earlier try; its lease ends
            else:
                unexpected.append(x)
                return

    def read_one(i: int):
        with lock:
            c = acked[i % len(acked)] if acked else None
        path = ("/readyz", "/v1/cases?limit=5",
                f"/v1/cases/{c['id']}" if c else "/v1/cases?limit=1")[i % 3]
        x = exchange(port, "GET", path, headers=auth(key), timeout=30)
        x.tag = "read"
        log.append(x)
        if x.status not in (200, 503):
            unexpected.append(x)
        elif x.status == 503:
            time.sleep(0.1)

    def worker(w: int):
        for i in range(5000):
            if stop.is_set() or time.monotonic() >= hard_end:
                break
            if (i + w) % 2 == 0:
                create_one()
            else:
                read_one(i * 7 + w)

    workers = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(6)]
    for t in workers:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 20, 60, "20 cases before the restart", servers=[s])
        time.sleep(1.0)
        cl.stop()
        t_stop1 = time.monotonic()
        time.sleep(2.0)
        t_start0 = time.monotonic()
        cl.start()
        t_start1 = time.monotonic()
        # the service finds the database again by itself
        wait_for(lambda: any(x.status == 201 and x.sent >= t_start1 for x in log), 20,
                 "a 201 after PostgreSQL came back", servers=[s])
        time.sleep(1.0)
        assert s.alive(), "the server died\n" + s.log_tail()
    finally:
        stop.set()
        for t in workers:
            t.join(max(1.0, hard_end - time.monotonic() + 10))
    assert not any(t.is_alive() for t in workers), "a client thread hangs"

    assert not unexpected, f"unexpected replies: {unexpected[:5]}"
    assert_no_cuts(log, "load")
    errors = [x for x in log if x.no_reply]
    assert not errors, f"requests without a reply from a live server: {errors[:5]}"
    assert not [x for x in log if x.status is not None and x.status >= 500
                and x.status != 503], "5xx other than 503"
    for x in log:
        if x.status == 503:
            assert_unavailable(x)
    outage = [x for x in log if x.sent >= t_stop1 and x.done <= t_start0]
    assert outage, "no request was made while PostgreSQL was down"
    for x in outage:
        assert_unavailable(x)
    assert any(x.path == "/v1/cases" and x.method == "POST" for x in outage)
    n503 = sum(1 for x in log if x.status == 503)
    after = [x for x in log if x.sent >= t_start1 and x.status == 201]

    # every create was acknowledged in the end, and exists exactly once
    missing = [op for op in creates if op["final"] is None]
    assert not missing, f"creates never acknowledged: {missing[:5]}"
    db_url = h.conninfo_replace(cl.admin_url(), dbname="arbiter")
    assert_db_consistent(db_url)
    by_order = cases_by_order(db_url)
    for op in creates:
        got = by_order.get(op["order"], [])
        assert [r[1] for r in got] == [op["final"].body["id"]], (op, got)
        assert_fresh_case_row(got[0])
    assert set(by_order) == {op["order"] for op in creates}, "cases nobody asked for"
    replays = sum(1 for op in creates if op["final"].headers.get("Idempotent-Replayed"))
    retried = sum(1 for op in creates if op["tries"] > 1)
    print(f"\nPostgreSQL restart: {len(log)} requests, {len(creates)} cases, {n503} x 503 "
          f"({len(outage)} while down {t_start0 - t_stop1:.1f}s), {retried} creates retried, "
          f"{replays} answered by replay; first 201 "
          f"{min(x.done for x in after) - t_start1:.2f}s after the start")
    rc = s.stop()
    assert rc == 0, f"exit {rc} on SIGTERM after a database restart\n{s.log_tail()}"
    verify_ok(arbiter_bin, url)


# ---------------------------------------------------------------------------
# 3. three replicas on one database, one killed with -9 mid-load
# ---------------------------------------------------------------------------
class Fleet:
    """A round-robin client over replicas: a replica that fails to answer is
    taken as dead and skipped from then on; an operation is retried on the
    next live replica with the same Idempotency-Key."""

    def __init__(self, reps: list[h.Server]):
        self.reps = reps
        self.dead: set[int] = set()
        self.lock = threading.Lock()
        self.log: list[Exchange] = []

    def live(self, avoid: h.Server | None = None) -> list[h.Server]:
        with self.lock:
            alive = [r for r in self.reps if r.port not in self.dead]
        others = [r for r in alive if r is not avoid]
        return others or alive

    def call(self, start: int, method: str, path: str, body, headers: dict,
             avoid: h.Server | None = None, until: float = 0.0) -> tuple[h.Server, Exchange, int]:
        """-> (replica that answered, its reply, failed tries before it)."""
        failed = 0
        i = start
        while True:
            cands = self.live(avoid)
            assert cands, "no replica left"
            r = cands[i % len(cands)]
            x = exchange(r.port, method, path, body, headers, timeout=30)
            x.target = r.name
            self.log.append(x)
            if x.status is None:
                with self.lock:
                    self.dead.add(r.port)
                failed += 1
                i += 1
            elif (x.status == 503 or (x.status == 409 and x.problem_type == "idempotency-in-flight"
                                      and failed)) and time.monotonic() < until:
                time.sleep(0.3)
            else:
                return r, x, failed


def test_three_replicas_one_database_kill9_mid_load(arbiter_bin, make_db, make_server):
    db = make_db()
    env = {"ARBITER_POLICY_FOLLOW": "true", "ARBITER_REQUEST_TIMEOUT": "5"}
    reps = [make_server(db.service_url, name=f"ops-rep{i}", policy=FAST, env=env)
            for i in range(3)]
    assert len({r.port for r in reps}) == 3
    shop = h.uniq("opsshop")
    _, seller = db.make_key("seller", shops=shop, name="ops-seller")
    buyer = db.keys["frontend"]
    fleet = Fleet(reps)
    victim = reps[1]
    n = 300
    nxt = iter(range(n))
    lock = threading.Lock()
    ops: dict[int, dict] = {}
    done_creates = [0]
    killed = threading.Event()
    hard_end = time.monotonic() + 240

    def one(i: int):
        body = fresh_body(shop)
        op = {"i": i, "order": body["order"]["id"], "case": None, "creator": None,
              "create_failed": 0, "accept": None, "acceptor": None, "accept_failed": 0}
        ops[i] = op
        r, x, failed = fleet.call(i, "POST", "/v1/cases", body,
                                  auth(buyer, **{"Idempotency-Key": h.uniq("ik")}),
                                  until=hard_end)
        op["create_failed"] = failed
        op["creator"] = r.name
        assert x.status == 201, x
        op["case"] = x.body
        with lock:
            done_creates[0] += 1
        if i % 3 == 0:
            # the seller answers at once, through another replica
            r2, y, failed = fleet.call(i + 1, "POST", f"/v1/cases/{x.body['id']}/actions",
                                       {"action": "accept"},
                                       auth(seller, **{"Idempotency-Key": h.uniq("ik"),
                                                       "If-Match": '"1"'}),
                                       avoid=r, until=hard_end)
            op["accept"], op["acceptor"], op["accept_failed"] = y, r2.name, failed
            assert r2 is not r, (r.name, r2.name)

    errors: list[BaseException] = []

    def worker():
        try:
            while time.monotonic() < hard_end:
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                one(i)
        except BaseException as e:      # surfaced below
            errors.append(e)

    def killer():
        while not killed.is_set() and time.monotonic() < hard_end:
            if done_creates[0] >= n // 2:
                victim.kill9()
                killed.set()
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    kt = threading.Thread(target=killer, daemon=True)
    for t in threads + [kt]:
        t.start()
    for t in threads + [kt]:
        t.join(max(1.0, hard_end - time.monotonic()))
    assert not any(t.is_alive() for t in threads + [kt]), "a client thread hangs"
    if errors:
        raise errors[0]
    assert killed.is_set(), "the victim was never killed"
    assert len(ops) == n and all(op["case"] for op in ops.values())
    survivors = [r for r in reps if r is not victim]
    assert all(r.alive() for r in survivors), [r.log_tail(20) for r in survivors]

    # only the victim ever failed to answer, and no live replica cut a reply
    bad = [x for x in fleet.log if (x.status is None) and x.target != victim.name]
    assert not bad, f"a live replica failed to answer: {bad[:5]}"
    assert_no_cuts([x for x in fleet.log if x.target != victim.name], "live replica")
    assert not [v for x in fleet.log for v in x.violations], "contract violations"
    assert {op["creator"] for op in ops.values()} == {r.name for r in reps}

    # every seller_response deadline is fired (or cancelled by the accept)
    url = db.admin_url
    pending_sql = "SELECT count(*) FROM case_deadlines WHERE name = 'seller_response';"
    progress = {"n": None, "t": time.monotonic()}

    def drained():
        c = int(h.psql_value(url, pending_sql))
        if c != progress["n"]:
            progress["n"], progress["t"] = c, time.monotonic()
        assert time.monotonic() - progress["t"] < 30, \
            f"the replicas stalled with {c} seller_response deadlines pending"
        return c == 0
    wait_for(drained, 120, "every seller_response deadline to go", interval=0.25,
             servers=survivors)
    time.sleep(1.5)      # more than a poll: nothing fires a second time

    sql = """
    SELECT c.order_id, c.id, c.state, c.version,
           count(e.seq) FILTER (WHERE e.action = 'expire_seller_response'),
           count(e.seq) FILTER (WHERE left(e.action, 7) = 'expire_'),
           count(e.seq) FILTER (WHERE e.action = 'refund.instructed'),
           count(e.seq) FILTER (WHERE e.action = 'refund.instructed'
                                  AND e.actor_role = 'system'),
           count(e.seq) FILTER (WHERE e.action = 'accept'),
           coalesce(string_agg(e.action, ',' ORDER BY e.seq), '')
      FROM cases c LEFT JOIN case_events e ON e.case_id = c.id
     GROUP BY c.id;
    """
    got: dict[str, list[list[str]]] = {}
    for r in rows(url, sql):
        got.setdefault(r[0], []).append(r)
    assert_db_consistent(url)
    assert set(got) == {op["order"] for op in ops.values()}, "cases nobody asked for"
    n_accepted = n_silent = n_fired_first = 0
    for op in ops.values():
        rs = got[op["order"]]
        assert len(rs) == 1 and rs[0][1] == op["case"]["id"], (op["case"]["id"], rs)
        _, cid, state, version, exp_sr, exp_all, refunds, sys_refunds, accepts, actions = rs[0]
        acts = [a for a in actions.split(",") if a != "deadline.approaching"]
        assert actions.split(",").count("deadline.approaching") <= 1, rs
        y = op["accept"]
        ambiguous = y is not None and op["accept_failed"] > 0
        if y is not None and y.status == 200:
            assert accepts == "1", (op, rs)
        elif y is not None and not ambiguous:
            # the deadline fired first: the seller was told so
            assert y.status in (409, 412), y
            assert accepts == "0", (y, rs)
            n_fired_first += 1
        if accepts == "1":
            n_accepted += 1
            assert (exp_all, refunds, sys_refunds) == ("0", "1", "0"), rs
            assert acts == ["open", "accept", "refund.instructed"], rs
            assert (state, version) == ("refund_pending", "2"), rs
        else:
            n_silent += 1
            assert accepts == "0", rs
            assert (exp_sr, exp_all, refunds, sys_refunds) == ("1", "1", "1", "1"), rs
            assert acts == ["open", "expire_seller_response", "refund.instructed"], rs
            assert (state, version) == ("refund_pending", "2"), rs
    assert n_accepted > 0, "no seller accept landed before its deadline"
    at_kill = sum(1 for x in fleet.log if x.target == victim.name and x.status is None)
    print(f"\nreplicas: {n} cases, {n_accepted} accepted through another replica, "
          f"{n_silent} expired ({n_fired_first} accepts came too late); {victim.name} "
          f"killed after {n // 2} creates, {at_kill} requests to it got no reply")
    for r in survivors:
        assert r.stop() == 0, r.log_tail()
    verify_ok(arbiter_bin, db.service_url)


# ---------------------------------------------------------------------------
# 4. one policy for every replica
# ---------------------------------------------------------------------------
def late_changed_mind_return(days_ago: int = 30) -> dict:
    """A changed_mind return delivered `days_ago` days ago: outside the 7-day
    no-reason window, inside a 60-day one."""
    b = fresh_body(kind="return", reason="changed_mind", evidence=[],
                   description=f"Changed my mind ({h.uniq('t')}).")
    now = h.now_utc().replace(microsecond=0)
    o = b["order"]
    o["paid_at"] = h.fmt_time(now - dt.timedelta(days=days_ago + 4))
    o["promised_ship_by"] = h.fmt_time(now - dt.timedelta(days=days_ago + 2))
    o["shipped_at"] = h.fmt_time(now - dt.timedelta(days=days_ago + 3))
    o["delivered_at"] = h.fmt_time(now - dt.timedelta(days=days_ago))
    return b


def test_policy_put_on_one_replica_is_followed_and_survives_a_restart(make_db, make_server):
    db = make_db()
    env = {"ARBITER_POLICY_FOLLOW": "true"}
    a = make_server(db.service_url, name="ops-pol-a", policy=DAYS, env=env)
    b = make_server(db.service_url, name="ops-pol-b", policy=DAYS, env=env)
    admin = db.keys["admin"]

    old = a.get("/v1/policy")
    assert old.status == 200, old
    old_version = old.body["version"]
    assert b.get("/v1/policy").body["version"] == old_version
    assert old.body["no_reason"]["days"] == 7, old.body["no_reason"]

    # under the old policy: ineligible
    before = h.create_case(b, late_changed_mind_return())
    assert before["decision"]["outcome"] == "ineligible", before["decision"]
    assert before["policy_version"] == old_version

    new = json.loads(json.dumps(old.body))
    new["version"] = h.uniq("2026.9-ops")
    new["no_reason"]["days"] = 60
    r = a.request("PUT", "/v1/policy", body=new, key=admin)
    assert r.status == 200, r
    assert r.body["version"] == new["version"] and r.body["no_reason"]["days"] == 60, r.body

    # the other replica follows (it polls the active version)
    def b_runs_new():
        g = b.get("/v1/policy")
        return g.body if g.status == 200 and g.body["version"] == new["version"] else None
    doc = wait_for(b_runs_new, 30, f"replica B to run {new['version']}", interval=0.25,
                   servers=[b])
    assert doc == r.body, "replica B runs another document under the same version"

    # a restart with the original file does not revert the operator's change
    b.restart()
    g = b.get("/v1/policy")
    assert g.status == 200 and g.body["version"] == new["version"], g
    active = h.psql_value(db.admin_url, "SELECT version FROM policies WHERE activated_at IS "
                                        "NOT NULL ORDER BY activated_at DESC LIMIT 1;")
    assert active == new["version"], "B's restart activated its file's policy again"
    assert a.get("/v1/policy").body["version"] == new["version"]

    # a case opened through B now follows the new rule and records it
    for via in (b, a):
        c = h.create_case(via, late_changed_mind_return())
        assert c["decision"]["outcome"] == "seller_review", (via.name, c["decision"])
        assert c["policy_version"] == new["version"], c
        assert c["decision"]["policy_version"] == new["version"], c["decision"]
        assert c["state"] == "awaiting_seller", c
        ev = via.get(f"/v1/cases/{c['id']}/events")
        assert ev.status == 200, ev
        assert ev.body["items"][0]["action"] == "open", ev.body
        pv = h.psql_value(db.admin_url, "SELECT policy_version FROM case_events WHERE case_id = "
                                        f"{h.quote_literal(c['id'])} AND seq = 1;")
        assert pv == new["version"], pv
    # the case opened before the switch keeps its decision and version
    again = b.get(f"/v1/cases/{before['id']}")
    assert again.status == 200 and again.body["policy_version"] == old_version, again
    assert again.body["decision"]["outcome"] == "ineligible"
