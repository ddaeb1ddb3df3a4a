#!/usr/bin/env bash
# Creates the secret files compose.yaml mounts, under ./secrets next to this script, each
# readable by exactly the container user that needs it (Compose bind-mounts file secrets with
# their host owner and mode). Run it once, as root (it chowns), e.g. with sudo: the directory,
# bootstrap.env (read by the compose CLI) and the proxy certificate then belong to the user who
# ran sudo. It never overwrites a file.
#
#   secrets/master-key          base64 of 32 random bytes; seals the CA keys (uid 10001, 0400).
#                               BACK IT UP: without it the CA keys in the database are lost.
#   secrets/postgres-password   the database password, for postgres's image (uid 999, 0400)
#   secrets/pgpass              the same password as a pgpass line, for dbcert (uid 10001, 0400)
#   secrets/bootstrap.env       DBCERT_BOOTSTRAP_API_KEY=<public>:<private>, read by compose (0600)
#   secrets/tls/proxy.{crt,key} a self-signed certificate for localhost; replace with yours
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets/tls

# new FILE OWNER: succeeds only if FILE does not exist yet, then makes it OWNER's, mode 0400.
new() {
  if [[ -e "$1" ]]; then
    echo "keeping existing $1" >&2
    return 1
  fi
  cat >"$1"
  chown "$2:$2" "$1"
  chmod 0400 "$1"
  echo "wrote $1"
}

head -c 32 /dev/urandom | base64 | new secrets/master-key 10001 || true

if [[ ! -e secrets/postgres-password ]]; then
  password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  printf '%s' "$password" | new secrets/postgres-password 999
  printf '*:*:dbcert:dbcert:%s\n' "$password" | new secrets/pgpass 10001
fi

if [[ ! -e secrets/bootstrap.env ]]; then
  public=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'a-z' | cut -c1-8)
  private=$(cat /proc/sys/kernel/random/uuid)
  printf 'DBCERT_BOOTSTRAP_API_KEY=%s:%s\n' "$public" "$private" >secrets/bootstrap.env
  chmod 0600 secrets/bootstrap.env
  echo "wrote secrets/bootstrap.env (the ORG_OWNER API key: public $public)"
fi

if [[ ! -e secrets/tls/proxy.key ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout secrets/tls/proxy.key -out secrets/tls/proxy.crt 2>/dev/null
  chmod 0644 secrets/tls/proxy.crt
  echo "wrote secrets/tls/proxy.crt and proxy.key (self-signed for localhost)"
fi

# The invoking user keeps the directory and the files compose and clients read.
owner="${SUDO_UID:-$(id -u)}:${SUDO_GID:-$(id -g)}"
chown "$owner" secrets secrets/tls secrets/bootstrap.env secrets/tls/proxy.crt secrets/tls/proxy.key
