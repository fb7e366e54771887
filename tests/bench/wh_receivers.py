"""Webhook receivers for tests/bench/run.sh (issue 24): one that accepts
each connection, reads the request and hangs HANG_S seconds before it
answers (the sender gives up first, at 10 s), and a healthy one that
answers 204 at once and appends, per delivery, the time it arrived and
the event's own time (the case event's `at`).

Usage: wh_receivers.py PORTS_FILE LOG_FILE [HANG_S]
Writes "hang_port healthy_port" to PORTS_FILE once both listen; runs
until SIGTERM."""
import http.server
import json
import signal
import sys
import threading
import time


def main(argv):
    ports_file, log_file = argv[1], argv[2]
    hang_s = float(argv[3]) if len(argv) > 3 else 30.0
    log = open(log_file, "a", buffering=1)
    lock = threading.Lock()
    stop = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stop.wait(hang_s)
            try:
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *a):
            pass

    class Healthy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got = time.time()
            try:
                at = json.loads(body)["data"].get("at")
            except (ValueError, KeyError, AttributeError):
                at = None
            with lock:
                log.write("%.6f %s %s\n" % (got, self.headers.get("webhook-id"), at))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass   # the sender gave up on a hanging reply

    servers = [Quiet(("127.0.0.1", 0), Hang), Quiet(("127.0.0.1", 0), Healthy)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    with open(ports_file + ".tmp", "w") as f:
        f.write("%d %d\n" % (servers[0].server_address[1], servers[1].server_address[1]))
    import os
    os.replace(ports_file + ".tmp", ports_file)

    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    while not stop.is_set():
        stop.wait(1)
    for s in servers:
        s.shutdown()


if __name__ == "__main__":
    main(sys.argv)
