"""Schemathesis hooks for dbcert, loaded by .ci/schemathesis.sh through SCHEMATHESIS_HOOKS.

- HTTP Digest with the API key in DBCERT_SCHEMATHESIS_KEY (`public:private`): requests'
  HTTPDigestAuth answers the server's challenge, then reuses the nonce with an increasing nc
  (and answers a fresh challenge when the nonce goes stale), as real Atlas clients do.
- The OCSP request body (`application/ocsp-request`) is sent as raw bytes.
- The key never deletes itself (its id is DBCERT_SCHEMATHESIS_KEY_ID): schemathesis reuses ids
  it read in earlier answers, and a deleted key would leave every later request a 401, testing
  nothing behind authentication.
"""

import os

import schemathesis
from requests.auth import HTTPDigestAuth

public_key, private_key = os.environ["DBCERT_SCHEMATHESIS_KEY"].split(":", 1)
own_key_id = os.environ["DBCERT_SCHEMATHESIS_KEY_ID"]
schemathesis.auth.set_from_requests(HTTPDigestAuth(public_key, private_key))


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "DELETE" and (case.path_parameters or {}).get("apiUserId") == own_key_id:
        # Another well-formed id, which names no key: 404.
        case.path_parameters["apiUserId"] = "0" * 24


# The OCSP responder's request body is DER (`application/ocsp-request`, RFC 6960): sent as the
# raw bytes generated for it, as the built-in `application/octet-stream` serializer sends them.
schemathesis.serializer.alias("application/ocsp-request", "application/octet-stream")
