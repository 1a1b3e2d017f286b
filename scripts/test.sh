#!/usr/bin/env bash
# Runs the test suite (`swift test`, with this script's arguments) under a watchdog: a test run that prints
# nothing for FLUXGATE_TEST_SILENCE_LIMIT seconds (600 by default) once the tests are running has hung. The
# watchdog then prints what is needed to find why — the tests that started and never ended, and every thread's
# stack of the test process (with gdb, when it is installed) — stops the run and fails, instead of letting a hang
# hold a terminal or a CI job until its own limit.
set -uo pipefail
silence_limit=${FLUXGATE_TEST_SILENCE_LIMIT:-600}
case "$silence_limit" in '' | *[!0-9]*) echo "test: FLUXGATE_TEST_SILENCE_LIMIT must be a number of seconds" >&2; exit 2 ;; esac

log=$(mktemp "${TMPDIR:-/tmp}/fluxgate-tests.XXXXXX")
trap 'rm -f "$log"' EXIT

# Line-buffered output (coreutils' stdbuf reaches the test process through the environment): through a pipe the
# test process's output comes in blocks, and the last lines before a hang would sit unwritten in its buffer.
line_buffered=()
command -v stdbuf >/dev/null 2>&1 && line_buffered=(stdbuf -oL -eL)

# Our own process group, so that the watchdog can stop the run and everything it started.
set -m
"${line_buffered[@]}" swift test "$@" > >(tee -a "$log") 2>&1 &
runner=$!
set +m

# The test bundle's process, once the build is done and the tests run (a child of swift-test, in a process
# group of its own).
test_process() {
    pgrep -P "$runner" -f '\.xctest' | head -n 1
}

# Tests that printed "started" and neither "passed" nor "failed" (Swift Testing's lines; a parameterized case
# prints no end of its own, so cases are left out here and listed apart; "Test run" is the whole run).
unfinished_tests() {
    sed -n 's/^.*◇ Test \(.*\) started\.$/\1/p' "$log" | grep -v -e '^case passing ' -e '^run$' | sort -u > "$log.started"
    sed -n 's/^.*[✔✘] Test \(.*\) \(passed\|failed\) after .*$/\1/p' "$log" | sed 's/ with [0-9]* test cases\{0,1\}$//' | sort -u > "$log.ended"
    comm -23 "$log.started" "$log.ended"
    rm -f "$log.started" "$log.ended"
}

last_size=0
last_change=$(date +%s)
while kill -0 "$runner" 2>/dev/null; do
    sleep 5
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    now=$(date +%s)
    if [ "$size" != "$last_size" ]; then
        last_size=$size
        last_change=$now
        continue
    fi
    pid=$(test_process)
    [ -n "$pid" ] || { last_change=$now; continue; }
    if [ $((now - last_change)) -ge "$silence_limit" ]; then
        echo
        echo "test: the tests printed nothing for $silence_limit s: they hang. Tests that started and did not end:"
        unfinished_tests | sed 's/^/test:   /'
        echo "test: the last parameterized cases that started (cases print no end of their own):"
        grep -a 'Test case passing' "$log" | tail -n 12 | cut -c1-200 | sed 's/^/test:   /'
        if command -v gdb >/dev/null 2>&1; then
            echo "test: the threads of the test process $pid:"
            gdb -p "$pid" -batch -ex 'thread apply all bt 40' 2>/dev/null | grep -E '^(Thread|#)' | cut -c1-240
        else
            echo "test: (install gdb to see the test process's threads here)"
        fi
        # The PostgreSQL servers the tests started: what their sessions are doing, and who waits for a lock.
        for port in $(ps -eo args | sed -n 's/^.*postgres .*-p \([0-9][0-9]*\).*$/\1/p' | sort -u); do
            echo "test: sessions of the PostgreSQL server on port $port:"
            psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -X -A -t -c \
                "SELECT pid, datname, state, wait_event_type, wait_event, now() - query_start, left(query, 120) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" \
                2>&1 | sed 's/^/test:   /'
        done
        kill -TERM -- "-$pid" "-$runner" 2>/dev/null
        sleep 5
        kill -KILL -- "-$pid" "-$runner" 2>/dev/null
        wait "$runner" 2>/dev/null
        exit 124
    fi
done
wait "$runner"
