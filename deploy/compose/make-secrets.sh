#!/usr/bin/env bash
# Creates the secret files compose.yaml mounts, under ./secrets next to this script, each
# readable by exactly the container user that needs it (Compose bind-mounts file secrets with
# their host owner and mode). Run it as root (it chowns), e.g. with sudo: the directory,
# bootstrap.env (read by the compose CLI) and the proxy certificate then belong to the user who
# ran sudo. It never overwrites a file: run again, it writes only what is missing, deriving a
# missing half of the database password pair from the other half.
#
#   secrets/master-key          base64 of 32 random bytes; seals the CA keys (uid 10001, 0400).
#                               BACK IT UP: without it the CA keys in the database are lost.
#   secrets/postgres-password   the database password, for postgres's image (uid 999, 0400)
#   secrets/pgpass              the same password as a pgpass line, for dbcert (uid 10001, 0400)
#   secrets/bootstrap.env       DBCERT_BOOTSTRAP_API_KEY=<public>:<private>, read by compose (0600)
#   secrets/tls/proxy.{crt,key} a self-signed certificate for localhost; replace with yours
#
# postgres's image reads postgres-password only when it initializes an empty data volume:
# afterwards the database keeps that password whatever the files say.
set -euo pipefail
cd "$(dirname "$0")"
umask 077

fail() {
  echo "make-secrets.sh: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || fail "run it as root (it gives each file to its container user), e.g. sudo ./make-secrets.sh"
# The invoking user keeps the directory and the files compose and clients read.
owner="${SUDO_UID:-$(id -u)}:${SUDO_GID:-$(id -g)}"
mkdir -p secrets/tls
chown "$owner" secrets secrets/tls

# put FILE OWNER MODE: writes standard input to FILE, which must not exist, then gives it to
# OWNER with MODE. Call it only where `set -e` applies (not left of `||` or in an `if` test).
put() {
  [[ ! -e "$1" ]] || fail "$1 exists; not overwriting it"
  cat >"$1"
  chown "$2" "$1"
  chmod "$3" "$1"
  echo "wrote $1"
}

if [[ ! -e secrets/master-key ]]; then
  head -c 32 /dev/urandom | base64 | put secrets/master-key 10001:10001 0400
fi

# The database password, twice: for postgres (the bare password) and for dbcert (a pgpass
# line). Whichever exists decides; two that disagree are an error, never a new password.
password_file=secrets/postgres-password pgpass_file=secrets/pgpass
pgpass_line() { printf '*:*:dbcert:dbcert:%s\n' "$1"; }
if [[ -e $password_file && -e $pgpass_file ]]; then
  [[ "$(pgpass_line "$(cat "$password_file")")" == "$(cat "$pgpass_file")" ]] ||
    fail "$password_file and $pgpass_file hold different passwords; delete the one that is not the database's"
  echo "keeping existing $password_file and $pgpass_file"
elif [[ -e $password_file ]]; then
  pgpass_line "$(cat "$password_file")" | put "$pgpass_file" 10001:10001 0400
elif [[ -e $pgpass_file ]]; then
  line=$(cat "$pgpass_file")
  [[ $line == '*:*:dbcert:dbcert:'?* ]] || fail "$pgpass_file is not the line this script writes"
  printf '%s' "${line#'*:*:dbcert:dbcert:'}" | put "$password_file" 999:999 0400
else
  password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  printf '%s' "$password" | put "$password_file" 999:999 0400
  pgpass_line "$password" | put "$pgpass_file" 10001:10001 0400
fi

if [[ ! -e secrets/bootstrap.env ]]; then
  public=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'a-z' | cut -c1-8)
  private=$(cat /proc/sys/kernel/random/uuid)
  printf 'DBCERT_BOOTSTRAP_API_KEY=%s:%s\n' "$public" "$private" |
    put secrets/bootstrap.env "$owner" 0600
  echo "(the ORG_OWNER API key: public $public)"
fi

# The proxy's certificate and key: a missing certificate is made again from the key; a
# certificate without its key is an error.
tls=(-days 365 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1)
if [[ ! -e secrets/tls/proxy.key ]]; then
  [[ ! -e secrets/tls/proxy.crt ]] ||
    fail "secrets/tls/proxy.crt exists without proxy.key; delete it or add its key"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "${tls[@]}" \
    -keyout secrets/tls/proxy.key -out secrets/tls/proxy.crt 2>/dev/null
  chown "$owner" secrets/tls/proxy.key secrets/tls/proxy.crt
  chmod 0644 secrets/tls/proxy.crt
  echo "wrote secrets/tls/proxy.crt and proxy.key (self-signed for localhost)"
elif [[ ! -e secrets/tls/proxy.crt ]]; then
  openssl req -x509 -new -key secrets/tls/proxy.key "${tls[@]}" -out secrets/tls/proxy.crt
  chown "$owner" secrets/tls/proxy.crt
  chmod 0644 secrets/tls/proxy.crt
  echo "wrote secrets/tls/proxy.crt (self-signed for localhost, from the existing proxy.key)"
fi
