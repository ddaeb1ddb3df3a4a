#!/usr/bin/env python3
"""Reuses one kept-alive HTTP/1.1 connection after an idle pause, as client pools do, with the
standard library's http.client (which neither retries nor reconnects on its own).
Usage: keep_alive.py HOST PORT IDLE_SECONDS

Sends GET /api/atlas/v1.0/orgs, waits IDLE_SECONDS, sends it again on the same connection, and
prints "ok" when both got an answer (401: no credentials) from the same local port. Any failure
exits non-zero (explicit checks, not `assert`, which `python -O` removes).
"""

import http.client
import sys
import time


def check(condition: bool, detail: object) -> None:
    """Exits with status 1 and `detail` on stderr unless `condition` holds."""
    if not condition:
        raise SystemExit(f"check failed: {detail}")


def ask(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/api/atlas/v1.0/orgs")
    response = connection.getresponse()
    response.read()
    check(not response.will_close, "the server asked to close the connection")
    return response.status


def main() -> None:
    host, port, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    connection = http.client.HTTPConnection(host, port, timeout=60)
    check(ask(connection) == 401, "first request")
    first = connection.sock.getsockname()
    time.sleep(idle)
    # http.client raises RemoteDisconnected here if the server closed the idle connection.
    check(ask(connection) == 401, "second request")
    check(connection.sock.getsockname() == first, "the second request used a new connection")
    print("ok")


if __name__ == "__main__":
    main()
