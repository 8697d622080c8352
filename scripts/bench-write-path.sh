#!/usr/bin/env bash
# What each part of pgconverge's local write path costs the writing node, before any
# replication: pgbench throughput on one server for the same table five ways, in one run.
#
#   plain       no triggers
#   stamp       pgconverge's stamp trigger only (the per-row clock, nothing recorded)
#   stamp+row   the stamp trigger and an AFTER trigger that inserts one bare change record
#               (op and the row as json) into a table without indexes: the least that a
#               change carried by a replicated record can cost
#   pgconverge  the table as pgconverge manages it (stamp and log triggers, change log)
#   forwarding  the write path without a change record ("write_path": "forwarding", applied
#               by pgconverge to a second database, app_fwd: stamp in a BEFORE trigger, an
#               incarnation column and identity index, a tombstone lookup per INSERT;
#               docs/conflicts.md)
#   fwd_shared  the forwarding path's local writes by one shared trigger function that takes
#               the table's shape as data (trigger arguments, dynamic SQL) instead of one
#               generated per table: the design a footprint of at most 3x the unmanaged
#               schema needs (docs/conflicts.md, "Footprint"). Its key-change refusal is the
#               trigger's WHEN clause, its row probe an EXECUTE; keys are not made canonical,
#               so it measures the least such a design costs the writer
#
# Every table has the same columns (the plain ones carry the two stamp columns too), so rows and
# WAL differ only by what the triggers add. pgbench runs single-row UPDATEs, then INSERTs, at
# $BENCH_CLIENTS clients, alternating the variants each round, with non-durable commits (fsync
# off, as the sandbox runs), so the ratios are CPU cost alone. No subscriber runs: this bounds
# the writer's throughput whatever the receivers cost.
#
#   scripts/bench-write-path.sh                          # 10 s per run, 3 rounds
#   BENCH_SECONDS=20 BENCH_ROUNDS=5 scripts/bench-write-path.sh
#
# Environment: BENCH_SECONDS, BENCH_ROUNDS, BENCH_CLIENTS (8), BENCH_ROWS (100000),
# BENCH_PORT (15650), PGCONVERGE_PG_BIN (default .pg/18/bin).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

seconds="${BENCH_SECONDS:-10}"
rounds="${BENCH_ROUNDS:-3}"
clients="${BENCH_CLIENTS:-8}"
rows="${BENCH_ROWS:-100000}"
port="${BENCH_PORT:-15650}"

bench_setup

sql() { "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U pgc -d app "$@"; }
# The database each variant's table lives in: the forwarding path is a cluster setting.
db_of() { case $1 in forwarding | fwd_shared) echo app_fwd ;; *) echo app ;; esac; }

cat >"$work/pgconverge.json" <<EOF
{
  "nodes": [{"name": "n1", "host": "127.0.0.1", "port": $port, "db": "app", "user": "pgc"}],
  "tables": [
$(bench_table_json bench_pgconverge)
  ]
}
EOF

cd "$work"
echo "starting a server on port $port and applying the configuration…" >&2
"$pgconverge" sandbox up --pg-bin "$bin" >/dev/null
"$pgconverge" apply --auto-approve >/dev/null

# The stamp function pgconverge generated for bench_pgconverge fits the other tables too: they
# have the same columns, and PL/pgSQL resolves NEW and OLD fields by name.
stamp="$(sql -c "SELECT tgfoid::regproc FROM pg_trigger
  WHERE tgrelid = 'public.bench_pgconverge'::regclass AND tgname = '_pgc_10_stamp'")"
[[ -n $stamp ]] || { echo "no stamp trigger on bench_pgconverge" >&2; exit 1; }

sql <<EOF
CREATE TABLE bench_change_record (op "char" NOT NULL, "row" json NOT NULL);
CREATE FUNCTION bench_record_change() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS \$\$
BEGIN
  INSERT INTO public.bench_change_record (op, "row") VALUES (pg_catalog.left(TG_OP, 1), pg_catalog.to_json(NEW));
  RETURN NULL;
END \$\$;
CREATE TABLE bench_plain (LIKE bench_pgconverge INCLUDING ALL);
CREATE TABLE bench_stamp (LIKE bench_pgconverge INCLUDING ALL);
CREATE TRIGGER _pgc_10_stamp BEFORE INSERT OR UPDATE ON bench_stamp FOR EACH ROW EXECUTE FUNCTION $stamp();
CREATE TABLE bench_stamp_row (LIKE bench_pgconverge INCLUDING ALL);
CREATE TRIGGER _pgc_10_stamp BEFORE INSERT OR UPDATE ON bench_stamp_row FOR EACH ROW EXECUTE FUNCTION $stamp();
CREATE TRIGGER _pgc_90_log AFTER INSERT OR UPDATE ON bench_stamp_row FOR EACH ROW EXECUTE FUNCTION public.bench_record_change();
EOF
sql -c "CREATE DATABASE app_fwd OWNER pgc"
mkdir -p "$work/fwd"
cat >"$work/fwd/pgconverge.json" <<EOF
{
  "nodes": [{"name": "f1", "host": "127.0.0.1", "port": $port, "db": "app_fwd", "user": "pgc"}],
  "replication": {"write_path": "forwarding"},
  "tables": [
$(bench_table_json bench_forwarding)
  ]
}
EOF
(cd "$work/fwd" && "$pgconverge" apply --auto-approve >/dev/null)

# The shared, data-driven variant: TG_ARGV[0] is the key condition on the row $1, the other
# arguments the key's columns. Rows larger than a page's share are rebuilt whole, so a value
# an UPDATE leaves out of line is stored and sent again, as the generated function does.
sql -d app_fwd <<'EOF'
CREATE TABLE bench_fwd_shared (LIKE bench_forwarding INCLUDING ALL);
CREATE FUNCTION bench_fwd_local_shared() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
  _pgc_v bigint;
  _pgc_dead bigint;
  _pgc_row jsonb;
  _pgc_key jsonb := '{}';
  _pgc_col text;
  _pgc_tbl text := pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN
  IF TG_OP = 'UPDATE' THEN
    NEW._pgc_version := GREATEST((EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000000)::bigint,
                                 OLD._pgc_version + 1);
    NEW._pgc_origin := _pgconverge.node_name();
    IF pg_catalog.pg_column_size(NEW) > 1800 THEN
      NEW := pg_catalog.jsonb_populate_record(NEW, pg_catalog.to_jsonb(NEW));
    END IF;
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' THEN _pgc_row := pg_catalog.to_jsonb(OLD); ELSE _pgc_row := pg_catalog.to_jsonb(NEW); END IF;
  FOREACH _pgc_col IN ARRAY TG_ARGV[1:] LOOP
    _pgc_key := _pgc_key || pg_catalog.jsonb_build_object(_pgc_col, _pgc_row -> _pgc_col);
  END LOOP;
  IF TG_OP = 'DELETE' THEN
    PERFORM _pgconverge.merge_incarnation_tombstone(_pgc_tbl, _pgc_key, OLD._pgc_birth);
    RETURN OLD;
  END IF;
  _pgc_v := (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000000)::bigint;
  EXECUTE 'SELECT 1 FROM ' || _pgc_tbl || ' WHERE ' || TG_ARGV[0] || ' FOR KEY SHARE' USING NEW;
  SELECT birth INTO _pgc_dead FROM _pgconverge.incarnation_tombstones WHERE tbl = _pgc_tbl AND pk = _pgc_key;
  IF _pgc_dead >= _pgc_v THEN _pgc_v := _pgc_dead + 1; END IF;
  NEW._pgc_birth := _pgc_v;
  NEW._pgc_version := _pgc_v;
  NEW._pgc_origin := _pgconverge.node_name();
  RETURN NEW;
END $$;
CREATE FUNCTION bench_refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the primary key cannot change' USING ERRCODE = 'feature_not_supported';
END $$;
CREATE TRIGGER _pgc_10_stamp BEFORE INSERT OR UPDATE ON bench_fwd_shared FOR EACH ROW
  EXECUTE FUNCTION bench_fwd_local_shared('id = ($1).id', 'id');
CREATE TRIGGER _pgc_11_key BEFORE UPDATE ON bench_fwd_shared FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD._pgc_birth IS DISTINCT FROM NEW._pgc_birth)
  EXECUTE FUNCTION bench_refuse_key_change();
CREATE TRIGGER _pgc_90_delete AFTER DELETE ON bench_fwd_shared FOR EACH ROW
  EXECUTE FUNCTION bench_fwd_local_shared('id = ($1).id', 'id');
EOF

echo "loading $rows rows into each table…" >&2
variants=(plain stamp stamp_row pgconverge forwarding fwd_shared)
for v in "${variants[@]}"; do
  sql -d "$(db_of "$v")" -c "INSERT INTO bench_$v (id, v, payload, ts) SELECT g, 0, 'row ' || g, clock_timestamp() FROM generate_series(1, $rows) g"
done
sql -d app_fwd -c "VACUUM ANALYZE"
sql -c "VACUUM ANALYZE" -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
  -c "SELECT pg_reload_conf()" >/dev/null

bench_pgbench_scripts "$rows"

declare -A tps_sum
for op in update insert; do
  for ((r = 1; r <= rounds; r++)); do
    for v in "${variants[@]}"; do
      out="$("$bin/pgbench" -n -c "$clients" -j 2 -T "$seconds" -D table="bench_$v" \
        -f "$work/$op.sql" -h 127.0.0.1 -p "$port" -U pgc "$(db_of "$v")" 2>&1)" || { echo "$out" >&2; exit 1; }
      tps="$(bench_tps "$out")"
      tps_sum["$op $v"]="$(awk -v a="${tps_sum["$op $v"]:-0}" -v b="$tps" 'BEGIN {print a + b}')"
      printf '  %-7s round %d %-11s %8.0f tps\n' "$op" "$r" "$v" "$tps" >&2
    done
  done
done

echo
echo "pgbench: $clients clients, ${seconds}s x $rounds rounds per variant, one server, no subscribers, $(nproc) CPUs"
printf '%-7s %-11s %10s %9s\n' op variant "tps (mean)" "/ plain"
for op in update insert; do
  for v in "${variants[@]}"; do
    mean="$(awk -v s="${tps_sum["$op $v"]}" -v n="$rounds" 'BEGIN {printf "%.0f", s / n}')"
    ratio="$(awk -v a="${tps_sum["$op $v"]}" -v b="${tps_sum["$op plain"]}" 'BEGIN {printf "%.2f", a / b}')"
    printf '%-7s %-11s %10s %9s\n' "$op" "$v" "$mean" "$ratio"
  done
done
