"""Session fixtures for the arbiter black-box tests.

Environment:
  ARBITER_BIN        absolute path of the binary under test (tests skip when unset;
                     with CI=true every skip fails: ci_strict.py)
  ARBITER_ADMIN_URL  superuser libpq conninfo of the PostgreSQL to use

Fixtures:
  arbiter_bin     path of the binary
  admin_url       the superuser conninfo
  log_dir         a tmp dir for server logs (kept on failure, path printed)
  db              the session's TestDB (created, migrated, dropped at the end); db.keys is
                  {role: key} for frontend/agent/arbiter/payment/ops/admin (no --shop), db.key_ids
                  {role: key id}; db.make_key(role, shops=None, senior=False, name=None) ->
                  (key_id, key) makes more. Server.request() sends the frontend key of its
                  database by default; key="..." uses another, key=None sends none.
  keys            db.keys
  server          the session's Server on `db` with tests/api/policy_fast.json when it
                  exists (SIGTERM at the end; must exit 0)
  stable_server   a second Server on `db` with deploy/policy/default.json: nothing expires
  make_db         factory: make_db(migrate=True) -> another TestDB, dropped at session end
  make_server     factory: make_server(database_url, env=, name=, policy=, port=) -> a started
                  Server; stopped when the test ends
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

import contract
import helpers as h

pytest_plugins = ["ci_strict"]   # CI=true: a skip fails


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "own_servers: starts servers of its own without make_server (left out under valgrind)")


def pytest_collection_modifyitems(config, items):
    # The contract's self-test records a violation on purpose: it runs only
    # in the pytest of its own that test_a_violation_fails_the_session
    # starts, and is deselected (not skipped) everywhere else.
    if os.environ.get("ARBITER_CONTRACT_SELFTEST") == "1":
        return
    keep = [i for i in items if not i.name.startswith("test_contract_selftest_")]
    # Under valgrind (make valgrind-test) the tests that start servers of
    # their own (make_server or own_servers: kills, restarts, replicas,
    # outages) are
    # deselected: they spend two thirds of the suite's time starting and
    # stopping processes, every memcheck start costs seconds, and asan-test
    # runs them all. ARBITER_VALGRIND_ALL=1 keeps them.
    if h.VALGRIND and os.environ.get("ARBITER_VALGRIND_ALL") != "1":
        keep = [i for i in keep if "make_server" not in i.fixturenames
                and not i.get_closest_marker("own_servers")]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    # A response the OpenAPI contract does not describe fails the build.
    if contract.violations() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if contract.exchanges():
        terminalreporter.section("OpenAPI contract")
        terminalreporter.write_line(contract.report())


def pytest_report_header(config):
    return [f"arbiter: ARBITER_BIN={os.environ.get('ARBITER_BIN') or '(unset)'}"]


@pytest.fixture(scope="session")
def arbiter_bin() -> str:
    b = os.environ.get("ARBITER_BIN")
    if not b:
        pytest.skip("ARBITER_BIN is not set (run via `make api-test`)")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.skip(f"ARBITER_BIN={b} is not an executable file (build it first)")
    return b


@pytest.fixture(scope="session")
def admin_url(arbiter_bin) -> str:
    u = os.environ.get("ARBITER_ADMIN_URL")
    if not u:
        pytest.skip("ARBITER_ADMIN_URL is not set")
    cp = h.psql(u, "SELECT 1;", check=False)
    if cp.returncode != 0:
        pytest.fail(f"cannot reach PostgreSQL at ARBITER_ADMIN_URL={u}:\n{cp.stderr}")
    return u


_failed: list[str] = []  # node ids of failed tests (keeps the logs)


@pytest.fixture(scope="session")
def log_dir():
    d = tempfile.mkdtemp(prefix="arbiter-api-")
    yield d
    if not _failed and not os.environ.get("ARBITER_KEEP_LOGS"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\narbiter logs kept in {d}")


@pytest.fixture(scope="session")
def make_db(arbiter_bin, admin_url):
    made: list[h.TestDB] = []

    def make(migrate: bool = True) -> h.TestDB:
        d = h.TestDB(admin_url).create()
        made.append(d)
        if migrate:
            d.migrate(arbiter_bin)
        return d

    yield make
    for d in made:
        d.drop()


@pytest.fixture(scope="session")
def db(make_db) -> h.TestDB:
    return make_db(migrate=True)


@pytest.fixture(scope="session")
def keys(db) -> dict:
    return db.keys


@pytest.fixture(scope="session")
def server(arbiter_bin, db, log_dir):
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="main")
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, f"arbiter exited {rc} on SIGTERM (expected 0)\n{s.log_tail()}"


@pytest.fixture(scope="session")
def stable_server(arbiter_bin, db, log_dir, server):
    """A second server on the same database with the shipped default policy
    (deadlines in days): nothing it creates expires during a test run, so
    tests that compare states or bodies over time are deterministic even when
    `server` runs a seconds-long test policy with a live SLA scheduler."""
    s = h.Server(arbiter_bin, db.service_url, log_dir, name="stable",
                 policy=h.DEFAULT_POLICY)
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, f"arbiter exited {rc} on SIGTERM (expected 0)\n{s.log_tail()}"


@pytest.fixture
def make_server(arbiter_bin, log_dir):
    started: list[h.Server] = []

    def make(database_url: str, env: dict | None = None, name: str = "extra",
             start: bool = True, port: int | None = None,
             policy: str | None = None) -> h.Server:
        s = h.Server(arbiter_bin, database_url, log_dir, name=name, env=env, port=port,
                     policy=policy)
        started.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in started:
        try:
            s.stop()
        except h.ServerError:
            pass


# Print the tail of every relevant server log when a test fails.
_first_server_of_test: dict[str, int] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _first_server_of_test[item.nodeid] = len(h.SERVERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _failed.append(item.nodeid)
        first = _first_server_of_test.get(item.nodeid, len(h.SERVERS))
        shown = [s for i, s in enumerate(h.SERVERS) if i >= first or s.name in ("main", "stable")]
        for s in shown:
            rep.sections.append((f"arbiter log ({s.name}, port {s.port})", s.log_tail(40)))
