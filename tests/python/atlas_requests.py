#!/usr/bin/env python3
"""An Atlas script as users write them, with Python requests and HTTPDigestAuth, pointed at
dbcert. Usage: atlas_requests.py BASE_URL PUBLIC_KEY PRIVATE_KEY

Creates a project, a MANAGED X.509 user and a certificate, lists it, and checks a wrong key is
refused. Prints "ok" and exits 0 on success; any failed check exits non-zero (explicit checks,
not `assert`, which `python -O` and PYTHONOPTIMIZE remove).
"""

import sys

import requests
from requests.auth import HTTPDigestAuth


def check(condition: bool, detail: object) -> None:
    """Exits with status 1 and `detail` on stderr unless `condition` holds."""
    if not condition:
        raise SystemExit(f"check failed: {detail}")


def main() -> None:
    base, public_key, private_key = sys.argv[1:4]
    api = base.rstrip("/") + "/api/atlas/v1.0"
    auth = HTTPDigestAuth(public_key, private_key)
    session = requests.Session()
    session.auth = auth

    orgs = session.get(f"{api}/orgs")
    check(orgs.status_code == 200, orgs.text)
    org_id = orgs.json()["results"][0]["id"]

    project = session.post(f"{api}/groups", json={"name": "from-python", "orgId": org_id})
    check(project.status_code == 201, project.text)
    group_id = project.json()["id"]

    user = session.post(
        f"{api}/groups/{group_id}/databaseUsers",
        json={
            "databaseName": "$external",
            "groupId": group_id,
            "roles": [{"databaseName": "admin", "roleName": "readAnyDatabase"}],
            "username": "py.user@example.com",
            "x509Type": "MANAGED",
        },
    )
    check(user.status_code == 201, user.text)

    cert = session.post(
        f"{api}/groups/{group_id}/databaseUsers/py.user@example.com/certs",
        json={"monthsUntilExpiration": 12},
    )
    check(cert.status_code == 201, cert.text)
    pem = cert.text
    check(pem.startswith("-----BEGIN CERTIFICATE-----\n"), pem[:80])
    check(pem.endswith("-----END " + "PRIVATE KEY-----\n"), pem[-80:])

    # v2, with the versioned media type the Atlas clients send.
    media = "application/vnd.atlas.2023-01-01+json"
    listed = session.get(
        f"{base.rstrip('/')}/api/atlas/v2/groups/{group_id}/databaseUsers/py.user@example.com/certs",
        headers={"Accept": media},
        params={"pretty": "true"},
    )
    check(listed.status_code == 200, listed.text)
    check(listed.headers["Content-Type"] == media + ";charset=utf-8", listed.headers)
    body = listed.json()
    check(body["totalCount"] == 1, body)
    check(isinstance(body["results"][0]["_id"], int), body)
    check('"totalCount" : 1' in listed.text, listed.text)

    wrong = requests.get(f"{api}/orgs", auth=HTTPDigestAuth(public_key, "00000000-0000-0000-0000-000000000000"))
    check(wrong.status_code == 401, wrong.text)
    check(wrong.headers["WWW-Authenticate"].startswith('Digest realm="MMS Public API"'), wrong.headers)

    print("ok")


if __name__ == "__main__":
    main()
