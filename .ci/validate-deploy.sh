#!/usr/bin/env bash
# Validates the deployment files offline (no schema is fetched: both validators ship theirs):
#   - deploy/compose/compose.yaml against the Compose Specification schema vendored in
#     check-jsonschema (`--builtin-schema vendor.compose-spec`);
#   - every file under deploy/kubernetes/ (the manifests and secret.yaml.example) with
#     kubernetes-validate, strict (unknown fields are errors), against the oldest and the newest
#     Kubernetes versions it bundles that we support;
#   - deploy/compose/nginx.conf with Debian's nginx (`nginx -t`), the proxy image's nginx;
#   - that every DBCERT_* variable the files set is one `dbcert serve` reads (src/config/*.rs),
#     that the compose network's addresses agree (the replicas trust the proxy's address,
#     nginx's upstreams are the replicas' addresses), that compose sets DBCERT_PUBLIC_URL on
#     the proxy's published port, that `kubectl apply -f deploy/kubernetes/` (which reads only
#     *.yaml, *.yml and *.json) applies no Secret, and that the Secret example has the keys
#     the Deployment reads;
#   - deploy/compose/make-secrets.sh (as root only: it chowns), run in a scratch copy: it
#     writes every file, rewrites none, and restores a deleted half of the password pair.
# Exits non-zero naming the file at fault. Usage: bash .ci/validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Its own virtualenv (under target/, ignored by git), pinned versions only.
venv=${DEPLOY_VENV:-target/validate-deploy-venv}
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check check-jsonschema==0.39.0 kubernetes-validate==1.37.0 PyYAML==6.0.4
if ! command -v nginx >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi

echo "-- compose: Compose Specification schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml

echo "-- kubernetes: strict schemas"
mapfile -t manifests < <(find deploy/kubernetes -type f | sort)
for version in 1.29 1.37; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "ok -- kubernetes manifests valid for 1.29 and 1.37"

echo "-- nginx: nginx -t"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp deploy/compose/nginx.conf "$scratch/nginx.conf"
mkdir "$scratch/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$scratch/tls/proxy.key" -out "$scratch/tls/proxy.crt" 2>/dev/null
nginx -t -q -e stderr -c "$scratch/nginx.conf" -g "pid $scratch/nginx.pid;"
echo "ok -- nginx.conf valid ($(nginx -v 2>&1))"

echo "-- cross-checks: variables and addresses"
"$venv/bin/python" - <<'PY'
import re, sys, pathlib, yaml

config = "".join(p.read_text() for p in sorted(pathlib.Path("src/config").glob("*.rs")))
known = set(re.findall(r'env = "(DBCERT_[A-Z0-9_]+)"', config))
known |= set(re.findall(r'"(DBCERT_(?:MASTER_KEY|BOOTSTRAP_API_KEY))"', config))
errors = []

def check_names(where, names):
    for name in names:
        if name.startswith("DBCERT_") and name not in known:
            errors.append(f"{where}: {name} is not a variable of dbcert (src/config/*.rs)")

compose = yaml.safe_load(pathlib.Path("deploy/compose/compose.yaml").read_text())
services = compose["services"]
replicas = {n: s for n, s in services.items() if s.get("image") == "dbcert:local"}
if len(replicas) < 2:
    errors.append("compose.yaml: expected at least two dbcert replicas")
proxy_ip = services["proxy"]["networks"]["backend"]["ipv4_address"]
nginx = pathlib.Path("deploy/compose/nginx.conf").read_text()
upstreams = set(re.findall(r"server (\d+\.\d+\.\d+\.\d+):(\d+)", nginx))
for name, service in replicas.items():
    env = service["environment"]
    check_names(f"compose.yaml {name}", env)
    if env.get("DBCERT_TRUSTED_PROXIES") != proxy_ip:
        errors.append(f"compose.yaml {name}: DBCERT_TRUSTED_PROXIES is not the proxy's address {proxy_ip}")
    ip = service["networks"]["backend"]["ipv4_address"]
    for port in ("50051", "8080"):
        if (ip, port) not in upstreams:
            errors.append(f"nginx.conf: no upstream server {ip}:{port} for {name}")
for ip, _ in upstreams:
    if ip not in {s["networks"]["backend"]["ipv4_address"] for s in replicas.values()}:
        errors.append(f"nginx.conf: upstream {ip} is no replica of compose.yaml")

public_url = next(iter(replicas.values()))["environment"].get("DBCERT_PUBLIC_URL", "")
published = [p.split(":")[-1] for p in services["proxy"].get("ports", [])]
if not re.fullmatch(r"https://[^/:]+:(\d+)", public_url) or public_url.rsplit(":", 1)[1] not in published:
    errors.append(f"compose.yaml: DBCERT_PUBLIC_URL {public_url!r} is not https:// on the proxy's published port {published}")

secret_keys_read, secret_keys_example = set(), set()
for path in sorted(p for p in pathlib.Path("deploy/kubernetes").rglob("*") if p.is_file()):
    applied = path.suffix in (".yaml", ".yml", ".json")
    for doc in yaml.safe_load_all(path.read_text()):
        if doc.get("kind") == "Secret":
            if applied:
                errors.append(f"{path}: a Secret that `kubectl apply -f deploy/kubernetes/` would apply over the real one")
            secret_keys_example |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
        if doc.get("kind") == "ConfigMap":
            check_names(path.name, doc.get("data", {}))
        if doc.get("kind") == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            for c in spec["containers"]:
                check_names(path.name, [e["name"] for e in c.get("env", [])])
                secret_keys_read |= {e["valueFrom"]["secretKeyRef"]["key"] for e in c.get("env", [])
                                     if "secretKeyRef" in e.get("valueFrom", {})}
            for v in spec.get("volumes", []):
                secret_keys_read |= {i["key"] for i in v.get("secret", {}).get("items", [])}
if secret_keys_read - secret_keys_example:
    errors.append(f"deploy/kubernetes: the Secret example lacks {sorted(secret_keys_read - secret_keys_example)}")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"ok -- {len(known)} known DBCERT_* variables; addresses agree; no Secret applied")
PY

echo "-- make-secrets.sh"
if [[ $(id -u) != 0 ]]; then
  echo "skipped -- make-secrets.sh chowns: run this script as root to check it"
else
  mkdir "$scratch/compose"
  cp deploy/compose/make-secrets.sh "$scratch/compose/"
  ms() { "$scratch/compose/make-secrets.sh" >"$scratch/ms.log" 2>&1; }
  ms_fail() { cat "$scratch/ms.log" >&2; echo "make-secrets.sh: $*" >&2; exit 1; }
  s="$scratch/compose/secrets"
  ms || ms_fail "failed on an empty directory"
  for f in master-key:10001 pgpass:10001 postgres-password:999 bootstrap.env:0 tls/proxy.key:0 tls/proxy.crt:0; do
    [[ $(stat -c %u "$s/${f%:*}") == "${f#*:}" ]] || ms_fail "${f%:*} is not owned by ${f#*:}"
  done
  before=$(cd "$s" && sha256sum master-key pgpass postgres-password bootstrap.env tls/*)
  rm "$s/postgres-password"
  ms || ms_fail "failed to restore a deleted postgres-password"
  rm "$s/pgpass" "$s/tls/proxy.crt"
  ms || ms_fail "failed to restore a deleted pgpass and proxy.crt"
  ms || ms_fail "failed on a complete directory"
  after=$(cd "$s" && sha256sum master-key pgpass postgres-password bootstrap.env tls/proxy.key)
  [[ $after == "$(grep -v proxy.crt <<<"$before")" ]] || ms_fail "a file changed: $(diff <(echo "$before") <(echo "$after"))"
  chmod u+w "$s/pgpass" && echo '*:*:dbcert:dbcert:other' >"$s/pgpass"
  ! ms || ms_fail "accepted a pgpass that disagrees with postgres-password"
  echo "ok -- make-secrets.sh writes each file once, restores either password file, refuses a mismatch"
fi
