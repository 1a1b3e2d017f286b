#!/usr/bin/env bash
# Installs what Fluxgate needs on a fresh Debian/Ubuntu machine, and nothing when it is already there. Run as
# root, or as a user with sudo.
#
#   scripts/setup.sh build    what building and running fluxgate needs (zlib, SQLite)
#   scripts/setup.sh clients  the Python clients' packages (clients/python), in the virtual environment .venv
#   scripts/setup.sh [test]   build's and clients' needs, plus what the tests, benchmarks and the cluster check
#                             need (the default)
set -euo pipefail
purpose=${1:-test}
case "$purpose" in build|clients|test) ;; *) echo "usage: $0 [build|clients|test]" >&2; exit 2 ;; esac

packages=()
[ "$purpose" = clients ] || packages+=(zlib1g-dev libsqlite3-dev)
# python3-venv: Debian's python3 makes no virtual environment without it.
[ "$purpose" = build ] || packages+=(python3 python3-venv)
if [ "$purpose" = test ]; then
    # chromium and chromium-driver: the headless browser that checks the web UI (Tests/FluxGatewayTests/Browser).
    # postgresql: the server that the PostgreSQL store's tests start on loopback (scripts/postgres.sh), with psql.
    # nginx: the proxy in front of two gateway nodes in deploy/local-cluster.sh.
    # openssl: the CLI that makes the TLS tests' throwaway CA and server certificate (FluxTesting/TestCertificates).
    # gdb: scripts/test.sh prints the test process's threads with it when a run hangs.
    # nodejs: runs clients/js/fluxgate.js outside a browser, as the README shows (FluxgateJSNodeTests).
    # graphite-carbon and python3-whisper: the carbon server that `serve --graphite` pushes to in the Graphite tests
    # (Tests/FluxGatewayTests/Metrics/TestCarbon.swift starts a throwaway one on loopback), and whisper-fetch to read it.
    packages+=(chromium chromium-driver postgresql nginx openssl gdb nodejs graphite-carbon python3-whisper)
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

if [ "$purpose" != clients ] && ! command -v swift >/dev/null 2>&1; then
    echo "setup: the Swift toolchain (6.1 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
[ "$purpose" != build ] || exit 0

# Python packages go into the project's virtual environment, .venv at the repository root, never into the
# system's Python (a stock Debian/Ubuntu refuses that: PEP 668). The tests find it there (FluxTesting's
# TestPython; FLUXGATE_PYTHON overrides), and so do you: .venv/bin/python3 clients/python/subscribe.py …
# pip runs only when the requirement files changed since the last install; when it fails, its own output says why.
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ "$purpose" = test ]; then
    requirements="$root/Tests/requirements.txt"     # clients/python/requirements.txt, plus selenium
else
    requirements="$root/clients/python/requirements.txt"
fi
system_python=/usr/bin/python3
[ -x "$system_python" ] || system_python=$(command -v python3)
if [ ! -x "$venv/bin/python3" ]; then
    echo "setup: making the Python virtual environment $venv"
    if ! output=$("$system_python" -m venv "$venv" 2>&1); then
        printf '%s\n' "$output" >&2
        echo "setup: $system_python could not make $venv (its output above); on Debian/Ubuntu it needs the python3-venv package" >&2
        rm -rf "$venv"
        exit 1
    fi
fi
wanted=$(cat "$root/clients/python/requirements.txt" "$requirements" | sha256sum | cut -d' ' -f1)
stamp="$venv/.fluxgate-requirements"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing the Python packages of ${requirements#"$root"/} into .venv"
    if ! output=$("$venv/bin/python3" -m pip install --disable-pip-version-check -r "$requirements" 2>&1); then
        printf '%s\n' "$output" >&2
        echo "setup: pip could not install ${requirements#"$root"/} into $venv (its output above)" >&2
        exit 1
    fi
    echo "$wanted" > "$stamp"
fi
