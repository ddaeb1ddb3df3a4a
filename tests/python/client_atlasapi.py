#!/usr/bin/env python3
"""PyPI `atlasapi==2.0.11` against dbcert, with only the base URL changed (its `BASE_URL`
environment variable). Usage: client_atlasapi.py BASE_URL PUBLIC_KEY PRIVATE_KEY

Drives every call the client offers for organizations, projects, database users and events;
it has none for certificates or API keys, which go through its own transport
(`Atlas.network`). Calls for teams, console users and project settings (resources dbcert does
not model) are not driven. Each step is reported as `atlas_client_run` describes.

Client bugs, each checked as "the client fails, and dbcert answers what Atlas answers":
- `DatabaseUsers.get_a_single_database_user`, `update_a_database_user` and
  `delete_a_database_user` hard-code the `admin` database, where Atlas keeps `$external`
  (X.509) users: Atlas answers 404 USERNAME_NOT_FOUND there.
- `Organizations.count` reads `TotalCount`; Atlas's attribute is `totalCount`, so it is 0.
- `Network.post` parses every answer as JSON, and `POST …/certs` answers PEM text.
- `DatabaseUsersPermissionsSpecs` has no `x509Type` (no X.509 user can be made with it), and
  its `IAMType.NONE` sends `"None"` (Atlas: `"NONE"`): the script extends the spec class and
  hands it to the client's own create call.
- `DatabaseUsersUpdatePermissionsSpecs()` raises AttributeError (`None.value`): the script
  builds the spec without its constructor.
- `Network.delete` raises its errors with `{"deleted": True}` instead of the answer.
"""

import os
import sys
from datetime import datetime, timedelta

import requests

from atlas_client_run import (
    OBJECT_ID,
    CheckFailed,
    Plain,
    Steps,
    args,
    check,
    check_certificate_pem,
    check_error,
)

BASE, PUBLIC_KEY, PRIVATE_KEY = args()
# The client reads its base URL from the environment when it is imported.
os.environ["BASE_URL"] = BASE

from atlasapi.atlas import Atlas  # noqa: E402
from atlasapi.settings import Settings  # noqa: E402
from atlasapi.errors import ErrAtlasNotFound  # noqa: E402
from atlasapi.events_event_types import AtlasEventTypes  # noqa: E402
from atlasapi.specs import DatabaseUsersPermissionsSpecs, DatabaseUsersUpdatePermissionsSpecs  # noqa: E402
from atlasapi.specs import IAMType, RoleSpecs  # noqa: E402

API = f"{BASE}/api/atlas/v1.0"
USER = "atlasapi.user"
PROJECT = "from-atlasapi"


class X509UserSpecs(DatabaseUsersPermissionsSpecs):
    """The client's user spec with the `x509Type` it lacks."""

    def getSpecs(self):
        specs = super().getSpecs()
        specs["databaseName"] = "$external"
        specs["x509Type"] = "MANAGED"
        specs.pop("awsIAMType", None)
        return specs


def expect_not_found(function, error_code):
    """Runs a client call that must fail with Atlas's 404 `error_code`."""
    try:
        function()
    except ErrAtlasNotFound as error:
        details = error.details if isinstance(error.details, dict) else {}
        check(details.get("errorCode") == error_code, details)
        return
    raise CheckFailed("the call did not fail with 404")


def main():
    steps = Steps()
    plain = Plain(BASE, PUBLIC_KEY, PRIVATE_KEY)
    # A project's first certificate also makes its RSA-4096 CA key, which on a loaded 2-core
    # machine can pass the client's default timeout of 10 s.
    Settings.requests_timeout = 120
    atlas = Atlas(PUBLIC_KEY, PRIVATE_KEY)

    # === Organizations
    def org_list():
        found = list(atlas.Organizations.organizations)
        check(len(found) == 1 and OBJECT_ID.match(found[0].id), [vars(o) for o in found])
        check(found[0].name == "Default Organization" and not found[0].is_deleted, vars(found[0]))
        return found[0]

    org = steps.call("Organizations.organizations", org_list)
    org_id = org.id if org else plain.request("GET", "/orgs").json()["results"][0]["id"]
    org_name = "Default Organization"

    def org_count():
        # Client bug: it reads `TotalCount`; Atlas (and dbcert) answer `totalCount`.
        check(atlas.Organizations.count == 0, "the client's count is no longer 0")
        body = atlas.network.get(f"{API}/orgs/")
        check(body.get("totalCount") == 1 and "TotalCount" not in body, body)

    steps.call("Organizations.count [client bug: reads TotalCount]", org_count)

    def org_by_name():
        found = atlas.Organizations.organization_by_name(org_name)
        check(found.id == org_id and found.name == org_name, vars(found))

    steps.call("Organizations.organization_by_name", org_by_name)

    def org_by_id():
        found = atlas.Organizations.organization_by_id(org_id)
        check(found.id == org_id and found.name == org_name, vars(found))

    steps.call("Organizations.organization_by_id", org_by_id)

    # === Projects (the client cannot create one: its own transport does)
    def create_project():
        body = atlas.network.post(f"{API}/groups", {"name": PROJECT, "orgId": org_id})
        check(OBJECT_ID.match(body["id"]) and body["name"] == PROJECT, body)
        return body["id"]

    group_id = steps.call("network.post /groups (the client has no project create)", create_project)
    if group_id is None:
        group_id = plain.request("POST", "/groups", json={"name": PROJECT}).json()["id"]
    atlas.group = group_id

    def org_projects():
        projects = list(atlas.Organizations.get_all_projects_for_org(org_id))
        check([p.id for p in projects] == [group_id], [vars(p) for p in projects])
        check(projects[0].name == PROJECT and projects[0].org_id == org_id, vars(projects[0]))

    steps.call("Organizations.get_all_projects_for_org", org_projects)

    def projects():
        found = list(atlas.Projects.projects)
        check([p.id for p in found] == [group_id], [vars(p) for p in found])

    steps.call("Projects.projects", projects)

    def project_by_name():
        found = atlas.Projects.project_by_name(PROJECT)
        check(found.id == group_id and found.name == PROJECT, vars(found))

    steps.call("Projects.project_by_name", project_by_name)

    def project_by_id():
        found = atlas.Projects.project_by_id(group_id)
        check(found.id == group_id and found.org_id == org_id, vars(found))
        check(found.cluster_count == 0, vars(found))

    steps.call("Projects.project_by_id", project_by_id)

    # === Database users
    def create_user():
        spec = X509UserSpecs(USER, aws_iam_type=IAMType.NONE)
        spec.add_role("admin", RoleSpecs.readAnyDatabase)
        body = atlas.DatabaseUsers.create_a_database_user(spec)
        check(body["username"] == USER and body["databaseName"] == "$external", body)
        check(body["x509Type"] == "MANAGED" and body["groupId"] == group_id, body)

    steps.call("DatabaseUsers.create_a_database_user [client lacks x509Type]", create_user)

    def all_users():
        body = atlas.DatabaseUsers.get_all_database_users()
        check(body["totalCount"] == 1 and body["results"][0]["username"] == USER, body)

    steps.call("DatabaseUsers.get_all_database_users", all_users)

    def all_users_iterable():
        users = list(atlas.DatabaseUsers.get_all_database_users(iterable=True))
        check([u["username"] for u in users] == [USER], users)

    steps.call("DatabaseUsers.get_all_database_users(iterable=True)", all_users_iterable)

    def get_user():
        expect_not_found(
            lambda: atlas.DatabaseUsers.get_a_single_database_user(USER), "USERNAME_NOT_FOUND"
        )
        body = atlas.network.get(f"{API}/groups/{group_id}/databaseUsers/$external/{USER}")
        check(body["username"] == USER and body["x509Type"] == "MANAGED", body)

    steps.call("DatabaseUsers.get_a_single_database_user [client bug: admin database]", get_user)

    def update_user():
        # Client bug: DatabaseUsersUpdatePermissionsSpecs() raises AttributeError (it reads
        # `.value` of its `aws_iam_type`, None), so the spec is built without its constructor.
        try:
            DatabaseUsersUpdatePermissionsSpecs()
        except AttributeError:
            pass
        else:
            raise CheckFailed("DatabaseUsersUpdatePermissionsSpecs() works now")
        spec = DatabaseUsersUpdatePermissionsSpecs.__new__(DatabaseUsersUpdatePermissionsSpecs)
        spec.roles, spec.password = [], None
        spec.add_role("admin", RoleSpecs.readWriteAnyDatabase)
        expect_not_found(
            lambda: atlas.DatabaseUsers.update_a_database_user(USER, spec), "USERNAME_NOT_FOUND"
        )
        body = atlas.network.patch(
            f"{API}/groups/{group_id}/databaseUsers/$external/{USER}", spec.getSpecs()
        )
        check(body["roles"] == [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}], body)

    steps.call(
        "DatabaseUsers.update_a_database_user [client bugs: admin database, spec constructor]",
        update_user,
    )

    # === Certificates (no call in the client: its own transport)
    certs = f"{API}/groups/{group_id}/databaseUsers/{USER}/certs"

    def create_certificate():
        try:
            atlas.network.post(certs, {"monthsUntilExpiration": 3})
        except requests.exceptions.JSONDecodeError:
            pass
        else:
            raise CheckFailed("network.post parsed the PEM answer")
        answer = plain.request("POST", certs, json={"monthsUntilExpiration": 3})
        check(answer.status_code == 201, answer.text)
        check_certificate_pem(answer.text, USER)

    steps.call("network.post …/certs [client bug: parses the PEM answer as JSON]", create_certificate)

    def list_certificates():
        body = atlas.network.get(certs)
        check(body["totalCount"] == 2, body)
        for cert in body["results"]:
            check(isinstance(cert["_id"], int) and cert["groupId"] == group_id, cert)
            check(cert["subject"] == f"CN={USER}", cert)

    steps.call("network.get …/certs", list_certificates)

    # === API keys (no call in the client: its own transport, on the routes its settings name)
    def org_api_keys():
        body = atlas.network.get(f"{API}/orgs/{org_id}/apiKeys")
        check(PUBLIC_KEY in [k["publicKey"] for k in body["results"]], body)
        return [k for k in body["results"] if k["publicKey"] == PUBLIC_KEY][0]["id"]

    key_id = steps.call("network.get /orgs/{orgId}/apiKeys", org_api_keys)

    def org_api_key():
        body = atlas.network.get(f"{API}/orgs/{org_id}/apiKeys/{key_id}")
        check(body["id"] == key_id and body["publicKey"] == PUBLIC_KEY, body)
        check("privateKey" not in body or "*" in body["privateKey"], "private key shown")

    steps.call("network.get /orgs/{orgId}/apiKeys/{apiUserId}", org_api_key)

    def project_api_keys():
        body = atlas.network.get(f"{API}/groups/{group_id}/apiKeys")
        check(isinstance(body["results"], list) and "totalCount" in body, body)

    steps.call("network.get /groups/{groupId}/apiKeys", project_api_keys)

    # === Events (after the calls above made some)
    since = datetime.utcnow() - timedelta(hours=1)  # naive, as the client's callers pass it

    def check_events(events):
        check(events, "no events")
        names = [e.event_type.name for e in events]
        check("MONGODB_USER_ADDED" in names, names)
        check("MONGODB_USER_X509_CERT_CREATED" in names, names)
        dates = [e.created_date for e in events]
        check(dates == sorted(dates, reverse=True), f"not newest first: {dates}")
        check(all(e.group_id == group_id for e in events), names)

    steps.call("Events.all", lambda: check_events(atlas.Events.all))
    steps.call("Events.since", lambda: check_events(atlas.Events.since(since)))

    def by_type(function):
        events = function(AtlasEventTypes.MONGODB_USER_X509_CERT_CREATED)
        check(len(events) == 2, [e.as_dict() for e in events])
        check(
            all(e.event_type is AtlasEventTypes.MONGODB_USER_X509_CERT_CREATED for e in events),
            [e.as_dict() for e in events],
        )

    steps.call("Events.all_by_type", lambda: by_type(atlas.Events.all_by_type))
    steps.call(
        "Events.since_by_type", lambda: by_type(lambda t: atlas.Events.since_by_type(since, t))
    )

    # === Deleting
    def delete_user():
        # The client's delete errors carry {"deleted": True}, not the answer: the answer is
        # read again without it.
        try:
            atlas.DatabaseUsers.delete_a_database_user(USER)
        except ErrAtlasNotFound:
            pass
        else:
            raise CheckFailed("the delete on admin did not fail with 404")
        admin = f"/groups/{group_id}/databaseUsers/admin/{USER}"
        check_error(plain.request("DELETE", admin), 404, "USERNAME_NOT_FOUND")
        atlas.network.delete(f"{API}/groups/{group_id}/databaseUsers/$external/{USER}")
        check(atlas.DatabaseUsers.get_all_database_users()["totalCount"] == 0, "user still listed")

    steps.call("DatabaseUsers.delete_a_database_user [client bug: admin database]", delete_user)

    def delete_project():
        body = atlas.network.delete(f"{API}/groups/{group_id}")
        check(body == {"deleted": True}, body)
        check_error(plain.request("GET", f"/groups/{group_id}"), 404, "GROUP_NOT_FOUND")

    steps.call("network.delete /groups/{groupId} (the client has no project delete)", delete_project)
    steps.done()


if __name__ == "__main__":
    main()
