"""Helpers for the black-box API tests of arbiter.

Everything here drives the real binary over HTTP and the real PostgreSQL via
`psql`; nothing is mocked. Standard library only.

Offered:
  default_headers()           headers sent with every request (Accept; no key)
  API keys                    create_key(bin, url, role, ...) -> (id, key) via `arbiter keys create`;
                              provision_keys(bin, url) -> {role: key} makes the standard set
                              and registers it, so Server.request() on that database sends
                              `Authorization: Bearer <frontend key>` unless key= says otherwise
  conninfo_parse/_format/_replace   libpq key=value (and URI) connection strings
  psql(conninfo, sql)         run SQL through psql, returns CompletedProcess (rows in .stdout)
  psql_value(conninfo, sql)   first column of the first row, as text
  Server                      one `arbiter serve` process: start/stop/kill9/restart/request
  Response                    (status, headers, body) tuple with attributes
  PgCluster                   a throwaway PostgreSQL cluster made with deploy/local/pgctl.sh
  case_body(...)              a valid "plain seller review" POST /v1/cases body
  create_case(server, ...)    POST it, assert 201, return the case
  parse_time / parse_duration RFC 3339 and ISO 8601 (policy) parsers
  is_problem(resp, status)    assertion helper for RFC 9457 problem+json replies
"""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import contract

REPO = Path(__file__).resolve().parents[2]
PGCTL = REPO / "deploy" / "local" / "pgctl.sh"

# --------------------------------------------------------------------------
# Request defaults: the one place to add e.g. an Authorization header later.
# --------------------------------------------------------------------------
DEFAULT_HEADERS: dict[str, str] = {
    "Accept": "application/json, application/problem+json",
}


def default_headers() -> dict[str, str]:
    return dict(DEFAULT_HEADERS)


# --------------------------------------------------------------------------
# API keys. Every /v1 route needs `Authorization: Bearer <key>`. Keys are made
# with the CLI (`arbiter keys create`) against a database; the standard set of
# a database is registered here under its URL so that Server.request() sends
# that database's frontend key by default.
# --------------------------------------------------------------------------
class _DefaultKey:
    def __repr__(self):
        return "DEFAULT_KEY"


DEFAULT_KEY = _DefaultKey()  # Server.request(key=DEFAULT_KEY): the db's frontend key
# key=None sends no Authorization header at all.

# role -> key made by provision_keys(); every role but seller (a seller key is
# bound to exactly one shop: make one with TestDB.make_key / create_key).
STANDARD_ROLES = ("frontend", "agent", "arbiter", "payment", "ops", "admin")

_KEYS_BY_DB: dict[str, dict[str, str]] = {}      # database url -> {role: key}
_KEY_IDS_BY_DB: dict[str, dict[str, str]] = {}   # database url -> {role: key id}
_KEY_RE = re.compile(r"^ak_([0-9a-f]{12})_[0-9a-f]{48}$")


def key_id_of(key: str) -> str:
    """The public id inside a key ak_<id>_<secret>."""
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(f"not an API key: {key!r}")
    return m.group(1)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + key}


def register_keys(database_url: str, keys: dict[str, str]) -> None:
    _KEYS_BY_DB.setdefault(database_url, {}).update(keys)
    _KEY_IDS_BY_DB.setdefault(database_url, {}).update(
        {r: key_id_of(k) for r, k in keys.items()})


def _db_identity(url: str) -> tuple:
    """(host, port, dbname) of a conninfo, to match the same database reached
    as another user (e.g. a TestDB's admin_url)."""
    try:
        if conninfo_is_uri(url):
            u = urllib.parse.urlsplit(url)
            q = dict(urllib.parse.parse_qsl(u.query))
            return (q.get("host") or u.hostname or "", str(q.get("port") or u.port or ""),
                    q.get("dbname") or urllib.parse.unquote(u.path.lstrip("/")))
        d = conninfo_parse(url)
        return (d.get("host", ""), d.get("port", ""), d.get("dbname", ""))
    except ValueError:
        return (url,)


def registered_keys(database_url: str) -> dict[str, str]:
    if database_url in _KEYS_BY_DB:
        return _KEYS_BY_DB[database_url]
    ident = _db_identity(database_url)
    for url, keys in _KEYS_BY_DB.items():
        if _db_identity(url) == ident:
            return keys
    return {}


def default_key_for(database_url: str) -> str | None:
    return registered_keys(database_url).get("frontend")


# --------------------------------------------------------------------------
# libpq connection strings
# --------------------------------------------------------------------------
def conninfo_is_uri(s: str) -> bool:
    return s.startswith("postgres://") or s.startswith("postgresql://")


def conninfo_parse(s: str) -> dict[str, str]:
    """Parse a libpq key=value connection string (values may be single-quoted,
    with backslash escapes), e.g. "host=/x port=5432 dbname='a b'"."""
    out: dict[str, str] = {}
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and s[j] != "=" and not s[j].isspace():
            j += 1
        key = s[i:j]
        while j < n and s[j].isspace():
            j += 1
        if j >= n or s[j] != "=":
            raise ValueError(f"bad conninfo near {s[i:]!r}")
        j += 1
        while j < n and s[j].isspace():
            j += 1
        val = []
        if j < n and s[j] == "'":
            j += 1
            while j < n and s[j] != "'":
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                val.append(s[j])
                j += 1
            if j >= n:
                raise ValueError("unterminated quote in conninfo")
            j += 1
        else:
            while j < n and not s[j].isspace():
                if s[j] == "\\" and j + 1 < n:
                    j += 1
                val.append(s[j])
                j += 1
        out[key] = "".join(val)
        i = j
    return out


def conninfo_format(d: dict[str, str]) -> str:
    parts = []
    for k, v in d.items():
        if v == "" or re.search(r"[\s'\\]", v):
            v = "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def conninfo_replace(s: str, **changes: str) -> str:
    """Return conninfo s with the given keys (dbname=, user=, ...) replaced."""
    if conninfo_is_uri(s):
        u = urllib.parse.urlsplit(s)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        netloc = u.netloc
        userinfo, _, hostport = netloc.rpartition("@")
        user, _, password = userinfo.partition(":") if userinfo else ("", "", "")
        path = u.path
        for k, v in changes.items():
            if k == "dbname":
                path = "/" + urllib.parse.quote(v, safe="")
                q.pop("dbname", None)
            elif k == "user":
                user, password = urllib.parse.quote(v, safe=""), ""
                q.pop("user", None)
            else:
                q[k] = v
        if user:
            userinfo = user + (":" + password if password else "")
            netloc = userinfo + "@" + hostport
        else:
            netloc = hostport
        return urllib.parse.urlunsplit(
            (u.scheme, netloc, path, urllib.parse.urlencode(q), u.fragment))
    d = conninfo_parse(s)
    d.update(changes)
    return conninfo_format(d)


# --------------------------------------------------------------------------
# psql
# --------------------------------------------------------------------------
def psql(conninfo: str, sql: str, check: bool = True, timeout: float = 60,
         env: dict | None = None) -> subprocess.CompletedProcess:
    """Run sql (may hold several statements) through psql; unaligned, tuples
    only, stop at the first error. check=True raises with psql's stderr."""
    e = dict(os.environ)
    e.setdefault("PGCONNECT_TIMEOUT", "10")
    if env:
        e.update(env)
    cp = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
        input=sql, capture_output=True, text=True, timeout=timeout, env=e)
    if check and cp.returncode != 0:
        raise AssertionError(
            f"psql failed (exit {cp.returncode}) on {sql!r}:\n{cp.stderr}")
    return cp


def psql_value(conninfo: str, sql: str) -> str:
    out = psql(conninfo, sql).stdout.strip().splitlines()
    return out[0] if out else ""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------
class CIDict(dict):
    """Case-insensitive header dict (keys stored lower-case)."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in items:
            k = k.lower()
            super().__setitem__(k, v if k not in self else self[k] + ", " + v)

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class Response(tuple):
    """(status, headers, body): body is parsed JSON when the reply is JSON,
    else text. Also .status .headers .body .raw .content_type."""

    def __new__(cls, status, headers, body, raw):
        self = super().__new__(cls, (status, headers, body))
        self.raw = raw
        return self

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def __repr__(self):
        b = self.raw[:600]
        return f"<Response {self.status} {self.content_type} {b!r}>"


# ARBITER_VALGRIND=1 runs every server under memcheck: an invalid read or a
# definite leak makes the server exit 99 on SIGTERM, which fails the test
# that stops it (fixtures assert exit 0).
VALGRIND = os.environ.get("ARBITER_VALGRIND") == "1"


def server_command(binary: str) -> list[str]:
    if not VALGRIND:
        return [binary, "serve"]
    return ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--track-origins=no", binary, "serve"]


def http_request(host: str, port: int, method: str, path: str, body=None,
                 headers: dict | None = None, raw: bytes | None = None,
                 timeout: float = 30) -> Response:
    """One request on a fresh connection. body (dict/list/str) is sent as JSON
    with Content-Type application/json; raw bytes are sent verbatim. A header
    given as None is left out (e.g. {"Content-Type": None})."""
    hdrs = default_headers()
    payload = None
    if raw is not None:
        payload = raw
        hdrs["Content-Type"] = "application/json"
    elif body is not None:
        payload = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    for k, v in (headers or {}).items():
        for existing in [h for h in hdrs if h.lower() == k.lower()]:
            del hdrs[existing]
        if v is not None:
            hdrs[k] = v
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if payload is not None:
            conn.putheader("Content-Length", str(len(payload)))
        elif method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", "0")
        try:
            conn.endheaders(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (e.g. 413) and close before reading all
            # of a large body; its reply is still readable.
            pass
        resp = conn.getresponse()
        data = resp.read()
        rh = CIDict(resp.getheaders())
        ct = (rh.get("content-type") or "").lower()
        parsed = data.decode("utf-8", "replace")
        if "json" in ct and data:
            try:
                parsed = json.loads(data)
            except ValueError:
                pass
        # Every exchange of the suite is checked against openapi/arbiter.yaml;
        # conftest fails the session on any violation.
        contract.record(method, path, hdrs, payload, resp.status, rh, parsed)
        return Response(resp.status, rh, parsed, data)
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# The service process
# --------------------------------------------------------------------------
SERVERS: list["Server"] = []  # every Server ever made, for failure reports


DEFAULT_POLICY = str(REPO / "deploy" / "policy" / "default.json")  # shipped: deadlines in days
FAST_POLICY = str(Path(__file__).resolve().parent / "policy_fast.json")  # deadlines in seconds


def default_policy_path() -> str:
    return FAST_POLICY if os.path.exists(FAST_POLICY) else DEFAULT_POLICY


def run_bin(binary: str, args: list[str], database_url: str | None = None,
            env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `arbiter <args>` (migrate, verify, version) to completion."""
    e = dict(os.environ)
    e.setdefault("ARBITER_POLICY", default_policy_path())
    e.setdefault("ARBITER_LOG_LEVEL", "warn")
    if database_url is not None:
        e["ARBITER_DATABASE_URL"] = database_url
    if env:
        e.update(env)
    return subprocess.run([binary, *args], capture_output=True, text=True,
                          timeout=timeout, env=e)


def create_key(binary: str, database_url: str, role: str, shops=None,
               senior: bool = False, name: str | None = None) -> tuple[str, str]:
    """`arbiter keys create` -> (key_id, key). shops: None (every shop), a
    shop id, or a list of them."""
    if isinstance(shops, str):
        shops = [shops]
    args = ["keys", "create", "--role", role, "--name", name or uniq(f"test-{role}")]
    for s in shops or ():
        args += ["--shop", s]
    if senior:
        args.append("--senior")
    cp = run_bin(binary, args, database_url=database_url)
    if cp.returncode != 0:
        raise AssertionError(f"arbiter {' '.join(args)} failed ({cp.returncode}):\n"
                             f"{cp.stdout}\n{cp.stderr}")
    key = cp.stdout.strip().splitlines()[-1].strip() if cp.stdout.strip() else ""
    return key_id_of(key), key


def migrate_url(binary: str, database_url: str, keys: bool = True,
                owner_url: str | None = None) -> dict[str, str]:
    """`arbiter migrate` on any database URL (e.g. a PgCluster's), as
    owner_url granting the service's role when given, then provision_keys()
    on database_url; returns {role: key} ({} with keys=False)."""
    if owner_url:
        role = (conninfo_parse(database_url) if not conninfo_is_uri(database_url)
                else {}).get("user", "arbiter")
        cp = run_bin(binary, ["migrate", "--grant", role], database_url=owner_url)
    else:
        cp = run_bin(binary, ["migrate"], database_url=database_url)
    if cp.returncode != 0:
        raise AssertionError(f"arbiter migrate failed ({cp.returncode}):\n"
                             f"{cp.stdout}\n{cp.stderr}")
    return provision_keys(binary, database_url) if keys else {}


def provision_keys(binary: str, database_url: str) -> dict[str, str]:
    """Make one platform-wide key per STANDARD_ROLES role on this database and
    register them (Server.request() then sends the frontend one by default)."""
    keys = {}
    for role in STANDARD_ROLES:
        _, keys[role] = create_key(binary, database_url, role, name=f"test-{role}")
    register_keys(database_url, keys)
    return keys


class ServerError(AssertionError):
    pass


class Server:
    """One `arbiter serve` process on 127.0.0.1:<port>.

    Server(binary, database_url, log_dir, name=..., port=None, env={...})
    .start(wait=True)   spawn and wait for GET /healthz == 200 (20 s)
    .stop(sig=SIGTERM, timeout=15) -> exit code (raises if it does not exit)
    .kill9()            SIGKILL, returns exit code
    .restart()          stop (SIGTERM, must exit 0) and start on the same port
    .request(method, path, body=None, headers=None, raw=None, key=DEFAULT_KEY) -> Response
                        key: DEFAULT_KEY = the frontend key registered for this
                        database (none registered: no header); a key string;
                        None = no Authorization header. An "Authorization" entry
                        in headers wins over key.
    .get/.post          shorthands; .base_url; .log_tail(n)
    """

    START_TIMEOUT = 60.0 if VALGRIND else 20.0

    def __init__(self, binary: str, database_url: str, log_dir: str | Path,
                 name: str = "arbiter", port: int | None = None,
                 policy: str | None = None, env: dict | None = None):
        self.binary = binary
        self.database_url = database_url
        self.name = name
        self.port = port or free_port()
        self.policy = policy or default_policy_path()
        self.extra_env = dict(env or {})
        self.log_path = Path(log_dir) / f"{name}-{secrets.token_hex(3)}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        SERVERS.append(self)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict:
        e = dict(os.environ)
        e.update({
            "ARBITER_LISTEN": f"{self.host}:{self.port}",
            "ARBITER_DATABASE_URL": self.database_url,
            "ARBITER_POLICY": self.policy,
            "ARBITER_LOG_LEVEL": "warn",
            # Test servers on one database run different policies on purpose
            # (fast deadlines vs days); each keeps its own file's policy.
            # Tests of replicas sharing a policy pass "true".
            "ARBITER_POLICY_FOLLOW": "false",
        })
        e.update(self.extra_env)
        return e

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True) -> "Server":
        assert not self.alive(), "already running"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start #{self.starts} on port {self.port}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(server_command(self.binary), env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.START_TIMEOUT)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} during start-up\n"
                    + self.log_tail())
            try:
                r = self.request("GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
                last = r
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise ServerError(f"{self.name}: /healthz not 200 after start ({last!r})\n"
                          + self.log_tail())

    def wait_status(self, path: str, status: int, timeout: float,
                    interval: float = 0.2) -> Response:
        """Poll GET path until it answers `status`; returns that reply or
        raises with the last reply seen."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.request("GET", path, timeout=5)
                if last.status == status:
                    return last
            except OSError as e:
                last = e
            if time.monotonic() >= deadline:
                raise ServerError(f"GET {path} did not become {status} within "
                                  f"{timeout}s; last: {last!r}\n" + self.log_tail())
            time.sleep(interval)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send sig and wait; returns the exit code. If it does not exit in
        time it is SIGKILLed and ServerError is raised."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise ServerError(f"{self.name} did not exit within {timeout}s of "
                                  f"signal {sig}\n" + self.log_tail())
        return self.proc.returncode

    def kill9(self) -> int:
        return self.stop(signal.SIGKILL, timeout=10)

    def restart(self) -> "Server":
        rc = self.stop()
        if rc != 0:
            raise ServerError(f"{self.name} exited {rc} on SIGTERM\n" + self.log_tail())
        return self.start()

    @property
    def keys(self) -> dict[str, str]:
        """role -> key registered for this server's database."""
        return registered_keys(self.database_url)

    def request(self, method: str, path: str, body=None, headers=None, raw=None,
                timeout: float = 30, key=DEFAULT_KEY) -> Response:
        if key is DEFAULT_KEY:
            key = default_key_for(self.database_url)
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        for k, v in (headers or {}).items():
            for existing in [x for x in hdrs if x.lower() == k.lower()]:
                del hdrs[existing]
            hdrs[k] = v
        return http_request(self.host, self.port, method, path, body=body,
                            headers=hdrs, raw=raw, timeout=timeout)

    def get(self, path, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw) -> Response:
        return self.request("POST", path, body=body, **kw)

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        return f"--- last {min(n, len(lines))} lines of {self.log_path}:\n" + "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------
class TestDB:
    """A throwaway database arbiter_t_<hex> owned by role arbiter_owner,
    which migrates it; the service logs in as arbiter, which owns nothing
    (the split `make run` makes; issue 18)."""

    __test__ = False  # not a pytest test class

    def __init__(self, admin_url: str, prefix: str = "arbiter_t_"):
        self.name = prefix + secrets.token_hex(6)
        self.server_admin_url = admin_url
        self.admin_url = conninfo_replace(admin_url, dbname=self.name)     # superuser, this db
        self.service_url = conninfo_replace(admin_url, dbname=self.name, user="arbiter")
        self.owner_url = conninfo_replace(admin_url, dbname=self.name, user="arbiter_owner")
        self.created = False
        self.binary: str | None = None
        self.keys: dict[str, str] = {}     # role -> key (see provision_keys)
        self.key_ids: dict[str, str] = {}  # role -> key id

    def create(self) -> "TestDB":
        psql(self.server_admin_url,
             "SELECT 'CREATE ROLE arbiter LOGIN' WHERE NOT EXISTS "
             "(SELECT 1 FROM pg_roles WHERE rolname = 'arbiter')\\gexec\n"
             "SELECT 'CREATE ROLE arbiter_owner LOGIN' WHERE NOT EXISTS "
             "(SELECT 1 FROM pg_roles WHERE rolname = 'arbiter_owner')\\gexec\n", check=False)
        psql(self.server_admin_url,
             f"CREATE DATABASE {quote_ident(self.name)} OWNER arbiter_owner;")
        self.created = True
        return self

    def migrate(self, binary: str, keys: bool = True) -> None:
        """`arbiter migrate`, then (keys=True) the standard API keys."""
        self.binary = binary
        cp = run_bin(binary, ["migrate", "--grant", "arbiter"], database_url=self.owner_url)
        if cp.returncode != 0:
            raise AssertionError(f"arbiter migrate failed ({cp.returncode}):\n"
                                 f"{cp.stdout}\n{cp.stderr}")
        if keys and not self.keys:
            self.keys = provision_keys(binary, self.service_url)
            self.key_ids = {r: key_id_of(k) for r, k in self.keys.items()}

    def make_key(self, role: str, shops=None, senior: bool = False,
                 name: str | None = None) -> tuple[str, str]:
        """Another key on this database -> (key_id, key); not registered."""
        assert self.binary, "migrate() the TestDB first"
        return create_key(self.binary, self.service_url, role, shops=shops,
                          senior=senior, name=name)

    def drop(self) -> None:
        if self.created:
            psql(self.server_admin_url,
                 f"DROP DATABASE IF EXISTS {quote_ident(self.name)} WITH (FORCE);",
                 check=False)
            self.created = False

    def count(self, table: str = "cases") -> int:
        return int(psql_value(self.admin_url, f"SELECT count(*) FROM {table};"))


class PgCluster:
    """A throwaway PostgreSQL cluster under /var/tmp (reachable by the
    postgres system user), managed by deploy/local/pgctl.sh."""

    def __init__(self):
        self.dir = f"/var/tmp/arbiter-test-{secrets.token_hex(5)}"
        os.makedirs(self.dir, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres")

    def _ctl(self, cmd: str, timeout: float = 120) -> str:
        e = dict(os.environ, ARBITER_PG_DIR=self.dir)
        cp = subprocess.run(["bash", str(PGCTL), cmd], capture_output=True, text=True,
                            env=e, timeout=timeout)
        if cp.returncode != 0:
            raise AssertionError(f"pgctl {cmd} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        return cp.stdout.strip()

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop")

    def url(self) -> str:
        return self._ctl("url")

    def migrate(self, binary: str, keys: bool = True) -> dict[str, str]:
        """Migrate the cluster's service database and provision API keys
        (registered under self.url()); returns {role: key}."""
        return migrate_url(binary, self.url(), keys=keys, owner_url=self.owner_url())

    def owner_url(self) -> str:
        return self._ctl("owner-url")

    def admin_url(self) -> str:
        return self._ctl("admin-url")

    def destroy(self) -> None:
        try:
            self._ctl("stop")
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Times and durations
# --------------------------------------------------------------------------
RFC3339_UTC = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")


def parse_time(s: str) -> dt.datetime:
    """RFC 3339 -> aware datetime (fractions beyond microseconds truncated)."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", s)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    frac = (m.group(3) or ".0")[1:7].ljust(6, "0")
    tz = m.group(4)
    tz = "+00:00" if tz in ("Z", "z") else tz
    return dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{tz}")


def fmt_time(t: dt.datetime) -> str:
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_DUR = re.compile(r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                  r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(s: str) -> dt.timedelta:
    m = _DUR.match(s)
    if not m or s in ("P", "PT") or s.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {s!r}")
    w, d, h, mi, se = (float(x) if x else 0.0 for x in m.groups())
    return dt.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=se)


def policy_duration(policy_path: str, name: str, default: str) -> dt.timedelta:
    """Find the duration configured for `name` (e.g. "seller_response")
    anywhere in the policy JSON: either "name": "P5D" or "name": {...: "P5D"}."""
    try:
        doc = json.loads(Path(policy_path).read_text())
    except (OSError, ValueError):
        return parse_duration(default)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == name:
                    if isinstance(v, str):
                        try:
                            return parse_duration(v)
                        except ValueError:
                            pass
                    if isinstance(v, dict):
                        for kk in ("duration", "after", "within", "due", "period", "value"):
                            if isinstance(v.get(kk), str):
                                try:
                                    return parse_duration(v[kk])
                                except ValueError:
                                    pass
                        for vv in v.values():
                            if isinstance(vv, str):
                                try:
                                    return parse_duration(vv)
                                except ValueError:
                                    pass
                r = walk(v)
                if r is not None:
                    return r
        elif isinstance(node, list):
            for v in node:
                r = walk(v)
                if r is not None:
                    return r
        return None

    return walk(doc) or parse_duration(default)


# --------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------
ORDER_TIME_FIELDS = ("paid_at", "promised_ship_by", "shipped_at", "delivered_at",
                     "warranty_until")


def uniq(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def case_body(shop_id: str | None = None, buyer_id: str | None = None,
              order_id: str | None = None, **top) -> dict:
    """A plain seller-review case: refund / quality_defect with one photo, an
    order shipped 3 days ago and delivered yesterday. Keyword arguments
    replace top-level fields (kind=..., reason=..., description=...)."""
    now = now_utc().replace(microsecond=0)
    body = {
        "kind": "refund",
        "reason": "quality_defect",
        "description": "The kettle leaks from the seam after the first boil.",
        "order": {
            "id": order_id or uniq("ord"),
            "shop_id": shop_id or uniq("shop"),
            "buyer_id": buyer_id or uniq("buyer"),
            "sku": "KETTLE-1L-WHITE",
            "category": "kitchen",
            "price_cents": 10000,
            "shipping_fee_cents": 800,
            "free_shipping": False,
            "paid_at": fmt_time(now - dt.timedelta(days=4)),
            "promised_ship_by": fmt_time(now - dt.timedelta(days=2)),
            "shipped_at": fmt_time(now - dt.timedelta(days=3)),
            "delivered_at": fmt_time(now - dt.timedelta(days=1)),
        },
        "evidence": [{
            "kind": "photo",
            "url": "https://img.example.com/ev/leak-1.jpg",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        }],
    }
    body.update(copy.deepcopy(top))
    return body


def late_shipment_body(**top) -> dict:
    """A late_shipment case whose order is not shipped, two days past its
    promised ship-by time. Keyword arguments as for case_body."""
    b = case_body(reason="late_shipment", **top)
    b["order"].pop("shipped_at", None)
    b["order"].pop("delivered_at", None)
    b["order"]["promised_ship_by"] = fmt_time(now_utc() - dt.timedelta(days=2))
    return b


def complaint_body(shop_id: str | None = None, **top) -> dict:
    b = case_body(shop_id=shop_id, kind="complaint", reason="poor_service",
                  description="The agent hung up on me twice.")
    b.update(top)
    return b


def create_case(server: Server, body: dict | None = None, **kw) -> dict:
    body = body if body is not None else case_body(**kw)
    r = server.post("/v1/cases", body)
    assert r.status == 201, f"create failed: {r!r}\n{server.log_tail(20)}"
    assert isinstance(r.body, dict), r
    return r.body


def list_all(server: Server, query: dict, limit: int = 500, max_pages: int = 1000) -> list[dict]:
    items, cursor = [], None
    for _ in range(max_pages):
        q = dict(query, limit=str(limit))
        if cursor:
            q["cursor"] = cursor
        r = server.get("/v1/cases?" + urllib.parse.urlencode(q))
        assert r.status == 200, r
        items += r.body["items"]
        cursor = r.body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------
def assert_problem(r: Response, status: int) -> dict:
    """r is an RFC 9457 problem with this status; returns the problem."""
    assert r.status == status, f"expected {status}, got {r!r}"
    assert r.content_type == "application/problem+json", r
    p = r.body
    assert isinstance(p, dict), r
    for k in ("type", "title", "status", "detail"):
        assert k in p, f"problem lacks {k!r}: {p}"
    assert isinstance(p["type"], str) and p["type"], p
    assert isinstance(p["title"], str) and p["title"], p
    assert isinstance(p["detail"], str), p
    assert p["status"] == status, p
    if "errors" in p:
        assert isinstance(p["errors"], list), p
        for e in p["errors"]:
            assert isinstance(e, dict) and isinstance(e.get("pointer"), str) \
                and isinstance(e.get("message"), str), p
    return p


def problem_pointers(p: dict) -> list[str]:
    return [e["pointer"] for e in p.get("errors") or []]


HEX64 = re.compile(r"^[0-9a-f]{64}$")
