#!/usr/bin/env python3
"""PyPI `mongodb-atlas-api-sdk==0.1.0` against dbcert, with only the base URL changed (the
`Atlas` manager's `url`, and `ApiKey.base_url`, which the client hard-codes to
https://cloud.mongodb.com whatever the manager's host).
Usage: client_mongodb_atlas_api_sdk.py BASE_URL PUBLIC_KEY PRIVATE_KEY

Drives every call the client offers for database users (`AtlasProject`, `DatabaseUser`) and
API keys (`ApiKey`, but `add_aws_ip_ranges`, which downloads AWS's ranges); it has none for
organizations, projects, certificates or events, which go through its own transport
(`Atlas.get_raw/post_raw/patch_raw/delete_raw`). Each step is reported as `atlas_client_run`
describes.

Client bugs, each checked as "the client fails, and dbcert answers what Atlas answers":
- `MongoDbAtlasApiException` maps USER_ALREADY_EXISTS (409) to `DatabaseUserNotFound`.
- `ApiKey(key_id=…)` without `public_id` never sets its `href`, so `exists` is always False.
- `ApiKey` keeps `keyisset("roles", key)`, a bool, as the key's roles.
"""

from datetime import datetime, timedelta

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
from mongodb_atlas_api_sdk.api_key import ApiKey
from mongodb_atlas_api_sdk.atlas_api_sdk import Atlas
from mongodb_atlas_api_sdk.atlas_project import AtlasProject
from mongodb_atlas_api_sdk.database_user import DatabaseUser
from mongodb_atlas_api_sdk.errors import DatabaseUserNotFound

BASE, PUBLIC_KEY, PRIVATE_KEY = args()
API = f"{BASE}/api/atlas/v1.0"
ApiKey.base_url = API
PROJECT = "from-mongodb-atlas-api-sdk"
USER = "sdk.user"
SCOPED_USER = "sdk.scoped"


def main():
    steps = Steps()
    plain = Plain(BASE, PUBLIC_KEY, PRIVATE_KEY)
    atlas = Atlas(PUBLIC_KEY, PRIVATE_KEY)
    atlas.url = API

    # === Organizations and projects: its own transport
    def organizations():
        found = atlas.get_raw(f"{API}/orgs").json()
        check(found["totalCount"] == 1 and OBJECT_ID.match(found["results"][0]["id"]), found)
        return found["results"][0]["id"]

    org_id = steps.call("get_raw /orgs", organizations)
    if org_id is None:
        org_id = plain.request("GET", "/orgs").json()["results"][0]["id"]

    def create_project():
        answer = atlas.post_raw(f"{API}/groups", json={"name": PROJECT, "orgId": org_id})
        check(answer.status_code == 201, answer.text)
        return answer.json()["id"]

    group_id = steps.call("post_raw /groups", create_project)
    if group_id is None:
        group_id = plain.request("POST", "/groups", json={"name": PROJECT}).json()["id"]
    project = AtlasProject(atlas, group_id)

    # === Database users
    def create_user():
        user = DatabaseUser(atlas, project, USER, x509_type="MANAGED")
        user.add_role("readAnyDatabase", "admin")
        user.create()
        path = f"/groups/{group_id}/databaseUsers/"
        check(user.href in (API + path + f"$external/{USER}", API + path + f"%24external/{USER}"), user.href)
        check(user.exists, "the created user does not exist")
        found = user.read()
        check(found["x509Type"] == "MANAGED" and found["databaseName"] == "$external", found)
        check(found["roles"] == [{"databaseName": "admin", "roleName": "readAnyDatabase"}], found)
        return user

    user = steps.call("DatabaseUser.create, exists, read", create_user)
    if user is None:
        user = DatabaseUser(atlas, project, USER, x509_type="MANAGED")

    def users():
        found = project.users
        check(list(found) == [USER], found)
        one = found[USER]
        check(one.roles[0].role_name == "readAnyDatabase" and one.href, one.roles)

    steps.call("AtlasProject.users", users)

    def duplicate():
        again = DatabaseUser(atlas, project, USER, x509_type="MANAGED")
        again.add_role("readAnyDatabase", "admin")
        try:
            again.create()
        except DatabaseUserNotFound as error:
            check(error.code == 409 and error.details["errorCode"] == "USER_ALREADY_EXISTS", error.details)
            return
        raise CheckFailed("a second create did not fail")

    steps.call("DatabaseUser.create twice [client bug: 409 raised as DatabaseUserNotFound]", duplicate)

    def update_user():
        user.add_role("readWriteAnyDatabase", "admin")
        user.update()
        found = user.read()
        check(
            [r["roleName"] for r in found["roles"]] == ["readAnyDatabase", "readWriteAnyDatabase"],
            found,
        )

    steps.call("DatabaseUser.update", update_user)

    def scoped_user():
        scoped = DatabaseUser(atlas, project, SCOPED_USER, x509_type="MANAGED")
        scoped.add_role("readAnyDatabase", "admin")
        scoped.add_scope("Cluster0", "CLUSTER")
        scoped.create()
        check([s.model for s in scoped.scopes] == [{"name": "Cluster0", "type": "CLUSTER"}], scoped.scopes)
        check(scoped.read()["scopes"] == [{"name": "Cluster0", "type": "CLUSTER"}], scoped.read())

    steps.call("DatabaseUser.add_scope, create (scopes stored)", scoped_user)

    def missing_user():
        check(not DatabaseUser(atlas, project, "nobody", x509_type="MANAGED").exists, "exists")

    steps.call("DatabaseUser.exists (unknown user)", missing_user)

    # === Certificates and events: its own transport
    certs = f"{API}/groups/{group_id}/databaseUsers/{USER}/certs"

    def certificates():
        answer = atlas.post_raw(certs, json={"monthsUntilExpiration": 2})
        check(answer.status_code == 201, answer.text)
        check_certificate_pem(answer.text, USER)
        listed = atlas.get_raw(certs).json()
        check(listed["totalCount"] == 1 and listed["results"][0]["subject"] == f"CN={USER}", listed)

    steps.call("post_raw, get_raw …/certs", certificates)

    def events():
        since = (datetime.utcnow() - timedelta(hours=1)).isoformat()
        answer = atlas.get_raw(
            f"{API}/groups/{group_id}/events",
            params={"eventType": "MONGODB_USER_X509_CERT_CREATED", "minDate": since},
        )
        check(answer.status_code == 200, answer.text)
        found = answer.json()["results"]
        check(len(found) == 1 and found[0]["eventTypeName"] == "MONGODB_USER_X509_CERT_CREATED", found)
        check(found[0].get("dbUserUsername") == USER, found[0])

    steps.call("get_raw /groups/{groupId}/events?eventType=…&minDate=(no offset)", events)

    # === API keys
    def api_key_by_public_id():
        key = ApiKey(atlas, org_id, public_id=PUBLIC_KEY)
        check(OBJECT_ID.match(key._id) and key.href.endswith(f"/orgs/{org_id}/apiKeys/{key._id}"), key.href)
        # Client bug: `_roles` holds whether the key has roles (keyisset), not the roles.
        check(key._roles is True, key._roles)
        listed = atlas.get_raw(f"{API}/orgs/{org_id}/apiKeys").json()["results"]
        roles = [r["roleName"] for k in listed if k["id"] == key._id for r in k["roles"]]
        check("ORG_OWNER" in roles, listed)
        check(key.exists, "the key does not exist")
        return key

    key = steps.call(
        "ApiKey(public_id=…), href, exists [client bug: roles kept as a bool]", api_key_by_public_id
    )

    def api_key_by_id():
        if key is None:
            raise CheckFailed("no key id (the step before failed)")
        by_id = ApiKey(atlas, org_id, key_id=key._id)
        check(by_id.href is None and not by_id.exists, by_id.href)
        answer = atlas.get_raw(f"{API}/orgs/{org_id}/apiKeys/{key._id}", ignore_failure=True)
        check(answer.status_code == 200 and answer.json()["publicKey"] == PUBLIC_KEY, answer.text)

    steps.call("ApiKey(key_id=…) [client bug: href never set]", api_key_by_id)

    def access_list():
        # On a key of its own: a key with an access list authenticates only from a listed
        # address, and the list below does not hold this script's.
        created = atlas.post_raw(
            f"{API}/orgs/{org_id}/apiKeys", json={"desc": "access list", "roles": ["ORG_READ_ONLY"]}
        ).json()
        listed_key = ApiKey(atlas, org_id, public_id=created["publicKey"])
        listed_key.add_ip_address("192.0.2.1")
        listed_key.bulk_add_ip_address_blocks(["198.51.100.0/24"])
        listed = sorted(e.get("cidrBlock") for e in listed_key.access_list)
        check(listed == ["192.0.2.1/32", "198.51.100.0/24"], listed_key.access_list)
        listed_key.delete_ip_address("198.51.100.0/24")
        entries = listed_key.access_list
        check([e.get("cidrBlock") for e in entries] == ["192.0.2.1/32"], entries)
        check(entries[0].get("ipAddress") == "192.0.2.1", entries)

    steps.call(
        "ApiKey.add_ip_address, bulk_add_ip_address_blocks, access_list, delete_ip_address",
        access_list,
    )

    # === Deleting
    def delete_user():
        user.delete()
        check(not user.exists, "the deleted user exists")
        check(user.roles == [], "the client did not see the 204")

    steps.call("DatabaseUser.delete", delete_user)

    def delete_project():
        answer = atlas.delete_raw(f"{API}/groups/{group_id}")
        check(answer.status_code == 204 and answer.content == b"", answer.text)
        check_error(plain.request("GET", f"/groups/{group_id}"), 404, "GROUP_NOT_FOUND")

    steps.call("delete_raw /groups/{groupId}", delete_project)
    steps.done()


if __name__ == "__main__":
    main()
