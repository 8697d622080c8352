# Shared by the benchmarks run on a sandbox (bench-conflicts.sh, bench-write-path.sh,
# bench-join.sh); sourced, not run.
#
# After `bench_setup`: $root, $bin (PostgreSQL 18 client and server binaries), $pgconverge (a
# fresh build) and $work (a scratch directory whose sandbox servers are stopped and which is
# removed on exit).

bench_setup() {
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  bin="${PGCONVERGE_PG_BIN:-$root/.pg/18/bin}"
  for tool in pgbench psql; do
    [[ -x "$bin/$tool" ]] || { echo "missing $bin/$tool: run scripts/install-postgres.sh 18" >&2; exit 1; }
  done

  echo "building pgconverge…" >&2
  cargo build --quiet --manifest-path "$root/Cargo.toml" -p pgconverge
  pgconverge="$root/target/debug/pgconverge"

  work="$(mktemp -d /tmp/pgconverge-bench.XXXXXX)"
  chmod 755 "$work"
  trap bench_cleanup EXIT
}

bench_cleanup() {
  (cd "$work" && "$pgconverge" sandbox down >/dev/null 2>&1) || true
  rm -rf "$work"
}

# The benchmarked table as a pgconverge config entry: bench_table_json NAME
bench_table_json() {
  cat <<EOF
    {
      "name": "$1",
      "columns": [
        {"name": "id", "type": "bigint"},
        {"name": "v", "type": "bigint"},
        {"name": "payload", "type": "text"},
        {"name": "ts", "type": "timestamptz"}
      ],
      "primary_key": ["id"]
    }
EOF
}

# pgbench scripts $work/update.sql (one of ROWS existing rows) and $work/insert.sql (a new key,
# drawn from a range wide enough that long runs do not collide): bench_pgbench_scripts ROWS
bench_pgbench_scripts() {
  cat >"$work/update.sql" <<EOF
\set id random(1, $1)
UPDATE :table SET v = v + 1, ts = clock_timestamp() WHERE id = :id;
EOF
  cat >"$work/insert.sql" <<'EOF'
\set id random(1000000, 9000000000000000000)
INSERT INTO :table (id, v, payload, ts) VALUES (:id, 0, 'new', clock_timestamp());
EOF
}

# The tps figure of a pgbench report: bench_tps OUTPUT
bench_tps() {
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$1" | head -1
}
