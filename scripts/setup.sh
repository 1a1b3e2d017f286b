#!/usr/bin/env bash
# Installs what Fluxgate needs on a fresh Debian/Ubuntu machine, and nothing when it is already there. Run as
# root, or as a user with sudo.
#
#   scripts/setup.sh build   what building and running fluxgate needs (zlib, SQLite)
#   scripts/setup.sh [test]  that, plus what the tests, benchmarks and the cluster check need (the default)
set -euo pipefail
purpose=${1:-test}
case "$purpose" in build|test) ;; *) echo "usage: $0 [build|test]" >&2; exit 2 ;; esac

packages=(zlib1g-dev libsqlite3-dev)
if [ "$purpose" = test ]; then
    # chromium and chromium-driver: the headless browser that checks the web UI (Tests/FluxGatewayTests/Browser).
    # postgresql: the server that the PostgreSQL store's tests start on loopback (scripts/postgres.sh), with psql.
    # nginx: the proxy in front of two gateway nodes in deploy/local-cluster.sh.
    # openssl: the CLI that makes the TLS tests' throwaway CA and server certificate (FluxTesting/TestCertificates).
    # gdb: scripts/test.sh prints the test process's threads with it when a run hangs.
    packages+=(chromium chromium-driver postgresql nginx openssl gdb)
fi
need_packages=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || need_packages+=("$package")
done

if [ ${#need_packages[@]} -gt 0 ]; then
    echo "setup: installing ${need_packages[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_packages[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: the Swift toolchain (6.1 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
[ "$purpose" = test ] || exit 0

# Python peers used by the tests and clients/python (the real, independent WebSocket implementation).
if ! python3 -c "import websockets" >/dev/null 2>&1; then
    echo "setup: installing the Python websockets package"
    python3 -m pip install --quiet --disable-pip-version-check "websockets>=12" 2>&1 | grep -v "Running pip as the 'root' user" || true
    python3 -c "import websockets" || { echo "setup: could not install the Python websockets package" >&2; exit 1; }
fi

# Selenium drives Debian's chromium through /usr/bin/chromedriver for the web UI's browser test.
if ! python3 -c "import selenium" >/dev/null 2>&1; then
    echo "setup: installing the Python selenium package"
    python3 -m pip install --quiet --disable-pip-version-check "selenium>=4.10" 2>&1 | grep -v "Running pip as the 'root' user" || true
    python3 -c "import selenium" || { echo "setup: could not install the Python selenium package" >&2; exit 1; }
fi

