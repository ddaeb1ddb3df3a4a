#!/usr/bin/env bash
# Schemathesis against a live dbcert: every operation of the OpenAPI document the server serves
# (GET /api/dbcert/v1/openapi.json, the same as openapi/dbcert.json), with a real API key over
# HTTP Digest, checking each answer: no 5xx, a documented status, a documented content type,
# a body and headers that match the document.
#
#   .ci/schemathesis.sh [path/to/dbcert [schemathesis run options…]]
#                                            (default: target/debug/dbcert)
#
# Starts `dbcert serve` on a fresh SQLite data directory with a random bootstrap key
# (DBCERT_BOOTSTRAP_API_KEY), creates a project and a MANAGED database user so that generated
# requests also reach real resources (their ids are given to schemathesis as parameter values,
# besides the ones it generates), runs schemathesis, and stops the server. Exits non-zero on
# any failure.
#
# Needs: schemathesis (pip install schemathesis==4.32.5), curl, python3.
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 10 per operation and phase),
# SCHEMATHESIS_SEED (default: random; the run prints the seed it used), SCHEMATHESIS_KEEP_LOG
# (a file to copy the server's JSON log to, for looking into a failure).

set -euo pipefail

BIN=${1:-target/debug/dbcert}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-10}
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf '[schemathesis] %s\n' "$*"; }
fail() {
	printf '[schemathesis] FAIL: %s\n' "$*" >&2
	exit 1
}

[[ -x $BIN ]] || fail "dbcert binary not found at $BIN (build it first or pass its path)"
BIN=$(realpath "$BIN")
for tool in schemathesis curl python3; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done

WORK=$(mktemp -d -t dbcert-schemathesis.XXXXXX)
chmod 700 "$WORK"
SERVER_PID=
cleanup() {
	local status=$?
	set +e
	if [[ -n $SERVER_PID ]]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	if ((status != 0)) && [[ -f $WORK/dbcert.log ]]; then
		echo "--- dbcert log (last 40 lines)" >&2
		tail -n 40 "$WORK/dbcert.log" >&2
	fi
	[[ -n ${SCHEMATHESIS_KEEP_LOG:-} ]] && cp "$WORK/dbcert.log" "$SCHEMATHESIS_KEEP_LOG"
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT

PUBLIC=$(python3 -c 'import random, string; print("".join(random.choices(string.ascii_lowercase, k=8)))')
PRIVATE=$(python3 -c 'import uuid; print(uuid.uuid4())')
KEY="$PUBLIC:$PRIVATE"

DBCERT_BOOTSTRAP_API_KEY=$KEY RUST_LOG=${RUST_LOG:-info} "$BIN" serve \
	--data-dir "$WORK/data" \
	--grpc-listen 127.0.0.1:0 \
	--http-listen 127.0.0.1:0 \
	--log-format json \
	>"$WORK/dbcert.log" 2>&1 &
SERVER_PID=$!

HTTP_ADDR=
for _ in $(seq 1 100); do
	HTTP_ADDR=$(sed -n 's/.*"http_addr":"\([0-9.:]*\)".*/\1/p' "$WORK/dbcert.log" | head -n 1)
	[[ -n $HTTP_ADDR ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || fail "dbcert exited before serving"
	sleep 0.1
done
[[ -n $HTTP_ADDR ]] || fail "dbcert did not report its HTTP address"
BASE="http://$HTTP_ADDR"
log "dbcert serving at $BASE"

atlas() { # METHOD PATH [BODY]
	curl -sS --fail-with-body --digest --user "$KEY" -X "$1" \
		-H 'Content-Type: application/json' ${3:+--data "$3"} "$BASE$2"
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

ORG_ID=$(atlas GET /api/atlas/v2/orgs | json_field '["results"][0]["id"]')
KEY_ID=$(atlas GET "/api/atlas/v2/orgs/$ORG_ID/apiKeys" | python3 -c \
	'import json, sys; print(next(k["id"] for k in json.load(sys.stdin)["results"] if k["publicKey"] == sys.argv[1]))' \
	"$PUBLIC")
GROUP_ID=$(atlas POST /api/atlas/v2/groups '{"name":"schemathesis"}' | json_field '["id"]')
for user in fuzz-user doomed-user; do
	atlas POST "/api/atlas/v2/groups/$GROUP_ID/databaseUsers" \
		"{\"databaseName\":\"\$external\",\"username\":\"$user\",\"x509Type\":\"MANAGED\",\"roles\":[{\"databaseName\":\"admin\",\"roleName\":\"read\"}]}" >/dev/null
done
# The deletes of projects and users get resources of their own, so the others stay for the
# operations after them.
DOOMED_GROUP=$(atlas POST /api/atlas/v2/groups '{"name":"schemathesis-doomed"}' | json_field '["id"]')
log "organization $ORG_ID, project $GROUP_ID with MANAGED users fuzz-user and doomed-user, project $DOOMED_GROUP"

cat >"$WORK/schemathesis.toml" <<TOML
# Real resources for a share of the generated requests; the rest are generated values.
[parameters]
"path.orgId" = { dictionary = "orgs", probability = 0.5 }
"path.groupId" = { dictionary = "groups", probability = 0.5 }
"path.username" = { dictionary = "users", probability = 0.5 }
"path.databaseName" = { dictionary = "databases", probability = 0.5 }

[dictionaries.orgs]
values = ["$ORG_ID"]
[dictionaries.groups]
values = ["$GROUP_ID"]
[dictionaries.users]
values = ["fuzz-user"]
[dictionaries.databases]
values = ["\$external"]

[[operations]]
include-path-regex = "/groups/\\\\{groupId\\\\}\$"
include-method = "DELETE"
parameters = { "path.groupId" = "$DOOMED_GROUP" }

[[operations]]
include-path-regex = "/databaseUsers/\\\\{databaseName\\\\}/\\\\{username\\\\}\$"
include-method = "DELETE"
parameters = { "path.groupId" = "$GROUP_ID", "path.databaseName" = "\$external", "path.username" = "doomed-user" }
TOML

log "schemathesis $(schemathesis --version | awk '{print $NF}'), at most $MAX_EXAMPLES examples per operation"
seed=()
[[ -n ${SCHEMATHESIS_SEED:-} ]] && seed=(--seed "$SCHEMATHESIS_SEED")
(
	cd "$WORK"
	PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks \
		DBCERT_SCHEMATHESIS_KEY=$KEY DBCERT_SCHEMATHESIS_KEY_ID=$KEY_ID \
		schemathesis --no-color --config-file "$WORK/schemathesis.toml" \
		run "$BASE/api/dbcert/v1/openapi.json" \
		--url "$BASE" \
		--checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
		--phases examples,coverage,fuzzing \
		--max-examples "$MAX_EXAMPLES" \
		--workers 1 \
		--request-timeout 30 \
		"${seed[@]}" "${@:2}"
)
log "passed"
