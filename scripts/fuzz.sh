#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer's coverage instrumentation on the stable toolchain (the
# flags cargo-fuzz passes, minus its nightly-only sanitizer), then runs each target for a bounded time,
# seeded from tests/fixtures and fuzz/corpus. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/ (add it to fuzz/corpus/<target>/ once fixed, so it stays a regression seed).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#   FUZZ_PROFILE=smoke scripts/fuzz.sh 10                (make test: a quicker build, slower runs)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
all=(basecamp_webhook jira_webhook bitbucket_webhook signature config richtext)
targets=("${@:-${all[@]}}")

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/fuzz/target"
# --target keeps these flags off build scripts and proc macros, as cargo-fuzz does.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
profile="${FUZZ_PROFILE:-release}"
cargo build --locked --profile "$profile" --manifest-path fuzz/Cargo.toml --target "$host" --bins

seeds() {
    case "$1" in
        basecamp_webhook) echo tests/fixtures/basecamp ;;
        jira_webhook) echo tests/fixtures/jira ;;
        bitbucket_webhook) echo tests/fixtures/bitbucket ;;
        signature) echo tests/fixtures/jira tests/fixtures/bitbucket ;;
        config) echo ;;
        richtext) echo tests/fixtures/basecamp tests/fixtures/jira ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

for target in "${targets[@]}"; do
    work="fuzz/target/corpus/$target"
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/target/$target.log"
    status=0
    # shellcheck disable=SC2046 # the seed directories are word lists on purpose
    "fuzz/target/$host/$profile/$target" "$work" "fuzz/corpus/$target" $(seeds "$target") \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(INFO: seed corpus|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $status): the input is in fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
    echo "fuzz target $target: ${seconds}s, no crash"
done
