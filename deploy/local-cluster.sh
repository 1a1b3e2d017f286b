#!/usr/bin/env bash
# A throwaway Fluxgate cluster on loopback: one PostgreSQL, two gateway nodes, nginx in front of them.
#
#   deploy/local-cluster.sh up      start everything (PostgreSQL from Debian's package, nodes A and B, nginx)
#   deploy/local-cluster.sh test    prove through nginx: an append on node A reaches a subscriber on node B;
#                                   SIGKILL of node A loses no acknowledged event and its subscribers resume on B
#   deploy/local-cluster.sh down    stop everything and delete the cluster's directory
#   deploy/local-cluster.sh run     up, test, down (exit status of the test; what CI runs)
#
# Ports (override with the environment): nginx ${FLUXGATE_CLUSTER_PORT:-18080} balances both nodes, +1 reaches
# node A only, +2 node B only; nodes on +11 and +12; PostgreSQL on +30. Directory: ${FLUXGATE_CLUSTER_DIR}.
# Needs scripts/setup.sh (postgresql, nginx, Python websockets). Builds fluxgate unless FLUXGATE_BIN is set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${FLUXGATE_CLUSTER_DIR:-/tmp/fluxgate-cluster}
base=${FLUXGATE_CLUSTER_PORT:-18080}
port_a=$((base + 11)); port_b=$((base + 12)); port_pg=$((base + 30))
database="postgres://postgres@127.0.0.1:$port_pg/fluxgate"

log() { echo "local-cluster: $*"; }

binary() {
    if [ -n "${FLUXGATE_BIN:-}" ]; then echo "$FLUXGATE_BIN"; return; fi
    (cd "$root" && swift build --product fluxgate >&2 && echo "$(swift build --show-bin-path)/fluxgate")
}

wait_for() {  # URL, what
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    log "$2 did not answer at $1; see $dir/*.log" >&2
    return 1
}

start_node() {  # name port
    local bin=$1 name=$2 port=$3
    nohup "$bin" serve --host 127.0.0.1 --port "$port" --store "$database" --trusted-proxy 127.0.0.1 >"$dir/node-$name.log" 2>&1 </dev/null &
    echo $! >"$dir/node-$name.pid"
    wait_for "http://127.0.0.1:$port/health" "node $name"
}

up() {
    mkdir -p "$dir"
    local bin; bin=$(binary)
    "$root/scripts/postgres.sh" start "$dir/postgres" "$port_pg" >/dev/null
    psql -X -q "postgres://postgres@127.0.0.1:$port_pg/postgres" -tc "SELECT 1 FROM pg_database WHERE datname = 'fluxgate'" | grep -q 1 \
        || psql -X -q "postgres://postgres@127.0.0.1:$port_pg/postgres" -c "CREATE DATABASE fluxgate"
    start_node "$bin" a "$port_a"
    start_node "$bin" b "$port_b"
    mkdir -p "$dir/nginx/logs" "$dir/nginx/temp"
    chmod 777 "$dir/nginx/temp"
    cp "$root/deploy/nginx/fluxgate-proxy.conf" "$dir/nginx/fluxgate-proxy.conf"
    cat >"$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log $dir/nginx/logs/access.log;
    client_body_temp_path $dir/nginx/temp/body;
    proxy_temp_path $dir/nginx/temp/proxy;
    fastcgi_temp_path $dir/nginx/temp/fastcgi;
    uwsgi_temp_path $dir/nginx/temp/uwsgi;
    scgi_temp_path $dir/nginx/temp/scgi;
    client_max_body_size 2m;
    map \$http_upgrade \$fluxgate_connection { default upgrade; '' ""; }
    upstream both { server 127.0.0.1:$port_a max_fails=1 fail_timeout=5s; server 127.0.0.1:$port_b max_fails=1 fail_timeout=5s; }
    upstream node_a { server 127.0.0.1:$port_a; }
    upstream node_b { server 127.0.0.1:$port_b; }
    server { listen 127.0.0.1:$base;       location / { proxy_pass http://both;   include $dir/nginx/fluxgate-proxy.conf; } }
    server { listen 127.0.0.1:$((base + 1)); location / { proxy_pass http://node_a; include $dir/nginx/fluxgate-proxy.conf; } }
    server { listen 127.0.0.1:$((base + 2)); location / { proxy_pass http://node_b; include $dir/nginx/fluxgate-proxy.conf; } }
}
CONF
    nginx -t -q -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g "daemon on;"
    nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx"
    wait_for "http://127.0.0.1:$base/health" "nginx"
    log "up: nginx http://127.0.0.1:$base (node A only :$((base + 1)), node B only :$((base + 2))), database $database"
}

down() {
    for name in a b; do
        if [ -f "$dir/node-$name.pid" ]; then kill "$(cat "$dir/node-$name.pid")" 2>/dev/null || true; fi
    done
    if [ -f "$dir/nginx/nginx.pid" ]; then nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -s stop 2>/dev/null || true; fi
    "$root/scripts/postgres.sh" stop "$dir/postgres" || true
    sleep 0.5
    rm -rf "$dir" "$dir/postgres.initdb.log"
    log "down"
}

test_cluster() {
    # The check subscribes with the websockets package: the project's virtual environment has it (make clients).
    local python=${FLUXGATE_PYTHON:-$root/.venv/bin/python3}
    [ -x "$python" ] || { echo "local-cluster: no $python; run make clients (or set FLUXGATE_PYTHON)" >&2; return 1; }
    "$python" "$root/deploy/cluster_check.py" --balanced "http://127.0.0.1:$base" --node-a "http://127.0.0.1:$((base + 1))" \
        --node-b "http://127.0.0.1:$((base + 2))" --node-a-pid "$(cat "$dir/node-a.pid")"
}

case "${1:-}" in
up) up ;;
down) down ;;
test) test_cluster ;;
run)
    trap down EXIT
    up
    test_cluster
    ;;
*)
    echo "usage: $0 up|test|down|run" >&2
    exit 2
    ;;
esac
