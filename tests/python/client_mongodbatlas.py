#!/usr/bin/env python3
"""PyPI `mongodbatlas==0.2.6` against dbcert, with only the base URL changed
(`AtlasRequests.ATLAS_BASE_URL`). Usage: client_mongodbatlas.py BASE_URL PUBLIC_KEY PRIVATE_KEY

Drives every call the client (`AtlasAPI`, `OPCAPI`, `AtlasRequests`) offers for organizations
and projects; it has none for database users, certificates, events or API keys, which go through
its own transport (`AtlasRequests.atlas_get/atlas_post/atlas_patch/atlas_delete`). Its cluster
calls are not driven (dbcert has no clusters). Each step is reported as `atlas_client_run`
describes.

Client bugs, each checked as "the client fails, and dbcert answers what Atlas answers":
- `get_one_cached_organization` and `delete_organization` request `/orgs/{id}` without the base URL (requests raises
  MissingSchema, whatever the server).
- `delete_project` and `atlas_delete` parse the answer as JSON; Atlas answers `DELETE` with 204
  and no body.
- `atlas_post` parses the answer as JSON, and `POST …/certs` answers PEM text.
"""

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
    x509_user,
)
from mongodbatlas.atlasapi import AtlasAPI
from mongodbatlas.atlaskey import AtlasKey
from mongodbatlas.atlasrequests import AtlasRequests
from mongodbatlas.opcapi import OPCAPI

BASE, PUBLIC_KEY, PRIVATE_KEY = args()
AtlasRequests.ATLAS_BASE_URL = f"{BASE}/api/atlas/v1.0"
PROJECT = "from-mongodbatlas"
USER = "mongodbatlas.user"


def expect_json_error(function):
    """Runs a client call that must fail parsing a body that is not JSON."""
    try:
        function()
    except requests.exceptions.JSONDecodeError:
        return
    raise CheckFailed("the client parsed the answer")


def main():
    steps = Steps()
    plain = Plain(BASE, PUBLIC_KEY, PRIVATE_KEY)
    key = AtlasKey(PUBLIC_KEY, PRIVATE_KEY)
    api = AtlasAPI(key)
    opc = OPCAPI(key)
    transport = api._atlas_requests

    # === Organizations
    def organizations():
        found = list(api.get_organizations())
        check(len(found) == 1 and OBJECT_ID.match(found[0]["id"]), found)
        check(found[0]["name"] == "Default Organization", found)
        return found[0]["id"]

    org_id = steps.call("AtlasAPI.get_organizations", organizations)
    if org_id is None:
        org_id = plain.request("GET", "/orgs").json()["results"][0]["id"]

    def this_organization():
        found = api.get_this_organization()
        check(found["id"] == org_id, found)

    steps.call("AtlasAPI.get_this_organization", this_organization)

    def one_organization():
        found = api.get_one_organization(org_id)
        check(found["id"] == org_id and found["name"] == "Default Organization", found)

    steps.call("AtlasAPI.get_one_organization", one_organization)

    def cached_organization():
        try:
            api.get_one_cached_organization(org_id)
        except requests.exceptions.MissingSchema:
            return
        raise CheckFailed("get_one_cached_organization works now")

    steps.call(
        "AtlasAPI.get_one_cached_organization [client bug: no base URL]", cached_organization
    )

    def opc_organization():
        found = opc.get_this_organization()
        check(found.id == org_id and found.name == "Default Organization", found.resource)

    steps.call("OPCAPI.get_this_organization", opc_organization)

    # === Projects
    def create_project():
        found = api.create_project(org_id, PROJECT)
        check(OBJECT_ID.match(found["id"]) and found["name"] == PROJECT, found)
        check(found["orgId"] == org_id and found["clusterCount"] == 0, found)
        return found["id"]

    group_id = steps.call("AtlasAPI.create_project", create_project)
    if group_id is None:
        group_id = plain.request("POST", "/groups", json={"name": PROJECT}).json()["id"]

    def projects():
        found = list(api.get_projects())
        check([p["id"] for p in found] == [group_id], found)

    steps.call("AtlasAPI.get_projects", projects)

    def project_ids():
        check(list(api.get_project_ids()) == [group_id], "ids")

    steps.call("AtlasAPI.get_project_ids", project_ids)

    def one_project():
        found = api.get_one_project(group_id)
        check(found["id"] == group_id and found["name"] == PROJECT, found)

    steps.call("AtlasAPI.get_one_project", one_project)

    def cached_project():
        found = api.get_one_cached_project(group_id)
        check(found["id"] == group_id, found)

    steps.call("AtlasAPI.get_one_cached_project", cached_project)

    def opc_projects():
        found = opc.get_projects()
        check([p.id for p in found] == [group_id], [p.resource for p in found])
        one = opc.get_one_project(group_id)
        check(one.name == PROJECT and one.resource["created"].tzinfo is not None, one.resource)

    steps.call("OPCAPI.get_projects, get_one_project", opc_projects)

    def opc_org_and_projects():
        org = opc.get_organization_and_projects()
        check(org.id == org_id and list(org._projects) == [group_id], org.resource)

    steps.call("OPCAPI.get_organization_and_projects", opc_org_and_projects)

    def names_and_pages():
        check(list(transport.get_names("groups")) == [PROJECT], "names")
        check(list(transport.get_ids("orgs")) == [org_id], "ids")
        results, next_link = transport.get_resource_by_page("/groups")
        check([p["id"] for p in results] == [group_id] and next_link is None, results)

    steps.call("AtlasRequests.get_names, get_ids, get_resource_by_page", names_and_pages)

    def paging():
        # A second project, then pages of one: the client follows the `next` link.
        transport.atlas_post("/groups", {"name": PROJECT + "-2", "orgId": org_id})
        pages = AtlasRequests(key, page_size=1)
        first = pages.atlas_get("/groups", items_per_page=1)
        check(first["totalCount"] == 2 and len(first["results"]) == 1, first)
        check(first["links"][-1]["rel"] == "next", first["links"])
        found = [p["name"] for p in transport.get_resource_by_item("/groups")]
        check(sorted(found) == [PROJECT, PROJECT + "-2"], found)

    steps.call("AtlasRequests.get_resource_by_item (pages)", paging)

    # === Database users, certificates, events, API keys: its own transport
    users = f"/groups/{group_id}/databaseUsers"

    def create_user():
        found = transport.atlas_post(users, x509_user(group_id, USER))
        check(found["username"] == USER and found["x509Type"] == "MANAGED", found)

    steps.call("atlas_post …/databaseUsers", create_user)

    def read_users():
        listed = transport.atlas_get(users)
        check([u["username"] for u in listed["results"]] == [USER], listed)
        one = transport.atlas_get(f"{users}/$external/{USER}")
        check(one["databaseName"] == "$external" and one["groupId"] == group_id, one)

    steps.call("atlas_get …/databaseUsers, …/databaseUsers/$external/{username}", read_users)

    def update_user():
        roles = [{"databaseName": "admin", "roleName": "readWriteAnyDatabase"}]
        found = transport.atlas_patch(f"{users}/$external/{USER}", {"roles": roles})
        check(found["roles"] == roles, found)

    steps.call("atlas_patch …/databaseUsers/$external/{username}", update_user)

    certs = f"{users}/{USER}/certs"

    def create_certificate():
        expect_json_error(lambda: transport.atlas_post(certs, {"monthsUntilExpiration": 1}))
        answer = plain.request("POST", certs, json={"monthsUntilExpiration": 1})
        check(answer.status_code == 201, answer.text)
        check_certificate_pem(answer.text, USER)

    steps.call(
        "atlas_post …/certs [client bug: parses the PEM answer as JSON]", create_certificate
    )

    def list_certificates():
        found = transport.atlas_get(certs)
        check(found["totalCount"] == 2, found)
        check(all(c["subject"] == f"CN={USER}" for c in found["results"]), found)

    steps.call("atlas_get …/certs", list_certificates)

    def project_events():
        found = transport.atlas_get(f"/groups/{group_id}/events")
        names = [e["eventTypeName"] for e in found["results"]]
        check("MONGODB_USER_X509_CERT_CREATED" in names, names)
        check("MONGODB_USER_ADDED" in names, names)
        one = transport.atlas_get(f"/groups/{group_id}/events/{found['results'][0]['id']}")
        check(one["id"] == found["results"][0]["id"], one)

    steps.call("atlas_get /groups/{groupId}/events, …/events/{eventId}", project_events)

    def org_events():
        found = transport.atlas_get(f"/orgs/{org_id}/events")
        check(found["totalCount"] >= 1, found)
        one = transport.atlas_get(f"/orgs/{org_id}/events/{found['results'][0]['id']}")
        check(one["id"] == found["results"][0]["id"], one)

    steps.call("atlas_get /orgs/{orgId}/events, …/events/{eventId}", org_events)

    def api_keys():
        created = transport.atlas_post(
            f"/orgs/{org_id}/apiKeys", {"desc": "from mongodbatlas", "roles": ["ORG_MEMBER"]}
        )
        check(len(created["privateKey"]) == 36 and created["desc"] == "from mongodbatlas", created)
        listed = transport.atlas_get(f"/orgs/{org_id}/apiKeys")
        check(created["id"] in [k["id"] for k in listed["results"]], listed)
        one = transport.atlas_get(f"/orgs/{org_id}/apiKeys/{created['id']}")
        check(one["publicKey"] == created["publicKey"], one)
        expect_json_error(lambda: transport.atlas_delete(f"/orgs/{org_id}/apiKeys/{created['id']}"))
        check_error(
            plain.request("GET", f"/orgs/{org_id}/apiKeys/{created['id']}"), 404, "INVALID_API_KEY_ID"
        )

    steps.call("atlas_post, atlas_get, atlas_delete /orgs/{orgId}/apiKeys[/{id}]", api_keys)

    def delete_user():
        expect_json_error(lambda: transport.atlas_delete(f"{users}/$external/{USER}"))
        check_error(plain.request("GET", f"{users}/$external/{USER}"), 404, "USERNAME_NOT_FOUND")

    steps.call("atlas_delete …/databaseUsers/$external/{username} [client bug: 204 as JSON]", delete_user)

    # === Organizations made and removed through the client
    def create_and_delete_organization():
        created = api.create_organization("from-mongodbatlas")
        org = created["organization"]
        check(OBJECT_ID.match(org["id"]) and org["name"] == "from-mongodbatlas", created)
        # delete_organization requests `/orgs/{id}` without the base URL, as
        # get_one_cached_organization does: deleted through the client's transport instead.
        try:
            api.delete_organization(org["id"])
        except requests.exceptions.MissingSchema:
            pass
        else:
            raise CheckFailed("delete_organization works now")
        expect_json_error(lambda: transport.atlas_delete(f"/orgs/{org['id']}"))
        check_error(plain.request("GET", f"/orgs/{org['id']}"), 404, "ORG_NOT_FOUND")

    steps.call(
        "AtlasAPI.create_organization, delete_organization [client bug: no base URL], "
        "atlas_delete /orgs/{orgId} [client bug: 204 as JSON]",
        create_and_delete_organization,
    )

    def delete_project():
        expect_json_error(lambda: api.delete_project(group_id))
        check_error(plain.request("GET", f"/groups/{group_id}"), 404, "GROUP_NOT_FOUND")

    steps.call("AtlasAPI.delete_project [client bug: 204 as JSON]", delete_project)
    steps.done()


if __name__ == "__main__":
    main()
