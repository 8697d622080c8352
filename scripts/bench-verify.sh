#!/usr/bin/env bash
# `pgconverge verify` of a 3-node mesh holding the same 1,000,000 rows on every node, against
# `pg_dump --data-only` of the three nodes run at once, in the same run on one sandbox.
#
#   scripts/bench-verify.sh                      # 1,000,000 rows, 3 rounds
#   BENCH_ROWS=100000 scripts/bench-verify.sh    # a quick run
#
# The table (id, v, payload, ts and pgconverge's columns) is created by `pgconverge apply`
# and filled on each node in replica mode with identical stamped rows, then vacuumed and
# analysed. Each round times `pgconverge verify` (which must exit 0: the nodes are
# identical) and the three dumps started together (each to a file), alternating; the ratio
# is verify / dumps over the medians (target ≤ 0.5). Last, one row is changed on n2 outside
# replication and verify is timed once more, narrowing to that key (exit 2). Environment: BENCH_ROWS (1000000),
# BENCH_ROUNDS (3), BENCH_PORT (first of three ports, 15670), PGCONVERGE_PG_BIN (default
# .pg/18/bin), KEEP=1 to leave the servers running.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

rows="${BENCH_ROWS:-1000000}"
rounds="${BENCH_ROUNDS:-3}"
port="${BENCH_PORT:-15670}"
ports=("$port" "$((port + 1))" "$((port + 2))")

bench_setup
[[ -x "$bin/pg_dump" ]] || { echo "missing $bin/pg_dump: run scripts/install-postgres.sh 18" >&2; exit 1; }
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

cd "$work"
printf '{"nodes": [%s, %s, %s], "tables": [%s]}\n' \
  "$(node_json 0)" "$(node_json 1)" "$(node_json 2)" "$(bench_table_json bench)" >pgconverge.json
"$pgconverge" sandbox up --pg-bin "$bin" >/dev/null
"$pgconverge" apply --auto-approve >/dev/null

echo "filling every node with $rows identical rows…" >&2
for node in 0 1 2; do
  sql "$node" "SET session_replication_role = replica" \
    "INSERT INTO bench SELECT g, g % 1000, md5(g::text) || md5((g + 1)::text), \
       timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', 1735689600000000 + g, 'n1' \
     FROM generate_series(1, $rows) g" \
    "VACUUM ANALYZE bench" &
done
wait
size="$(sql 0 "SELECT pg_size_pretty(pg_table_size('bench'))")"
echo "each node holds $size in bench" >&2

time_verify() {
  local started finished
  started=$(date +%s.%N)
  "$pgconverge" verify >"$work/verify.out" || { echo "verify did not exit 0:" >&2; cat "$work/verify.out" >&2; exit 1; }
  finished=$(date +%s.%N)
  awk "BEGIN { print $finished - $started }"
}

time_dumps() {
  local started finished
  started=$(date +%s.%N)
  for node in 0 1 2; do
    "$bin/pg_dump" --data-only -h 127.0.0.1 -p "${ports[$node]}" -U pgc -d app -f "$work/dump$node.sql" &
  done
  wait
  finished=$(date +%s.%N)
  awk "BEGIN { print $finished - $started }"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

verify_times=()
dump_times=()
time_dumps >/dev/null # warm the caches for both
for ((round = 1; round <= rounds; round++)); do
  v="$(time_verify)"
  d="$(time_dumps)"
  verify_times+=("$v")
  dump_times+=("$d")
  printf 'round %d: verify %.2f s, three dumps at once %.2f s\n' "$round" "$v" "$d" >&2
done
sql 1 "SET session_replication_role = replica" "UPDATE bench SET v = -1 WHERE id = $((rows / 2))"
started=$(date +%s.%N)
code=0
"$pgconverge" verify >"$work/verify-diff.out" || code=$?
finished=$(date +%s.%N)
[[ "$code" == 2 ]] || { echo "verify of a changed row exited $code, not 2:" >&2; cat "$work/verify-diff.out" >&2; exit 1; }
diff_seconds="$(awk "BEGIN { print $finished - $started }")"

verify_median="$(printf '%s\n' "${verify_times[@]}" | median)"
dump_median="$(printf '%s\n' "${dump_times[@]}" | median)"

printf '\n%s rows × 3 nodes (%s each); %s rounds, medians\n' "$rows" "$size" "$rounds"
grep '^public.bench' "$work/verify.out" || true
printf 'pgconverge verify              %8.2f s\n' "$verify_median"
printf 'pg_dump --data-only × 3 at once %7.2f s   (dump size per node: %s)\n' "$dump_median" "$(du -h "$work/dump0.sql" | cut -f1)"
printf 'ratio verify / dumps           %8.2f   (target ≤ 0.5)\n' "$(awk "BEGIN { print $verify_median / $dump_median }")"
printf 'verify with one row changed    %8.2f s   (%s)\n' "$diff_seconds" "$(grep '^public.bench' "$work/verify-diff.out")"
