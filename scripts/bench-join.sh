#!/usr/bin/env bash
# Joining a node to a mesh whose donor holds pgbench data (scale 70, about 1 GB with
# pgconverge's columns) against plain logical replication copying the same tables into an
# empty server (CREATE SUBSCRIPTION … copy_data = true), in the same run on one sandbox.
#
#   scripts/bench-join.sh                 # scale 70
#   BENCH_SCALE=10 scripts/bench-join.sh  # a quick run
#
# n1 is the donor: the pgbench tables are created by `pgconverge apply` (so they carry the
# reserved columns and triggers) and filled server-side with stamped rows. Then:
# - join: n2 is added to the config and `pgconverge apply` runs; the bootstrap step's own time
#   (from its `done (N ms)` line) and the whole apply are reported;
# - plain: n3 gets the same tables (same columns, keys) and subscribes to a publication of them
#   on n1 with copy_data = true; timed until every table's sync state is `ready`.
# The ratio is bootstrap / plain (target ≤ 1.2). Environment: BENCH_SCALE (70), BENCH_PORT
# (first of three ports, 15660), PGCONVERGE_PG_BIN (default .pg/18/bin), KEEP=1 to leave the
# servers running.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

scale="${BENCH_SCALE:-70}"
port="${BENCH_PORT:-15660}"
ports=("$port" "$((port + 1))" "$((port + 2))")

bench_setup
if [[ "${KEEP:-}" == 1 ]]; then
  trap - EXIT
fi

sql() { # sql NODE_INDEX STATEMENT…
  local node="$1"; shift
  local args=()
  for s in "$@"; do args+=(-c "$s"); done
  "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${ports[$node]}" -U pgc -d app "${args[@]}"
}

node_json() { # node_json INDEX
  echo "{\"name\": \"n$(($1 + 1))\", \"host\": \"127.0.0.1\", \"port\": ${ports[$1]}, \"db\": \"app\", \"user\": \"pgc\"}"
}

tables_json='[
  {"name": "pgbench_accounts", "columns": [
     {"name": "aid", "type": "integer"}, {"name": "bid", "type": "integer"},
     {"name": "abalance", "type": "integer"}, {"name": "filler", "type": "character(84)"}],
   "primary_key": ["aid"]},
  {"name": "pgbench_branches", "columns": [
     {"name": "bid", "type": "integer"}, {"name": "bbalance", "type": "integer"},
     {"name": "filler", "type": "character(88)"}],
   "primary_key": ["bid"]},
  {"name": "pgbench_tellers", "columns": [
     {"name": "tid", "type": "integer"}, {"name": "bid", "type": "integer"},
     {"name": "tbalance", "type": "integer"}, {"name": "filler", "type": "character(84)"}],
   "primary_key": ["tid"]}
]'

config() { # config INDEX… → pgconverge.json with those nodes
  local nodes=()
  for i in "$@"; do nodes+=("$(node_json "$i")"); done
  local joined
  joined="$(IFS=,; echo "${nodes[*]}")"
  printf '{"nodes": [%s], "tables": %s}\n' "$joined" "$tables_json" >"$work/pgconverge.json"
}

cd "$work"
config 0 1 2
"$pgconverge" sandbox up --pg-bin "$bin" >/dev/null
config 0
"$pgconverge" apply --auto-approve >/dev/null

echo "filling n1 at scale $scale…" >&2
version="(extract(epoch from clock_timestamp()) * 1000000)::bigint"
sql 0 "SET session_replication_role = replica" \
  "INSERT INTO pgbench_branches SELECT b, 0, '', $version, 'n1' FROM generate_series(1, $scale) b" \
  "INSERT INTO pgbench_tellers SELECT t, (t - 1) / 10 + 1, 0, '', $version, 'n1' FROM generate_series(1, $scale * 10) t" \
  "INSERT INTO pgbench_accounts SELECT a, (a - 1) / 100000 + 1, 0, '', $version, 'n1' FROM generate_series(1, $scale * 100000) a"
sql 0 "VACUUM ANALYZE pgbench_accounts" "VACUUM ANALYZE pgbench_branches" "VACUUM ANALYZE pgbench_tellers"
size="$(sql 0 "SELECT pg_size_pretty(sum(pg_table_size(c.oid))) FROM pg_class c WHERE relname LIKE 'pgbench_%' AND relkind = 'r'")"
echo "n1 holds $size in the pgbench tables" >&2

# join: n2 enters the mesh.
config 0 1
started=$(date +%s.%N)
join_out="$("$pgconverge" apply --auto-approve)"
finished=$(date +%s.%N)
bootstrap_ms="$(sed -n 's/^n2: + bootstrap n2 from n1 … done (\([0-9]*\) ms)$/\1/p' <<<"$join_out")"
[[ -n "$bootstrap_ms" ]] || { echo "no bootstrap step in the apply output:" >&2; echo "$join_out" >&2; exit 1; }
join_seconds="$(awk "BEGIN { print $finished - $started }")"
copied="$(grep '^n2: copied' <<<"$join_out" || true)"

# plain: n3 subscribes with copy_data = true.
sql 2 "CREATE TABLE pgbench_accounts (aid integer PRIMARY KEY, bid integer, abalance integer, filler character(84), _pgc_version bigint NOT NULL DEFAULT 0, _pgc_origin text NOT NULL DEFAULT '')" \
  "CREATE TABLE pgbench_branches (bid integer PRIMARY KEY, bbalance integer, filler character(88), _pgc_version bigint NOT NULL DEFAULT 0, _pgc_origin text NOT NULL DEFAULT '')" \
  "CREATE TABLE pgbench_tellers (tid integer PRIMARY KEY, bid integer, tbalance integer, filler character(84), _pgc_version bigint NOT NULL DEFAULT 0, _pgc_origin text NOT NULL DEFAULT '')"
sql 0 "CREATE PUBLICATION bench_plain FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers"
started=$(date +%s.%N)
sql 2 "CREATE SUBSCRIPTION bench_plain CONNECTION 'host=127.0.0.1 port=${ports[0]} dbname=app user=pgc' PUBLICATION bench_plain WITH (copy_data = true)"
until [[ "$(sql 2 "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate IN ('r', 's')")" == 3 ]]; do
  sleep 0.05
done
finished=$(date +%s.%N)
plain_seconds="$(awk "BEGIN { print $finished - $started }")"
sql 2 "DROP SUBSCRIPTION bench_plain"
sql 0 "DROP PUBLICATION bench_plain"

rows_n2="$(sql 1 "SELECT count(*) FROM pgbench_accounts")"
rows_n3="$(sql 2 "SELECT count(*) FROM pgbench_accounts")"
bootstrap_seconds="$(awk "BEGIN { print $bootstrap_ms / 1000 }")"
printf '\nscale %s (%s on n1); pgbench_accounts rows: join %s, plain %s\n' "$scale" "$size" "$rows_n2" "$rows_n3"
[[ -n "$copied" ]] && printf '%s\n' "$copied"
printf 'join bootstrap step     %8.2f s   (whole apply, objects and subscriptions included: %.2f s)\n' "$bootstrap_seconds" "$join_seconds"
printf 'plain copy_data = true  %8.2f s\n' "$plain_seconds"
printf 'ratio bootstrap / plain %8.2f   (target ≤ 1.2)\n' "$(awk "BEGIN { print $bootstrap_seconds / $plain_seconds }")"
