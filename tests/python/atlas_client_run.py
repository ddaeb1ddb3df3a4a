"""What the real-client scripts (tests/python/client_*.py) share: each call a script makes
through a client is one step, reported on stdout as one line

    ATLAS-CLIENT-CALL {"call": "...", "ok": true|false, "detail": "..."}

so that the Rust test (tests/integration/atlas_clients.rs) can hold every step to its table of
calls. A failed step does not stop the script: the next steps still run, so one run names
every missing server behaviour. The script ends with `ATLAS-CLIENT-DONE`; a script that dies
before it fails the test whatever its steps said.

Checks are explicit (`check`), not `assert`, which `python -O` removes.
"""

import json
import re
import sys
import traceback

import requests
from requests.auth import HTTPDigestAuth

PREFIX = "ATLAS-CLIENT-CALL "
DONE = "ATLAS-CLIENT-DONE"
PEM_CERT = "-----BEGIN CERTIFICATE-----\n"
PEM_KEY_END = "-----END " + "PRIVATE KEY-----\n"
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class CheckFailed(Exception):
    """A result differs from what Atlas answers."""


def check(condition, detail):
    """Raises `CheckFailed(detail)` unless `condition` holds."""
    if not condition:
        raise CheckFailed(str(detail)[:600])


def args():
    """BASE_URL PUBLIC_KEY PRIVATE_KEY from the command line."""
    base, public_key, private_key = sys.argv[1:4]
    return base.rstrip("/"), public_key, private_key


class Steps:
    """Runs and reports the steps of one script."""

    def __init__(self):
        self.failed = []

    def call(self, name, function):
        """Runs `function` as the step `name`; returns its result, or None when it failed."""
        try:
            result = function()
        except Exception as error:  # noqa: BLE001 - every failure is the step's result
            detail = f"{type(error).__name__}: {error}"
            if not isinstance(error, CheckFailed):
                frames = traceback.extract_tb(error.__traceback__)
                where = frames[-1] if frames else None
                if where is not None:
                    detail += f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
            self._report(name, False, detail)
            self.failed.append(name)
            return None
        self._report(name, True, "")
        return result

    def done(self):
        """Reports the end of the script."""
        print(DONE, flush=True)

    @staticmethod
    def _report(name, ok, detail):
        line = json.dumps({"call": name, "ok": ok, "detail": detail[:1500]})
        print(PREFIX + line, flush=True)


class Plain:
    """Python requests with HTTP Digest: what the scripts use to set up what a client cannot
    (and to read what a client misreads), never to replace a call the client offers."""

    def __init__(self, base, public_key, private_key):
        self.api = f"{base}/api/atlas/v1.0"
        self.auth = HTTPDigestAuth(public_key, private_key)

    def request(self, method, target, **kwargs):
        """`target` is a path under /api/atlas/v1.0, or a whole URL."""
        url = target if target.startswith("http") else self.api + target
        return requests.request(method, url, auth=self.auth, timeout=120, **kwargs)


def check_error(response, status, error_code):
    """Checks an Atlas error answer: the HTTP status and the body's errorCode."""
    check(response.status_code == status, f"{response.status_code}: {response.text}")
    body = response.json()
    check(body.get("errorCode") == error_code, body)
    check(body.get("error") == status, body)


def check_certificate_pem(pem, username):
    """Checks the answer of `POST …/certs`: the certificate then its private key, as text."""
    check(isinstance(pem, str) and pem.startswith(PEM_CERT), repr(pem)[:120])
    check(pem.endswith(PEM_KEY_END), repr(pem)[-120:])
    check(username, "no username")


def x509_user(group_id, username, role="readAnyDatabase"):
    """The body of a MANAGED X.509 database user, as Atlas's documentation writes it."""
    return {
        "databaseName": "$external",
        "groupId": group_id,
        "roles": [{"databaseName": "admin", "roleName": role}],
        "username": username,
        "x509Type": "MANAGED",
    }
