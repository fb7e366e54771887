"""A throwaway replicated PostgreSQL 15 for the failover test (tests/ha).

Three etcd members and three Patroni nodes (one primary, two standbys,
synchronous_mode) on loopback, every port picked free at run time, every
process run as the `postgres` system user (PostgreSQL refuses root) under a
per-checkout folder that user can reach: /var/tmp/arbiter-<hash of the
checkout>/ha-<random>, the same hash deploy/local/pgctl.sh uses. Optionally
a pgbouncer in transaction mode in front of the nodes.

    c = HaCluster(); c.start()          # etcd, patroni, wait for 1 primary + 2 streaming
    c.primary()                          # name of the node whose REST /primary says 200
    c.kill_postmaster(name)              # kill -9 that node's postmaster
    c.url(dbname, user)                  # multi-host conninfo, target_session_attrs=read-write
    c.stop()                             # everything down, folder removed

Standard library only; Patroni's REST API is read with urllib.
"""

from __future__ import annotations

import hashlib
import json
import re
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PGBIN = os.environ.get("ARBITER_PGBIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"

# How fast Patroni notices a dead primary: the leader key lives ttl seconds
# without renewal, each node acts every loop_wait. primary_start_timeout 0:
# a crashed primary is failed over at once instead of restarted in place.
TTL = int(os.environ.get("ARBITER_HA_TTL", "10"))
LOOP_WAIT = 1
RETRY_TIMEOUT = 4


def _free_ports(n: int) -> list[int]:
    """n distinct ports nothing listens on now; the sockets stay bound until
    all n are picked, so one port is never handed out twice."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _as_pg() -> list[str]:
    """Prefix that runs a command as postgres; setpriv execs in place, so the
    pid Popen returns is the server's own (signals reach it directly)."""
    if os.getuid() != 0:
        return []
    return ["setpriv", "--reuid", PG_USER, "--regid", PG_USER, "--init-groups", "--"]


def checkout_folder() -> Path:
    h = hashlib.sha1(str(REPO).encode()).hexdigest()[:12]
    return Path(f"/var/tmp/arbiter-{h}")


class HaError(AssertionError):
    pass


class Node:
    def __init__(self, name: str, base: Path, pg_port: int, api_port: int):
        self.name = name
        self.dir = base / name
        self.pg_port = pg_port
        self.api_port = api_port
        self.proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def api(self, path: str, timeout: float = 2) -> tuple[int, dict]:
        """(status, body) of Patroni's REST path; (0, {}) when unreachable."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}",
                                        timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}
        except (OSError, ValueError):
            return 0, {}

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None


class HaCluster:
    def __init__(self, pgbouncer: bool = False):
        self.base = checkout_folder() / f"ha-{secrets.token_hex(4)}"
        self.scope = f"arbiter-{secrets.token_hex(3)}"
        ports = _free_ports(14)
        self.etcd_client = ports[0:3]
        self.etcd_peer = ports[3:6]
        self.nodes = [Node(f"node{i + 1}", self.base, ports[6 + i], ports[9 + i])
                      for i in range(3)]
        self.haproxy_port = ports[12] if pgbouncer else None
        self.bouncer_port = ports[13] if pgbouncer else None
        self.etcd_procs: list[subprocess.Popen] = []
        self.bouncer: subprocess.Popen | None = None
        self.haproxy: subprocess.Popen | None = None

    # ---- connection strings ----
    def hosts(self) -> str:
        return (f"host={','.join('127.0.0.1' for _ in self.nodes)} "
                f"port={','.join(str(n.pg_port) for n in self.nodes)}")

    def url(self, dbname: str = "postgres", user: str = "postgres",
            attrs: str = "read-write") -> str:
        """libpq's own failover: every node, the first writable one wins."""
        return f"{self.hosts()} dbname={dbname} user={user} target_session_attrs={attrs}"

    def node_url(self, node: Node, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={node.pg_port} dbname={dbname} user={user}"

    def bouncer_url(self, dbname: str, user: str) -> str:
        return f"host=127.0.0.1 port={self.bouncer_port} dbname={dbname} user={user}"

    # ---- start ----
    def _mkdir(self, p: Path) -> None:
        p.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(p, PG_USER, PG_USER)

    def _spawn(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with open(log, "ab") as f:
            return subprocess.Popen(_as_pg() + argv, stdin=subprocess.DEVNULL, stdout=f,
                                    stderr=subprocess.STDOUT, cwd="/",
                                    env=dict(os.environ, **(env or {})),
                                    start_new_session=True)

    def start(self, timeout: float = 120) -> None:
        for p in (checkout_folder(), self.base):
            self._mkdir(p)
        self._start_etcd()
        for n in self.nodes:
            self._start_patroni(n)
        self.wait_healthy(timeout)
        if self.bouncer_port:
            self._start_bouncer()

    def _start_etcd(self) -> None:
        cluster = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.etcd_peer))
        for i in range(3):
            d = self.base / f"etcd{i}"
            self._mkdir(d)
            self.etcd_procs.append(self._spawn([
                "etcd", "--name", f"e{i}", "--data-dir", str(d / "data"),
                "--listen-client-urls", f"http://127.0.0.1:{self.etcd_client[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_client[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer[i]}",
                "--initial-cluster", cluster, "--initial-cluster-token", self.scope,
                "--initial-cluster-state", "new",
                # a loaded 2-core machine: a longer election timeout keeps
                # etcd from electing on every stall
                "--heartbeat-interval", "200", "--election-timeout", "2000",
                "--logger", "zap", "--log-level", "warn",
            ], d / "etcd.log"))

    def _patroni_config(self, n: Node) -> str:
        etcd_hosts = ",".join(f"127.0.0.1:{p}" for p in self.etcd_client)
        cfg = {
            "scope": self.scope,
            "name": n.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{n.api_port}",
                        "connect_address": f"127.0.0.1:{n.api_port}"},
            "etcd3": {"hosts": etcd_hosts},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "primary_start_timeout": 0,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "shared_buffers": "64MB",
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_keep_size": "128MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
                "pg_hba": [
                    "local all all trust",
                    "host replication all 127.0.0.1/32 trust",
                    "host all all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{n.pg_port}",
                "connect_address": f"127.0.0.1:{n.pg_port}",
                "data_dir": str(n.data),
                "bin_dir": PGBIN,
                "pgpass": str(n.dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "unused"},
                    "replication": {"username": "replicator", "password": "unused"},
                    "rewind": {"username": "postgres", "password": "unused"},
                },
                "parameters": {
                    "unix_socket_directories": str(n.dir),
                    "logging_collector": "on",
                    "log_directory": str(n.dir / "log"),
                    "log_filename": "postgresql.log",
                },
            },
            "tags": {"nofailover": False, "noloadbalance": False},
        }
        return json.dumps(cfg, indent=1)  # YAML is a superset of JSON

    def _start_patroni(self, n: Node) -> None:
        self._mkdir(n.dir)
        cfg = n.dir / "patroni.yml"
        cfg.write_text(self._patroni_config(n))
        n.proc = self._spawn(["patroni", str(cfg)], n.dir / "patroni.log")

    def restart_patroni(self, n: Node) -> None:
        """Start a node's Patroni again (its PostgreSQL comes back as whatever
        the cluster makes it: a replica, rewound if it diverged)."""
        if n.proc and n.proc.poll() is None:
            return
        n.proc = self._spawn(["patroni", str(n.dir / "patroni.yml")], n.dir / "patroni.log")

    def _wait_port(self, port: int, what: str, log: Path) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise HaError(f"{what} did not listen on {port}\n" + self.tail(log))

    def _start_bouncer(self) -> None:
        """HAProxy sends to whichever node's Patroni answers 200 on /primary
        (the documented alternative to a multi-host URL); pgbouncer in
        transaction mode pools in front of it, as fleets that budget
        connections run it."""
        d = self.base / "pgbouncer"
        self._mkdir(d)
        servers = "\n".join(
            f"  server {n.name} 127.0.0.1:{n.pg_port} check port {n.api_port}" for n in self.nodes)
        (d / "haproxy.cfg").write_text(f"""global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
listen primary
  bind 127.0.0.1:{self.haproxy_port}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
""")
        self.haproxy = self._spawn(["haproxy", "-f", str(d / "haproxy.cfg")], d / "haproxy.log")
        self._wait_port(self.haproxy_port, "haproxy", d / "haproxy.log")
        (d / "userlist.txt").write_text('"postgres" ""\n"arbiter" ""\n"arbiter_owner" ""\n')
        (d / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={self.haproxy_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.bouncer_port}
unix_socket_dir =
auth_type = trust
auth_file = {d}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
server_check_delay = 0
server_login_retry = 1
; with no server to be had (a failover), a client waits this long and then
; gets an error (the service answers 503) instead of hanging on its pool
query_wait_timeout = 2
ignore_startup_parameters = extra_float_digits
logfile = {d}/pgbouncer.log
pidfile = {d}/pgbouncer.pid
""")
        for f in ("userlist.txt", "pgbouncer.ini", "haproxy.cfg"):
            if os.getuid() == 0:
                shutil.chown(d / f, PG_USER, PG_USER)
        self.bouncer = self._spawn(["pgbouncer", str(d / "pgbouncer.ini")], d / "pgbouncer.out")
        self._wait_port(self.bouncer_port, "pgbouncer", d / "pgbouncer.log")

    # ---- state ----
    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def primary(self) -> str | None:
        """The node whose Patroni answers 200 on /primary, if exactly one."""
        up = [n.name for n in self.nodes if n.api("/primary", timeout=1)[0] == 200]
        return up[0] if len(up) == 1 else None

    def members(self) -> list[dict]:
        for n in self.nodes:
            st, body = n.api("/cluster")
            if st == 200 and "members" in body:
                return body["members"]
        return []

    def wait_healthy(self, timeout: float, streaming: int = 2) -> str:
        """Wait until one leader and `streaming` replicas stream from it, one
        of them the synchronous standby; returns the leader's name."""
        deadline = time.monotonic() + timeout
        last: list[dict] = []
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc and n.proc.poll() is not None and n.proc.returncode not in (0, -15):
                    raise HaError(f"patroni {n.name} exited {n.proc.returncode}\n"
                                  + self.tail(n.dir / "patroni.log"))
            last = self.members()
            leaders = [m for m in last if m.get("role") == "leader" and m.get("state") == "running"]
            repl = [m for m in last if m.get("role") in ("replica", "sync_standby")
                    and m.get("state") in ("streaming", "running")]
            sync = [m for m in repl if m.get("role") == "sync_standby"]
            if len(leaders) == 1 and len(repl) >= streaming and sync:
                if self.primary() == leaders[0]["name"]:
                    return leaders[0]["name"]
            time.sleep(0.5)
        raise HaError(f"cluster not healthy within {timeout}s: {last}\n" + self.logs())

    def set_nosync(self, name: str, on: bool) -> None:
        """Tag a node nosync (never the synchronous standby, so never
        promoted in synchronous_mode) and reload its Patroni (SIGHUP)."""
        n = self.node(name)
        cfg = json.loads((n.dir / "patroni.yml").read_text())
        cfg["tags"]["nosync"] = on
        (n.dir / "patroni.yml").write_text(json.dumps(cfg, indent=1))
        n.proc.send_signal(signal.SIGHUP)

    def wait_sync_standby(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = {x["name"]: x for x in self.members()}
            if m.get(name, {}).get("role") == "sync_standby":
                return
            time.sleep(0.3)
        raise HaError(f"{name} not the synchronous standby within {timeout}s: {self.members()}")

    def wait_everywhere(self, sql: str, timeout: float = 30) -> None:
        """Until sql answers 1 on every node. libpq tries the next host of a
        multi-host URL only when it cannot connect, not when the server
        refuses the login: a role or database a standby has not replayed yet
        would stop every connect that reaches that standby first."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            pending = [n for n in pending if subprocess.run(
                ["psql", "-X", "-A", "-t", "-d", self.node_url(n), "-c", sql],
                capture_output=True, text=True, timeout=15).stdout.strip() != "1"]
            if pending and time.monotonic() > deadline:
                raise HaError(f"{sql!r} not 1 on {[n.name for n in pending]} within {timeout}s")
            time.sleep(0.2)

    def kill_postmaster(self, name: str) -> int:
        pid = self.node(name).postmaster_pid()
        if not pid:
            raise HaError(f"{name}: no postmaster.pid")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop_patroni(self, name: str, sig: int = signal.SIGKILL) -> None:
        n = self.node(name)
        if n.proc and n.proc.poll() is None:
            n.proc.send_signal(sig)
            n.proc.wait(30)

    # ---- stop ----
    def stop(self, keep: bool = False) -> None:
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes:
            if n.proc:
                try:
                    n.proc.wait(30)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait()
            # a postmaster whose Patroni died first (or was killed) is ours too
            pid = n.postmaster_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGQUIT)
                except ProcessLookupError:
                    pass
        for p in self.etcd_procs + [x for x in (self.bouncer, self.haproxy) if x]:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for n in self.nodes:
            deadline = time.monotonic() + 10
            while n.postmaster_pid() and _alive(n.postmaster_pid()) and time.monotonic() < deadline:
                time.sleep(0.1)
        if not keep:
            shutil.rmtree(self.base, ignore_errors=True)

    # ---- logs ----
    @staticmethod
    def tail(p: Path, n: int = 30) -> str:
        """The last n of Patroni's own lines in p. Tracebacks are left out:
        HAProxy closes every health check with a reset, and the traceback
        Patroni logs for each would push its decisions out of sight."""
        try:
            lines = p.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no {p})"
        own: list[str] = []
        runs: list[int] = []
        for ln in lines:
            if not _PATRONI_LINE.match(ln):
                continue
            # a loop's "no action" line repeats every second: one per run
            if own and ln[24:] == own[-1][24:]:
                runs[-1] += 1
                continue
            own.append(ln)
            runs.append(1)
        out = [ln + (f"  (x{k})" if k > 1 else "") for ln, k in zip(own, runs)]
        return f"--- {p}:\n" + "\n".join(out[-n:])

    @staticmethod
    def tail_raw(p: Path, n: int) -> str:
        """The last n lines of p as written: PostgreSQL's own log says why a
        standby is still starting (a WAL segment it waits for, a timeline it
        cannot follow), which Patroni's log only calls 'connection problems'."""
        try:
            lines = p.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no {p})"
        return f"--- {p}:\n" + "\n".join(lines[-n:])

    def logs(self, n: int = 25) -> str:
        return "\n".join(self.tail(x.dir / "patroni.log", n)
                         + "\n" + self.tail_raw(x.dir / "log" / "postgresql.log", 25)
                         for x in self.nodes) \
            + f"\n--- members: {self.members()}"


_PATRONI_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+: ")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
