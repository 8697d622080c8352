#!/usr/bin/env bash
# Planning benchmark: a no-op `pgconverge plan` of 1,000 tables (9 columns, a primary key,
# 2 more indexes and 1 foreign key each) on a 3-node sandbox, against `pg_dump --schema-only`
# of each of the 3 nodes, measured in the same run on the same servers.
#
# Targets: the plan of all three nodes takes no longer than one node's dump (ratio against
# the three dumps <= 0.33), and its peak resident memory stays under 100 MiB.
#
# Footprint, last: what pgconverge adds to a user's schema. Node 1's tables are restored
# without their triggers and reserved columns into a scratch database (`app_unmanaged`), the
# same tables as the user would have without pgconverge; the managed dump's size against that
# one's is the ratio every backup, restore and catalog scan pays (target <= 3).
#
# Run on demand, not by the tests. Environment:
#   TABLES=1000   tables in the config        ROUNDS=5   measured rounds (medians reported)
#   KEEP=1        leave the servers running and the working directory in place
#   WRITE_PATH=forwarding  the tables on the forwarding write path (UNIQUE(code) becomes an
#                 index there; see scripts/bench/gen_config.py)
#   PGCONVERGE_PG_BIN  PostgreSQL binaries (default .pg/18/bin, installed if missing)
#   PGCONVERGE_BIN     a pgconverge binary to measure instead of building target/release
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

tables="${TABLES:-1000}"
rounds="${ROUNDS:-5}"
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now_ns() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

section "PostgreSQL"
if [ -z "${PGCONVERGE_PG_BIN:-}" ]; then
  bash scripts/install-postgres.sh 18
  export PGCONVERGE_PG_BIN="$root/.pg/18/bin"
fi
pg_dump="$PGCONVERGE_PG_BIN/pg_dump"
pg_restore="$PGCONVERGE_PG_BIN/pg_restore"
psql="$PGCONVERGE_PG_BIN/psql"
"$pg_dump" --version
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) is needed to measure peak memory"; exit 1; }

if [ -n "${PGCONVERGE_BIN:-}" ]; then
  pgc="$(cd "$(dirname "$PGCONVERGE_BIN")" && pwd)/$(basename "$PGCONVERGE_BIN")"
else
  section "Build (release)"
  cargo build --release --quiet -p pgconverge
  pgc="${CARGO_TARGET_DIR:-$root/target}/release/pgconverge"
fi
"$pgc" --version

mkdir -p "$root/.pgconverge-bench"
work="$(mktemp -d "$root/.pgconverge-bench/plan-XXXXXX")"
# mktemp makes it 0700; the sandbox servers run as another OS user that must reach it.
chmod 755 "$work"
cd "$work"

cleanup() {
  status=$?
  cd "$root"
  if [ "${KEEP:-0}" = "1" ]; then
    echo "Servers and files left in $work (stop with: cd $work && $pgc sandbox down)"
  else
    if [ -d "$work/.pgconverge/sandbox" ]; then
      section "Stopping the sandbox"
      (cd "$work" && "$pgc" sandbox down) || status=1
    fi
    rm -rf "$work"
    rmdir "$root/.pgconverge-bench" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "Sandbox: 3 nodes, $tables tables"
"$pgc" sandbox up --count 3 --config "$work/pgconverge.json"
python3 "$root/scripts/bench/gen_config.py" "$work/pgconverge.json" "$tables"
mapfile -t ports < <(python3 -c 'import json, sys
for n in json.load(open(sys.argv[1]))["nodes"]: print(n["port"])' "$work/pgconverge.json")
[ "${#ports[@]}" = 3 ] || { echo "expected 3 node ports in $work/pgconverge.json"; exit 1; }
"$pgc" validate --no-color

section "pgconverge apply --auto-approve"
start=$(now_ns)
if ! "$pgc" apply --auto-approve --no-color >"$work/apply.log" 2>&1; then
  tail -n 40 "$work/apply.log"
  echo "apply failed; the full log is $work/apply.log (KEEP=1 keeps it)"
  exit 1
fi
apply_s=$(seconds $(($(now_ns) - start)))
tail -n 3 "$work/apply.log"
echo "apply of $tables tables on 3 nodes: ${apply_s} s"

# One plan, timed, with its peak RSS; fails unless the plan is empty.
plan_once() {
  local start end
  start=$(now_ns)
  if ! /usr/bin/time -f %M -o "$work/plan.rss" \
    "$pgc" plan --detailed-exitcode --no-color >"$work/plan.out" 2>&1; then
    cat "$work/plan.out"
    echo "the plan after apply is not empty (or failed)"
    return 1
  fi
  end=$(now_ns)
  grep -q "No changes" "$work/plan.out" || { cat "$work/plan.out"; echo "no 'No changes' in the plan"; return 1; }
  plan_ns=$((end - start))
  plan_kib=$(cat "$work/plan.rss")
}

# pg_dump --schema-only of node $1 (index into ports), timed, with its peak RSS.
dump_once() {
  local start end
  start=$(now_ns)
  /usr/bin/time -f %M -o "$work/dump.rss" \
    "$pg_dump" --schema-only -h 127.0.0.1 -p "${ports[$1]}" -U pgconverge -d app \
    -f "$work/dump-n$(($1 + 1)).sql"
  end=$(now_ns)
  dump_ns=$((end - start))
  dump_kib=$(cat "$work/dump.rss")
}

section "Measuring: 1 warm-up round + $rounds rounds (plan, then a dump of each node)"
plan_once
for i in 0 1 2; do dump_once "$i"; done
printf '%-7s %9s %9s %9s %9s %9s %11s %10s\n' round plan_s dump_n1 dump_n2 dump_n3 dumps_3 plan/3dumps plan_MiB
: >"$work/plan.times"; : >"$work/dump.times"; : >"$work/dumps3.times"; : >"$work/plan.kib"; : >"$work/dump.kib"
for r in $(seq 1 "$rounds"); do
  plan_once
  echo "$(seconds "$plan_ns")" >>"$work/plan.times"
  echo "$plan_kib" >>"$work/plan.kib"
  total=0; per=()
  for i in 0 1 2; do
    dump_once "$i"
    total=$((total + dump_ns))
    per+=("$(seconds "$dump_ns")")
    echo "$(seconds "$dump_ns")" >>"$work/dump.times"
    echo "$dump_kib" >>"$work/dump.kib"
  done
  echo "$(seconds "$total")" >>"$work/dumps3.times"
  printf '%-7s %9s %9s %9s %9s %9s %11s %10s\n' "$r" "$(seconds "$plan_ns")" "${per[@]}" \
    "$(seconds "$total")" "$(awk -v p="$plan_ns" -v d="$total" 'BEGIN { printf "%.3f", p / d }')" \
    "$(awk -v k="$plan_kib" 'BEGIN { printf "%.1f", k / 1024 }')"
done

plan_s=$(median <"$work/plan.times")
dump_s=$(median <"$work/dump.times")
dumps3_s=$(median <"$work/dumps3.times")
peak_mib=$(sort -g "$work/plan.kib" | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }')
dump_peak_mib=$(sort -g "$work/dump.kib" | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }')
ratio3=$(awk -v p="$plan_s" -v d="$dumps3_s" 'BEGIN { printf "%.3f", p / d }')
ratio1=$(awk -v p="$plan_s" -v d="$dump_s" 'BEGIN { printf "%.3f", p / d }')
verdict() { if awk -v v="$1" -v limit="$2" 'BEGIN { exit !(v <= limit) }'; then echo met; else echo "NOT met"; fi; }

section "Result ($tables tables, 3 nodes, medians of $rounds rounds)"
printf '%-44s %10s\n' "apply (create everything, once)" "${apply_s} s"
printf '%-44s %10s\n' "no-op plan, all 3 nodes" "${plan_s} s"
printf '%-44s %10s\n' "pg_dump --schema-only, one node" "${dump_s} s"
printf '%-44s %10s\n' "pg_dump --schema-only, 3 nodes one by one" "${dumps3_s} s"
printf '%-44s %10s\n' "ratio plan / one dump" "$ratio1"
printf '%-44s %10s   target <= 0.33: %s\n' "ratio plan / three dumps" "$ratio3" "$(verdict "$ratio3" 0.33)"
printf '%-44s %10s   target < 100 MiB: %s\n' "plan peak RSS (max of rounds)" "${peak_mib} MiB" \
  "$(awk -v m="$peak_mib" 'BEGIN { exit !(m < 100) }' && echo met || echo "NOT met")"
printf '%-44s %10s\n' "pg_dump peak RSS (max)" "${dump_peak_mib} MiB"
printf '%-44s %10s\n' "schema dump size, one node" "$(wc -c <"$work/dump-n1.sql") bytes"

# The same tables without pgconverge: node 1's public schema restored without triggers, then
# its reserved columns dropped. Its dump is the baseline for the footprint ratio.
unmanaged_dump() {
  local conn=(-h 127.0.0.1 -p "${ports[0]}" -U pgconverge)
  "$pg_dump" --schema-only --format=custom -n public "${conn[@]}" -d app -f "$work/public.dump"
  "$pg_restore" -l "$work/public.dump" | grep -v -e ' TRIGGER ' -e ' SCHEMA - public ' >"$work/public.list"
  PGOPTIONS="-c client_min_messages=warning" "$psql" -X -q -v ON_ERROR_STOP=1 "${conn[@]}" -d app \
    -c 'DROP DATABASE IF EXISTS app_unmanaged' \
    -c 'CREATE DATABASE app_unmanaged'
  "$pg_restore" --exit-on-error -L "$work/public.list" "${conn[@]}" -d app_unmanaged "$work/public.dump"
  "$psql" -X -q -v ON_ERROR_STOP=1 "${conn[@]}" -d app_unmanaged <<'SQL'
DO $$
DECLARE t regclass;
BEGIN
  FOR t IN SELECT DISTINCT a.attrelid::regclass FROM pg_attribute a
           WHERE a.attname IN ('_pgc_version', '_pgc_origin') AND NOT a.attisdropped LOOP
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY DEFAULT, DROP COLUMN IF EXISTS _pgc_version, '
                   'DROP COLUMN IF EXISTS _pgc_origin, DROP COLUMN IF EXISTS _pgc_birth', t);
  END LOOP;
END
$$;
SQL
  "$pg_dump" --schema-only "${conn[@]}" -d app_unmanaged -f "$work/dump-unmanaged.sql"
  "$psql" -X -q "${conn[@]}" -d app -c 'DROP DATABASE app_unmanaged'
}

section "Footprint: node 1's schema against the same tables unmanaged"
unmanaged_dump
managed_bytes=$(wc -c <"$work/dump-n1.sql")
unmanaged_bytes=$(wc -c <"$work/dump-unmanaged.sql")
plpgsql_bytes=$("$psql" -X -A -t -h 127.0.0.1 -p "${ports[0]}" -U pgconverge -d app -c \
  "SELECT COALESCE(sum(pg_catalog.length(p.prosrc)), 0) FROM pg_catalog.pg_proc p
   JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '_pgconverge'")
footprint=$(awk -v m="$managed_bytes" -v u="$unmanaged_bytes" 'BEGIN { printf "%.1f", m / u }')
printf '%-44s %10s\n' "schema dump size, same tables unmanaged" "$unmanaged_bytes bytes"
printf '%-44s %10s   target <= 3: %s\n' "ratio managed / unmanaged dump" "$footprint" "$(verdict "$footprint" 3)"
printf '%-44s %10s\n' "pgconverge function bodies, all tables" "$plpgsql_bytes bytes"
printf '%-44s %10s\n' "pgconverge function bodies per table" \
  "$(awk -v b="$plpgsql_bytes" -v t="$tables" 'BEGIN { printf "%.0f", b / t }') bytes"
