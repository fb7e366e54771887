"""The command line (issue 22, item 3): what the binary does with arguments
it does not understand, --version, and --help without a database.

Most tests run the binary with no database at all (ARBITER_DATABASE_URL
removed, or pointing at a socket that does not exist): a subcommand that
still tried to connect would fail with exit 1 or a libpq message instead of
the usage text asserted here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import helpers as h

ROOT = Path(__file__).resolve().parents[2]
NO_DB = "host=/nonexistent-arbiter-cli dbname=none connect_timeout=1"


def run(binary: str, *args: str, db: str | None = None, timeout: float = 30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    env["ARBITER_POLICY"] = h.default_policy_path()
    if db is not None:
        env["ARBITER_DATABASE_URL"] = db
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


HELP_CALLS = [
    ("--help",), ("-h",), ("help",),
    ("serve", "--help"), ("migrate", "--help"), ("verify", "--help"),
    ("keys", "--help"), ("keys", "help"), ("keys", "create", "--help"),
    ("keys", "list", "--help"), ("keys", "revoke", "--help"), ("version", "--help"),
    ("migrate", "--grant", "x", "-h"), ("serve", "-h"),
]


@pytest.mark.parametrize("args", HELP_CALLS, ids=" ".join)
def test_help_needs_no_database(arbiter_bin, args):
    cp = run(arbiter_bin, *args)
    assert cp.returncode == 0, (cp.returncode, cp.stderr)
    assert cp.stdout.startswith("usage: arbiter"), cp.stdout
    assert cp.stderr == "", cp.stderr


BAD_CALLS = [
    # (argv, the word the error must name)
    (("serve", "--port", "9000"), "--port"),
    (("serve", "extra"), "extra"),
    (("migrate", "--dry-run"), "--dry-run"),
    (("migrate", "--grant"), "--grant"),
    (("migrate", "--grant", "--dry-run"), "--grant"),
    (("migrate", "now"), "now"),
    (("verify", "--fix"), "--fix"),
    (("version", "--json"), "--json"),
    (("--version", "x"), "x"),
    (("--port",), "--port"),
    (("frobnicate",), "frobnicate"),
    (("help", "me"), "me"),
    (("keys",), "create, list or revoke"),
    (("keys", "rotate"), "rotate"),
    (("keys", "list", "--all"), "--all"),
    (("keys", "revoke"), "KEY_ID"),
    (("keys", "revoke", "k1", "k2"), "k2"),
    (("keys", "create", "--name", "n"), "--role"),
    (("keys", "create", "--role", "ops"), "--name"),
    (("keys", "create", "--role"), "--role"),
    (("keys", "create", "--role", "ops", "--name", "n", "--admin"), "--admin"),
    (("keys", "create", "--role", "ops", "--name", "n", "stray"), "stray"),
]


@pytest.mark.parametrize("args,named", BAD_CALLS, ids=[" ".join(a) for a, _ in BAD_CALLS])
def test_unknown_arguments_are_usage_errors(arbiter_bin, args, named):
    # A database URL that cannot connect: if the binary went on past the
    # bad argument it would exit 1 with a connection error, not 2.
    cp = run(arbiter_bin, *args, db=NO_DB)
    assert cp.returncode == 2, (cp.returncode, cp.stdout, cp.stderr)
    assert named in cp.stderr.splitlines()[0], cp.stderr
    assert "usage: arbiter" in cp.stderr, cp.stderr
    assert cp.stdout == "", cp.stdout


def built_commit() -> str:
    cp = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True)
    return cp.stdout.strip() if cp.returncode == 0 else "unknown"


@pytest.mark.parametrize("flag", ["--version", "version"])
def test_version_names_version_and_commit(arbiter_bin, flag):
    cp = run(arbiter_bin, flag)
    assert cp.returncode == 0, cp.stderr
    m = re.fullmatch(r"arbiter (\d+\.\d+\.\d+) \(commit ([0-9a-f]{7,40}|unknown)\)\n", cp.stdout)
    assert m, cp.stdout
    makefile = (ROOT / "Makefile").read_text()
    assert f"VERSION := {m.group(1)}" in makefile
    # The binary under test is built from this checkout (make build before
    # the suite), so it carries this checkout's commit.
    assert m.group(2) == built_commit(), (m.group(2), built_commit())


def test_serve_needs_a_database_url(arbiter_bin):
    cp = run(arbiter_bin, "serve")
    assert cp.returncode == 2
    assert "ARBITER_DATABASE_URL" in cp.stderr


def test_help_matches_readme(arbiter_bin):
    readme = (ROOT / "README.md").read_text()
    text = run(arbiter_bin, "--help").stdout
    # The pool default the help states is README's configuration row.
    pool = re.search(r"ARBITER_DB_POOL \(([^)]*)\)", text).group(1)
    row = next(l for l in readme.splitlines() if l.startswith("| `ARBITER_DB_POOL`"))
    assert pool.replace(" x ", " × ") in row, (pool, row)
    listen = re.search(r"ARBITER_LISTEN \(([^;)]*)", text).group(1)
    assert f"`{listen}`" in next(l for l in readme.splitlines() if l.startswith("| `ARBITER_LISTEN`"))
    # Every subcommand the help lists is in README's list, and the other way round.
    listed = set(re.findall(r"^  ([\w-]+)  ", text, re.M))
    para = re.search(r"Subcommands of the one binary:(.*?)\n\n", readme, re.S).group(1)
    in_readme = set(re.findall(r"`arbiter ([\w-]+)", para))
    assert listed == in_readme, (listed, in_readme)
    keys = run(arbiter_bin, "keys", "--help").stdout
    for sub in ("create", "list", "revoke"):
        assert f"arbiter keys {sub}" in keys
        assert sub in para


def test_migrate_dry_run_does_not_migrate(arbiter_bin, make_db):
    d = make_db(migrate=False)
    cp = run(arbiter_bin, "migrate", "--dry-run", db=d.owner_url)
    assert cp.returncode == 2, (cp.stdout, cp.stderr)
    tables = h.psql_value(d.admin_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")
    assert tables == "0", f"migrate --dry-run created {tables} tables"


def test_keys_list_rejects_extra_arguments_before_connecting(arbiter_bin, db):
    ok = run(arbiter_bin, "keys", "list", db=db.service_url)
    assert ok.returncode == 0 and ok.stdout.startswith("ID"), ok.stderr
    bad = run(arbiter_bin, "keys", "list", "--role", "ops", db=db.service_url)
    assert bad.returncode == 2 and "--role" in bad.stderr


def test_ci_turns_a_skip_into_a_failure(tmp_path):
    """tests/api/ci_strict.py, the plugin conftest.py loads: the same
    skipping test passes as a skip without CI and fails with CI=true."""
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no such tool')\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))

    def pytest_run(ci: str):
        e = dict(env, CI=ci)
        return subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                               "-p", "ci_strict", str(tmp_path)], capture_output=True, text=True,
                              env=e, cwd=str(tmp_path), timeout=60)
    local = pytest_run("")
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    ci = pytest_run("true")
    assert ci.returncode == 1 and "1 failed" in ci.stdout, ci.stdout
    assert "CI=true makes a skip a failure" in ci.stdout and "no such tool" in ci.stdout, ci.stdout
