#!/usr/bin/env bash
# Installs what Fluxgate's build and tests need on a fresh Debian/Ubuntu machine, and nothing when it is
# already there. Run as root, or as a user with sudo.
set -euo pipefail

need_packages=()
# chromium and chromium-driver: the headless browser that checks the web UI (Tests/FluxGatewayTests/Browser).
# postgresql: the server that the PostgreSQL store's tests start on loopback (scripts/postgres.sh); psql comes with it.
# nginx: the proxy in front of two gateway nodes in deploy/local-cluster.sh.
for package in zlib1g-dev libsqlite3-dev chromium chromium-driver postgresql nginx; do
    dpkg -s "$package" >/dev/null 2>&1 || need_packages+=("$package")
done

if [ ${#need_packages[@]} -gt 0 ]; then
    echo "setup: installing ${need_packages[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_packages[@]}"
fi

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

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: the Swift toolchain (6.1 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
