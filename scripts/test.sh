#!/usr/bin/env bash
# The one command that checks the project: formatting, lints and every test, the integration
# tests against real PostgreSQL servers. Everything runs on PostgreSQL 18; the tests whose
# names contain one of OLDER_MAJOR_FILTERS (`fresh_apply`, `join_`, …) run again on 16 and 17, the older majors
# pgconverge supports. Installs PostgreSQL 16, 17 and 18 into .pg/ first when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly OLDER_MAJORS=(16 17)
readonly OLDER_MAJOR_FILTERS=(fresh_apply idempotent introspect definitions seeded_workloads join_ preflight_ evolution_ verify_ adopt_ forwarding_)

section() {
    printf '\n==== %s ====\n' "$*"
}

started=$SECONDS

section "PostgreSQL 16, 17, 18 and 18-tls in .pg/ (scripts/install-postgres.sh)"
bash scripts/install-postgres.sh all

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The integration tests run the pgconverge binary from target/debug.
section "cargo build -p pgconverge"
cargo build -p pgconverge

all_results="$(mktemp "${TMPDIR:-/tmp}/pgconverge-test-results.XXXXXX")"
log="$(mktemp "${TMPDIR:-/tmp}/pgconverge-test-log.XXXXXX")"
trap 'rm -f "$log" "$all_results"' EXIT

section "cargo test --workspace (PostgreSQL 18)"
PGCONVERGE_TEST_PG_MAJOR=18 cargo test --workspace 2>&1 | tee -a "$all_results"

filters_text="$(printf '*%s* or ' "${OLDER_MAJOR_FILTERS[@]}")"
filters_text="${filters_text% or }"
for major in "${OLDER_MAJORS[@]}"; do
    section "tests named $filters_text (PostgreSQL $major)"
    # libtest ORs several name filters; a binary with no matching test passes with 0 run.
    PGCONVERGE_TEST_PG_MAJOR=$major cargo test --workspace -- "${OLDER_MAJOR_FILTERS[@]}" 2>&1 \
        | tee "$log" | tee -a "$all_results"
    ran="$(grep -E '^test .+ \.\.\. (ok|FAILED|ignored)' "$log" || true)"
    if [[ -z "$ran" ]]; then
        printf '\nPostgreSQL %s: no test is named %s yet; none ran.\n' "$major" "$filters_text"
    else
        printf '\nPostgreSQL %s: %d test(s) ran:\n' "$major" "$(wc -l <<<"$ran")"
        sed 's/^/  /' <<<"$ran"
    fi
done

section "all checks passed in $((SECONDS - started))s"
# One closing line over every cargo test run above (all majors).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$all_results"
