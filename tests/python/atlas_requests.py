#!/usr/bin/env python3
"""An Atlas script as users write them, with Python requests and HTTPDigestAuth, pointed at
dbcert. Usage: atlas_requests.py BASE_URL PUBLIC_KEY PRIVATE_KEY

Creates a project, a MANAGED X.509 user and a certificate, lists it, and checks a wrong key is
refused. Prints "ok" and exits 0 on success; any failed check raises.
"""

import sys

import requests
from requests.auth import HTTPDigestAuth


def main() -> None:
    base, public_key, private_key = sys.argv[1:4]
    api = base.rstrip("/") + "/api/atlas/v1.0"
    auth = HTTPDigestAuth(public_key, private_key)
    session = requests.Session()
    session.auth = auth

    orgs = session.get(f"{api}/orgs")
    assert orgs.status_code == 200, orgs.text
    org_id = orgs.json()["results"][0]["id"]

    project = session.post(f"{api}/groups", json={"name": "from-python", "orgId": org_id})
    assert project.status_code == 201, project.text
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
    assert user.status_code == 201, user.text

    cert = session.post(
        f"{api}/groups/{group_id}/databaseUsers/py.user@example.com/certs",
        json={"monthsUntilExpiration": 12},
    )
    assert cert.status_code == 201, cert.text
    pem = cert.text
    assert pem.startswith("-----BEGIN CERTIFICATE-----\n"), pem[:80]
    assert pem.endswith("-----END " + "PRIVATE KEY-----\n"), pem[-80:]

    # v2, with the versioned media type the Atlas clients send.
    media = "application/vnd.atlas.2023-01-01+json"
    listed = session.get(
        f"{base.rstrip('/')}/api/atlas/v2/groups/{group_id}/databaseUsers/py.user@example.com/certs",
        headers={"Accept": media},
        params={"pretty": "true"},
    )
    assert listed.status_code == 200, listed.text
    assert listed.headers["Content-Type"] == media + ";charset=utf-8", listed.headers
    body = listed.json()
    assert body["totalCount"] == 1, body
    assert isinstance(body["results"][0]["_id"], int), body
    assert '"totalCount" : 1' in listed.text, listed.text

    wrong = requests.get(f"{api}/orgs", auth=HTTPDigestAuth(public_key, "00000000-0000-0000-0000-000000000000"))
    assert wrong.status_code == 401, wrong.text
    assert wrong.headers["WWW-Authenticate"].startswith('Digest realm="MMS Public API"'), wrong.headers

    print("ok")


if __name__ == "__main__":
    main()
