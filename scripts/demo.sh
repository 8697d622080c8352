#!/usr/bin/env bash
# The main job, end to end on this machine: a local 3-node cluster planned, applied and shown
# converging. Installs PostgreSQL 18 into .pg/ if missing, builds pgconverge, starts three
# sandbox servers from fixtures/demo, plans, applies, writes on every node and shows every row
# on every node. The servers are stopped at the end (keep them with KEEP=1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

section "PostgreSQL"
bash scripts/install-postgres.sh 18
export PGCONVERGE_PG_BIN="$root/.pg/18/bin"
psql="$PGCONVERGE_PG_BIN/psql"

section "Build"
cargo build --quiet -p pgconverge
pgc="$root/target/debug/pgconverge"

work="$root/.pgconverge-demo"
if [ -d "$work/.pgconverge/sandbox" ]; then
  (cd "$work" && "$pgc" sandbox down) || true
fi
rm -rf "$work"
mkdir -p "$work"
cp fixtures/demo/pgconverge.json "$work/pgconverge.json"
sed -i 's#"\.\./\.\./schemas/#"'"$root"'/schemas/#' "$work/pgconverge.json"
cd "$work"

cleanup() {
  if [ "${KEEP:-0}" != "1" ]; then
    section "Stopping the sandbox"
    "$pgc" sandbox down || true
  else
    echo "Servers left running in $work (stop them with: cd $work && $pgc sandbox down)"
  fi
}
trap cleanup EXIT

section "pgconverge validate"
"$pgc" validate

section "pgconverge sandbox up"
"$pgc" sandbox up

section "pgconverge plan"
set +e
"$pgc" plan --detailed-exitcode --no-color
code=$?
set -e
echo "(plan exit code: $code — 2 means changes are pending)"
[ "$code" = 2 ] || { echo "expected pending changes"; exit 1; }

section "pgconverge apply --auto-approve"
"$pgc" apply --auto-approve --no-color

section "A write on every node"
ports=(54331 54332 54333)
for i in 0 1 2; do
  node="n$((i + 1))"
  "$psql" -X -q -h 127.0.0.1 -p "${ports[$i]}" -U pgconverge -d app -v ON_ERROR_STOP=1 -c \
    "WITH u AS (INSERT INTO users (email, name) VALUES ('user@$node.example', 'written on $node') RETURNING id)
     INSERT INTO orders (user_id, amount, note) SELECT id, $((i + 1))0.50, 'order from $node' FROM u"
  echo "$node: inserted a user and an order"
done

section "Every row on every node"
expected=3
for attempt in $(seq 1 50); do
  ok=1
  for port in "${ports[@]}"; do
    n=$("$psql" -X -tA -h 127.0.0.1 -p "$port" -U pgconverge -d app -c "SELECT count(*) FROM users u JOIN orders o ON o.user_id = u.id")
    [ "$n" = "$expected" ] || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.2
done
for i in 0 1 2; do
  echo "--- node n$((i + 1)) (port ${ports[$i]})"
  "$psql" -X -h 127.0.0.1 -p "${ports[$i]}" -U pgconverge -d app -c \
    "SELECT u.email, u.name, o.amount, o.note, u._pgc_origin AS written_on FROM users u JOIN orders o ON o.user_id = u.id ORDER BY u.email"
done
[ "$ok" = 1 ] || { echo "nodes did not converge"; exit 1; }

section "pgconverge plan --detailed-exitcode (in sync)"
"$pgc" plan --detailed-exitcode --no-color
echo "Converged: every node holds all $expected rows, and the plan is empty."
