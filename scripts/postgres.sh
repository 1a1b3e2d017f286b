#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for tests, benchmarks and deploy/local-cluster.sh.
#
#   scripts/postgres.sh start [DIR] [PORT]   initdb DIR if needed, start the server, print its URL
#   scripts/postgres.sh stop  [DIR]          stop it (the data stays in DIR)
#   scripts/postgres.sh url   [DIR] [PORT]   print the URL
#
# Defaults: DIR=${FLUXGATE_PG_DIR:-/tmp/fluxgate-postgres}, PORT=${FLUXGATE_PG_PORT:-54329}. Trust authentication,
# listening on 127.0.0.1 only. Needs Debian's postgresql package (scripts/setup.sh installs it).
set -euo pipefail

command=${1:-start}
dir=${2:-${FLUXGATE_PG_DIR:-/tmp/fluxgate-postgres}}
port=${3:-${FLUXGATE_PG_PORT:-54329}}

bin=""
for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/pg_ctl" ] && bin=$candidate
done
if [ -z "$bin" ]; then
    echo "postgres.sh: PostgreSQL is not installed; run scripts/setup.sh" >&2
    exit 1
fi

# Runs a command that starts a server outliving this script, without the descriptors this script inherited: a
# test runner watches its pipes or a socket for the end of this script, and a server holding them would keep
# them open forever. (Only the subshell closes them: this script keeps its own until it exits.)
detached() {
    (
        for descriptor in /proc/$BASHPID/fd/*; do
            number=${descriptor##*/}
            if [ "$number" -gt 2 ] && [ "$number" -ne 255 ]; then eval "exec $number>&-" 2>/dev/null || true; fi
        done
        "$@"
    )
}

# PostgreSQL refuses to run as root: run its programs as the postgres user then.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url="postgres://postgres@127.0.0.1:$port/postgres"

case "$command" in
start)
    if [ ! -f "$dir/PG_VERSION" ]; then
        mkdir -p "$dir"
        [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
        chmod 700 "$dir"
        as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync >"$dir.initdb.log" 2>&1 \
            || { cat "$dir.initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        detached as_owner "$bin/pg_ctl" -D "$dir" -w -t 120 -l "$dir/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=${FLUXGATE_PG_FSYNC:-on}" start >/dev/null \
            || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    # A server that is up may still be recovering (after a crash it syncs its files first): wait until it accepts.
    for _ in $(seq 1 240); do
        "$bin/pg_isready" -q -U postgres -d postgres -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    "$bin/pg_isready" -q -U postgres -d postgres -h 127.0.0.1 -p "$port" || { echo "postgres.sh: the server does not accept connections; see $dir/server.log" >&2; exit 1; }
    echo "$url"
    ;;
stop)
    if [ -f "$dir/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$dir" -w -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
url)
    echo "$url"
    ;;
*)
    echo "usage: $0 start|stop|url [DIR] [PORT]" >&2
    exit 2
    ;;
esac
