#!/usr/bin/env bash
# Throughput and replication lag of one table replicated three ways on one sandbox mesh, in the
# same run:
#
#   plain       plain logical replication (a publication of the table itself, origin = none)
#   pgconverge  pgconverge's write path (stamp/log triggers, change log, merge on apply)
#   forwarding  the write path without a change record ("write_path": "forwarding", applied by
#               pgconverge to a second database, app_fwd, as nodes f1…: base tables published,
#               origin = any, merge in BEFORE triggers; docs/conflicts.md, "A write path
#               without a second row")
#
# pgbench (PostgreSQL 18 client) runs single-row UPDATEs, then INSERTs, at $CLIENTS clients on
# n1, alternating the variants each round. Lag is measured on every other node for 1 row in
# 50: a REPLICA trigger records the time between the write on n1 (a clock_timestamp() column)
# and the row landing on the subscriber (same machine, same clock).
#
#   scripts/bench-conflicts.sh              # 3 nodes, 20 s per round, 2 rounds per variant
#   BENCH_NODES=5 BENCH_SECONDS=60 BENCH_ROUNDS=3 scripts/bench-conflicts.sh
#
# Environment: BENCH_NODES (3), BENCH_SECONDS, BENCH_ROUNDS, BENCH_CLIENTS (8), BENCH_ROWS
# (100000), BENCH_PORT (first of the nodes' ports, 15640), PGCONVERGE_PG_BIN (default .pg/18/bin),
# BENCH_DURABILITY: `sandbox` (fsync and synchronous_commit off, as the sandbox runs: commits
# are nearly free, so this measures CPU cost alone), `durable` (fsync, synchronous_commit and
# full_page_writes on, as a production server runs), or `both` (default).
# All servers, pgbench and the apply workers share this machine's CPUs: on a small machine the
# receivers' apply work competes with the writer, which a real deployment does not do.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

seconds="${BENCH_SECONDS:-20}"
rounds="${BENCH_ROUNDS:-2}"
clients="${BENCH_CLIENTS:-8}"
rows="${BENCH_ROWS:-100000}"
durability="${BENCH_DURABILITY:-both}"
case "$durability" in
  sandbox) modes=(sandbox) ;;
  durable) modes=(durable) ;;
  both) modes=(sandbox durable) ;;
  *) echo "BENCH_DURABILITY must be sandbox, durable or both" >&2; exit 1 ;;
esac
port="${BENCH_PORT:-15640}"
node_count="${BENCH_NODES:-3}"
[[ $node_count =~ ^[0-9]+$ ]] && (( node_count >= 2 && node_count <= 9 )) ||
  { echo "BENCH_NODES must be a number from 2 to 9" >&2; exit 1; }
ports=()
for ((i = 0; i < node_count; i++)); do ports+=("$((port + i))"); done
nodes=("${!ports[@]}")
receivers=("${nodes[@]:1}")
variants=(plain pgconverge forwarding)

bench_setup

# The database statements run in: `app`, or `app_fwd` where a caller sets `db` (the forwarding
# path is a cluster setting, so its table lives in a cluster of its own on the same servers).
sql() { # sql NODE_INDEX STATEMENT…
  local node="$1"; shift
  local args=()
  for s in "$@"; do args+=(-c "$s"); done
  "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${ports[$node]}" -U pgc -d "${db:-app}" "${args[@]}"
}
db_of() { if [[ $1 == bench_fwd ]]; then echo app_fwd; else echo app; fi; }

# A cluster config over the same servers: config_json NODE_PREFIX DB TABLE [REPLICATION]
config_json() {
  local entries
  entries="$(for i in "${nodes[@]}"; do
    printf '    {"name": "%s%d", "host": "127.0.0.1", "port": %d, "db": "%s", "user": "pgc"}' "$1" "$((i + 1))" "${ports[$i]}" "$2"
    if (( i + 1 < node_count )); then echo ,; fi
  done)"
  printf '{\n  "nodes": [\n%s\n  ],\n%s  "tables": [\n%s\n  ]\n}\n' "$entries" "${4:-}" "$(bench_table_json "$3")"
}
config_json n app bench_lww >"$work/pgconverge.json"
mkdir -p "$work/fwd"
config_json f app_fwd bench_fwd '  "replication": {"write_path": "forwarding"},
' >"$work/fwd/pgconverge.json"

cd "$work"
echo "starting $node_count servers on ports ${ports[*]} and applying the configurations…" >&2
"$pgconverge" sandbox up --pg-bin "$bin" >/dev/null
"$pgconverge" apply --auto-approve >/dev/null
for i in "${nodes[@]}"; do sql "$i" "CREATE DATABASE app_fwd OWNER pgc"; done
(cd "$work/fwd" && "$pgconverge" apply --auto-approve >/dev/null)

# The same table replicated the plain way; and, on every node, the lag recorder.
for i in "${nodes[@]}"; do
  for db in app app_fwd; do
    sql "$i" \
      "CREATE TABLE bench_lag (variant text, lag_ms float8)" \
      "CREATE FUNCTION bench_record_lag() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS \$\$
       BEGIN
         INSERT INTO public.bench_lag VALUES (TG_ARGV[0], EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - NEW.ts) * 1000);
         RETURN NULL;
       END \$\$"
  done
  unset db
  sql "$i" \
    "CREATE TABLE bench_plain (id bigint PRIMARY KEY, v bigint, payload text, ts timestamptz)" \
    "CREATE PUBLICATION bench_plain_pub_n$((i + 1)) FOR TABLE bench_plain" \
    "CREATE TRIGGER bench_lag AFTER INSERT OR UPDATE ON bench_plain FOR EACH ROW WHEN (NEW.id % 50 = 0) EXECUTE FUNCTION bench_record_lag('plain')" \
    "ALTER TABLE bench_plain ENABLE REPLICA TRIGGER bench_lag" \
    "CREATE TRIGGER bench_lag AFTER INSERT OR UPDATE ON bench_lww FOR EACH ROW WHEN (NEW.id % 50 = 0) EXECUTE FUNCTION bench_record_lag('pgconverge')" \
    "ALTER TABLE bench_lww ENABLE REPLICA TRIGGER bench_lag"
  db=app_fwd sql "$i" \
    "CREATE TRIGGER bench_lag AFTER INSERT OR UPDATE ON bench_fwd FOR EACH ROW WHEN (NEW.id % 50 = 0) EXECUTE FUNCTION bench_record_lag('forwarding')" \
    "ALTER TABLE bench_fwd ENABLE REPLICA TRIGGER bench_lag"
done
# Plain: each node sends its own writes only. Forwarding (pgconverge's subscriptions in
# app_fwd): each node sends everything it applies too, so every change reaches a node once per
# peer. Streaming is `on`, as pgconverge's own subscriptions use it.
for i in "${nodes[@]}"; do
  for j in "${nodes[@]}"; do
    [[ $i == "$j" ]] && continue
    sql "$i" "CREATE SUBSCRIPTION bench_plain_n$((i + 1))_from_n$((j + 1))
      CONNECTION 'host=127.0.0.1 port=${ports[$j]} dbname=app user=pgc'
      PUBLICATION bench_plain_pub_n$((j + 1)) WITH (origin = none, copy_data = false, streaming = on)"
  done
done

# Waits until every other node holds row `id` of `table` with v >= `min_v`.
wait_for() { # wait_for TABLE ID MIN_V
  local deadline=$((SECONDS + 300))
  for i in "${receivers[@]}"; do
    until [[ "$(sql "$i" "SELECT count(*) FROM $1 WHERE id = $2 AND v >= $3")" == 1 ]]; do
      (( SECONDS < deadline )) || { echo "replication of $1 did not catch up" >&2; exit 1; }
      sleep 0.2
    done
  done
}

marker=0
# Writes a marker on n1 and waits for it on the other nodes: everything before it has arrived.
drain() { # drain TABLE
  marker=$((marker + 1))
  sql 0 "INSERT INTO $1 (id, v, payload, ts) VALUES (-1, $marker, 'marker', clock_timestamp())
         ON CONFLICT (id) DO UPDATE SET v = excluded.v, ts = excluded.ts"
  wait_for "$1" -1 "$marker"
}

echo "loading $rows rows into each table…" >&2
for t in bench_plain bench_lww bench_fwd; do
  db="$(db_of "$t")"
  sql 0 "INSERT INTO $t SELECT g, 0, 'row ' || g, clock_timestamp() FROM generate_series(1, $rows) g"
  drain "$t"
done
unset db

bench_pgbench_scripts "$rows"

declare -A tps_sum lag50 lag99
set_durability() { # set_durability sandbox|durable
  local on=off
  [[ $1 == durable ]] && on=on
  for i in "${nodes[@]}"; do
    sql "$i" "ALTER SYSTEM SET fsync = $on" "ALTER SYSTEM SET synchronous_commit = $on" \
      "ALTER SYSTEM SET full_page_writes = $on" "SELECT pg_reload_conf()" >/dev/null
  done
}

run() { # run OP TABLE VARIANT
  local op="$1" table="$2" variant="$3"
  local db
  db="$(db_of "$table")"
  for i in "${receivers[@]}"; do sql "$i" "TRUNCATE bench_lag"; done
  local out tps
  out="$("$bin/pgbench" -n -c "$clients" -j 2 -T "$seconds" -D table="$table" \
    -f "$work/$op.sql" -h 127.0.0.1 -p "${ports[0]}" -U pgc "$db" 2>&1)" \
    || { echo "$out" >&2; exit 1; }
  tps="$(bench_tps "$out")"
  drain "$table"
  local stats
  stats="$(for i in "${receivers[@]}"; do sql "$i" "SELECT lag_ms FROM bench_lag WHERE variant = '$variant'"; done |
    sort -n | awk '{a[NR]=$1} END {if (NR == 0) {print "- -"} else {
      p50 = a[int(NR * 0.50 + 0.5) > 0 ? int(NR * 0.50 + 0.5) : 1];
      p99 = a[int(NR * 0.99 + 0.5) > 0 ? int(NR * 0.99 + 0.5) : 1];
      printf "%.1f %.1f\n", p50, p99}}')"
  local key="$op $mode"
  tps_sum["$key $variant"]="$(awk -v a="${tps_sum["$key $variant"]:-0}" -v b="$tps" 'BEGIN {print a + b}')"
  lag50["$key $variant"]="${lag50["$key $variant"]:-}${stats%% *} "
  lag99["$key $variant"]="${lag99["$key $variant"]:-}${stats##* } "
  printf '  %-16s %-10s round: %8.0f tps, lag p50 %s ms, p99 %s ms\n' "$key" "$variant" "$tps" "${stats%% *}" "${stats##* }" >&2
}

for mode in "${modes[@]}"; do
  echo "commits: $mode" >&2
  set_durability "$mode"
  for op in update insert; do
    for ((r = 1; r <= rounds; r++)); do
      run "$op" bench_plain plain
      run "$op" bench_lww pgconverge
      run "$op" bench_fwd forwarding
    done
  done
done

# Mean over rounds of a variant's lag percentile against plain's, and the 1.2× target:
# lag_ratio KEY VARIANT PERCENTILE "VARIANT ROUNDS" "PLAIN ROUNDS"
lag_ratio() {
  awk -v key="$1" -v variant="$2" -v p="$3" -v a="$4" -v b="$5" 'BEGIN {
    na = split(a, x, " "); nb = split(b, y, " "); sa = 0; sb = 0; ok = 1
    for (i = 1; i <= na; i++) { if (x[i] == "-") ok = 0; sa += x[i] }
    for (i = 1; i <= nb; i++) { if (y[i] == "-") ok = 0; sb += y[i] }
    if (!ok || na == 0 || nb == 0 || sb == 0) { printf "%s: %s lag %s: not measured\n", key, variant, p; exit }
    r = (sa / na) / (sb / nb)
    printf "%s: %s lag %s / plain = %.2f (%s the 1.2 target)\n", key, variant, p, r, (r <= 1.2) ? "meets" : "above"
  }'
}

echo
echo "pgbench: $clients clients on n1, ${seconds}s x $rounds rounds per variant, $node_count-node mesh, $(nproc) CPUs"
printf '%-17s %-11s %10s %20s %20s\n' "op (commits)" variant "tps (mean)" "lag p50 ms/round" "lag p99 ms/round"
for mode in "${modes[@]}"; do
  for op in update insert; do
    key="$op $mode"
    for variant in "${variants[@]}"; do
      mean="$(awk -v s="${tps_sum["$key $variant"]}" -v n="$rounds" 'BEGIN {printf "%.0f", s / n}')"
      printf '%-17s %-11s %10s %20s %20s\n' "$key" "$variant" "$mean" "${lag50["$key $variant"]}" "${lag99["$key $variant"]}"
    done
    for variant in pgconverge forwarding; do
      ratio="$(awk -v a="${tps_sum["$key $variant"]}" -v b="${tps_sum["$key plain"]}" 'BEGIN {printf "%.2f", a / b}')"
      verdict="$(awk -v r="$ratio" 'BEGIN {print (r >= 0.90) ? "meets" : "below"}')"
      echo "$key: $variant / plain = $ratio ($verdict the 0.90 target)"
      lag_ratio "$key" "$variant" p50 "${lag50["$key $variant"]}" "${lag50["$key plain"]}"
      lag_ratio "$key" "$variant" p99 "${lag99["$key $variant"]}" "${lag99["$key plain"]}"
    done
  done
done
