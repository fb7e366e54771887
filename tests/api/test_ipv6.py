"""IPv6 listening (issue 22, item 7): ARBITER_LISTEN=[::1]:port serves over
IPv6, [::]:port over IPv6 and IPv4 (dual stack), and an IPv6 address
without brackets is refused at start naming the variable. The test machine
has ::1 (`ip -6 addr`); a machine without it fails here, it does not skip.
"""

from __future__ import annotations

import socket
import time

import pytest

import helpers as h


def healthz(family: int, host: str, port: int, timeout: float = 2.0) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def free_port6() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def start_on(make_server, db, listen: str, probe) -> h.Server:
    srv = make_server(db.service_url, env={"ARBITER_LISTEN": listen}, name="ipv6", start=False)
    srv.start(wait=False)
    deadline = time.monotonic() + srv.START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        assert srv.alive(), srv.log_tail()
        try:
            if probe().startswith(b"HTTP/1.1 200 "):
                return srv
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"no /healthz on {listen}: {last!r}\n{srv.log_tail()}")


def test_loopback_ipv6(make_server, db):
    port = free_port6()
    srv = start_on(make_server, db, f"[::1]:{port}",
                   lambda: healthz(socket.AF_INET6, "::1", port))
    reply = healthz(socket.AF_INET6, "::1", port)
    assert b"application/json" in reply.split(b"\r\n\r\n")[0].lower()
    # ::1 is not 127.0.0.1: nothing answers over IPv4 on that port
    with pytest.raises(OSError):
        healthz(socket.AF_INET, "127.0.0.1", port, timeout=1)
    assert srv.stop() == 0


def test_any_address_is_dual_stack(make_server, db):
    port = free_port6()
    srv = start_on(make_server, db, f"[::]:{port}",
                   lambda: healthz(socket.AF_INET6, "::1", port))
    assert healthz(socket.AF_INET, "127.0.0.1", port).startswith(b"HTTP/1.1 200 ")
    assert srv.stop() == 0


@pytest.mark.parametrize("listen", ["::1:8080", "[::1]8080", "[::1:8080", "[]:8080",
                                    "[::1]:65536", "[::g]:80", "localhost:80", "[127.0.0.1]:80"])
def test_bad_listen_addresses_stop_start_up(arbiter_bin, db, listen):
    cp = h.run_bin(arbiter_bin, ["serve"], database_url=db.service_url,
                   env={"ARBITER_LISTEN": listen}, timeout=30)
    assert cp.returncode == 2, (cp.returncode, cp.stderr)
    assert "ARBITER_LISTEN" in cp.stderr, cp.stderr
