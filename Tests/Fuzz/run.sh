#!/usr/bin/env bash
# Builds the Fluxgate libFuzzer targets (AddressSanitizer + libFuzzer) and runs each one for a bounded
# time. Exits non-zero if any target finds a crash, a leak, a timeout or an out-of-memory, or fails to build.
#
#   Tests/Fuzz/run.sh [SECONDS_PER_TARGET]      (default 30)
#
# Environment: FUZZ_SCRATCH (build directory, default <repo>/.build-fuzz), FUZZ_WORK (runtime corpora, logs and
# crash artifacts; default a fresh temporary directory, never the committed seeds), FUZZ_TARGETS (space-separated
# subset of the targets).
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]   (a positive whole number of seconds; got '$seconds')" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
scratch="${FUZZ_SCRATCH:-$root/.build-fuzz}"
work="${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fluxgate-fuzz.XXXXXX")}"
targets=(${FUZZ_TARGETS:-FuzzFrameParser FuzzServerHandshake FuzzDeflateDecompressor FuzzExtensionHeader FuzzUTF8Validator FuzzJSONReader FuzzGatewayRequest})
# Swift 6.3's `-sanitize=fuzzer` links libFuzzer but adds no coverage instrumentation to Swift code (no
# __sancov sections in the objects; libFuzzer then warns "no interesting inputs ... Is the code instrumented
# for coverage?" and fuzzes blind). Ask for the same instrumentation clang's -fsanitize=fuzzer uses, for every
# Swift module including FluxWebSocket and FluxGateway (dependencies, which the fuzz package's own settings cannot reach).
flags=(--scratch-path "$scratch" --sanitize=fuzzer --sanitize=address
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table)

cd "$here"
echo "== building ${#targets[@]} fuzz target(s) (scratch: $scratch)"
# SwiftPM keeps the sanitizers in a Set and writes them into every compile command in its iteration order, which
# Swift's per-process hash seed changes from one `swift build` to the next (`-sanitize=fuzzer -sanitize=address`,
# then `-sanitize=address -sanitize=fuzzer`): every command looks new and the whole graph (BoringSSL included) is
# rebuilt about every other time. A fixed seed keeps the order, so an unchanged build is a no-op (it also makes
# the targets' own Set and Dictionary orders the same from run to run, which helps reproduce an input).
export SWIFT_DETERMINISTIC_HASHING=1
# Only the targets to run, one product at a time (what they share is built once): a subset such as
# FUZZ_TARGETS=FuzzJSONReader does not wait for the gateway and BoringSSL.
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "$target"
done
bin="$(swift build "${flags[@]}" --show-bin-path)"

status=0
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    artifacts="$work/artifacts/$target"
    log="$work/$target.log"
    mkdir -p "$corpus" "$artifacts"
    cp Corpus/"$target"/* "$corpus"/   # start from the committed seeds; new inputs stay in $work
    dict=()   # a target's libFuzzer dictionary (Corpus/<target>.dict), when it has one
    if [ -f "Corpus/$target.dict" ]; then dict=(-dict="$here/Corpus/$target.dict"); fi
    echo "== $target for ${seconds}s"
    if SWIFT_BACKTRACE=enable=no "$bin/$target" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" ${dict[@]+"${dict[@]}"} >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
        echo "   ok: ${runs:-?} executions, ${rate:-?} exec/s"
    else
        status=1
        echo "   FINDING in $target (log: $log, reproducer: $(ls "$artifacts" | head -1)):"
        grep -E "ERROR|Fatal error|fuzz invariant|SUMMARY|Test unit written" "$log" | head -20 | sed 's/^/   /'
        echo "   reproduce: SWIFT_BACKTRACE=enable=no $bin/$target $artifacts/<file>"
    fi
done
echo "== work directory (corpora, logs, artifacts): $work"
exit "$status"
