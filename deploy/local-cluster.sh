#!/usr/bin/env bash
# A throwaway Fluxgate cluster on loopback: one PostgreSQL, two gateway nodes, nginx in front of them.
#
#   deploy/local-cluster.sh up      start everything (PostgreSQL from Debian's package, nodes A and B, nginx)
#   deploy/local-cluster.sh test    prove through nginx: an append on node A reaches a subscriber on node B;
#                                   SIGKILL of node A loses no acknowledged event and its subscribers resume on B
#   deploy/local-cluster.sh down    stop everything and delete the cluster's directory
#   deploy/local-cluster.sh run     up, test, down (exit status of the test; what CI runs)
#
# It runs the files deploy/README.md has users install: the nodes from deploy/systemd/fluxgate@.service's ExecStart
# with its /etc/fluxgate.env, nginx from deploy/nginx/fluxgate.conf and fluxgate-proxy.conf (TLS with a throwaway
# self-signed certificate). Ports (override with the environment): nginx https ${FLUXGATE_CLUSTER_PORT:-18080}
# balances both nodes, +3 is its http redirect, +1 reaches node A only, +2 node B only; nodes on +11 and +12;
# PostgreSQL on +30. Directory: ${FLUXGATE_CLUSTER_DIR:-/tmp/fluxgate-cluster}.
# Needs scripts/setup.sh (postgresql, nginx, openssl, Python websockets). Builds fluxgate unless FLUXGATE_BIN is set.
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

# A node runs the ExecStart line of deploy/systemd/fluxgate@.service (%i is its port) with the environment file that
# deploy/README.md has users write to /etc/fluxgate.env: the unit as installed, minus systemd.
start_node() {  # binary name port
    local bin=$1 name=$2 port=$3 exec_start
    exec_start=$(sed -n 's/^ExecStart=//p' "$root/deploy/systemd/fluxgate@.service")
    case "$exec_start" in
    /usr/local/bin/fluxgate\ serve\ *%i*) ;;
    *) log "deploy/systemd/fluxgate@.service: ExecStart is not '/usr/local/bin/fluxgate serve … %i …'; update this script" >&2; return 1 ;;
    esac
    exec_start=${exec_start//%i/$port}
    exec_start=${exec_start/\/usr\/local\/bin\/fluxgate/$bin}
    # shellcheck disable=SC2086  # the unit's arguments, split as systemd splits them (the unit quotes nothing)
    (set -a && . "$dir/fluxgate.env" && set +a && exec $exec_start) >"$dir/node-$name.log" 2>&1 </dev/null &
    echo $! >"$dir/node-$name.pid"
    wait_for "http://127.0.0.1:$port/health" "node $name"
}

# deploy/nginx/fluxgate.conf with what differs on loopback rewritten: node ports, the TLS listener and its
# (self-signed) certificate, the http listener, the include path of fluxgate-proxy.conf. Each rewrite must apply:
# a changed deploy file fails here instead of being silently left untested.
nginx_site() {
    local out="$dir/nginx/fluxgate.conf" from to
    cp "$root/deploy/nginx/fluxgate.conf" "$out"
    while IFS='|' read -r from to; do
        grep -qF -- "$from" "$out" || { log "deploy/nginx/fluxgate.conf no longer has '$from'; update this script" >&2; return 1; }
        sed -i "s|$from|$to|g" "$out"
    done <<REWRITES
server 127.0.0.1:8081 |server 127.0.0.1:$port_a 
server 127.0.0.1:8082 |server 127.0.0.1:$port_b 
listen 443 ssl;|listen 127.0.0.1:$base ssl;
listen 80;|listen 127.0.0.1:$((base + 3));
/etc/ssl/certs/events.example.com.pem|$dir/tls/cert.pem
/etc/ssl/private/events.example.com.key|$dir/tls/key.pem
/etc/nginx/fluxgate-proxy.conf|$dir/nginx/fluxgate-proxy.conf
REWRITES
}

up() {
    mkdir -p "$dir/tls" "$dir/nginx/logs" "$dir/nginx/temp"
    chmod 777 "$dir/nginx/temp"
    local bin; bin=$(binary)
    "$root/scripts/postgres.sh" start "$dir/postgres" "$port_pg" >/dev/null
    psql -X -q "postgres://postgres@127.0.0.1:$port_pg/postgres" -tc "SELECT 1 FROM pg_database WHERE datname = 'fluxgate'" | grep -q 1 \
        || psql -X -q "postgres://postgres@127.0.0.1:$port_pg/postgres" -c "CREATE DATABASE fluxgate"
    # The /etc/fluxgate.env of deploy/README.md.
    (umask 077 && echo "FLUXGATE_STORE=$database" >"$dir/fluxgate.env")
    start_node "$bin" a "$port_a"
    start_node "$bin" b "$port_b"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" 2>/dev/null
    cp "$root/deploy/nginx/fluxgate-proxy.conf" "$dir/nginx/fluxgate-proxy.conf"
    nginx_site
    # The installed site, plus two plain-HTTP listeners that reach one node each (for the check only).
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
    include $dir/nginx/fluxgate.conf;
    upstream node_a { server 127.0.0.1:$port_a; }
    upstream node_b { server 127.0.0.1:$port_b; }
    server { listen 127.0.0.1:$((base + 1)); location / { proxy_pass http://node_a; include $dir/nginx/fluxgate-proxy.conf; } }
    server { listen 127.0.0.1:$((base + 2)); location / { proxy_pass http://node_b; include $dir/nginx/fluxgate-proxy.conf; } }
}
CONF
    nginx -t -q -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g "daemon on;"
    nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx"
    wait_for "http://127.0.0.1:$((base + 1))/health" "nginx"
    curl -fsS -o /dev/null --cacert "$dir/tls/cert.pem" "https://127.0.0.1:$base/health" \
        || { log "nginx's TLS listener (deploy/nginx/fluxgate.conf) did not answer; see $dir/nginx/logs" >&2; return 1; }
    log "up: nginx https://127.0.0.1:$base (deploy/nginx/fluxgate.conf; CA $dir/tls/cert.pem; http :$((base + 3)) redirects)," \
        "node A only http://127.0.0.1:$((base + 1)), node B only :$((base + 2)); database $database"
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
    "$python" "$root/deploy/cluster_check.py" --balanced "https://127.0.0.1:$base" --ca-file "$dir/tls/cert.pem" \
        --redirect "http://127.0.0.1:$((base + 3))" --node-a "http://127.0.0.1:$((base + 1))" \
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
