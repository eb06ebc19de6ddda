#!/usr/bin/env bash
# Bounded fuzzing of regcompat's parsers (docs/fuzzing.md).
#
#   fuzz/run.sh [--seconds N] [TARGET...]
#
# Installs cargo-fuzz (pinned) if missing, builds every target once (nightly, optimised, with
# debug assertions, no sanitizer), then runs each target for N seconds (default 60) from a
# temporary corpus seeded with fuzz/seeds/<target>/. Exits non-zero on any crash, leak of
# the RSS limit or hang; the crashing input is kept in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.1
seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# The fuzz build lives beside the targets, not in the workspace's target dir, and is built
# once: `cargo fuzz run` would re-check it per target, so the binaries are run directly.
export CARGO_TARGET_DIR="$PWD/target"
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
build_start=$(date +%s)
cargo +nightly fuzz build -O --debug-assertions --sanitizer none
echo "fuzz build: $(( $(date +%s) - build_start )) s"
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$CARGO_TARGET_DIR/$triple/release"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
printf '%-14s %12s %8s  %s\n' target executions exec/s result > "$work/summary"
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    cp -r "seeds/$t/." "$corpus/" 2>/dev/null || true
    echo "--- $t (${seconds} s)"
    set +e
    "$bin_dir/$t" "$corpus" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$work/$t.log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        result=ok
        tail -n 3 "$work/$t.log" | grep -v '^stat::' || true
    else
        result="CRASH (exit $rc)"
        failed+=("$t")
        grep -v '^#' "$work/$t.log" | tail -n 40
        ls -1 "artifacts/$t/" | sed 's/^/  artifact: /'
    fi
    printf '%-14s %12s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result" >> "$work/summary"
done
echo
cat "$work/summary"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
