#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ once, then runs each for SECONDS
# (default 60) from its committed seed corpus (fuzz/corpus/<target>/).
# Fails if any target crashes; the crashing input is left under
# fuzz/artifacts/<target>/. Installs cargo-fuzz if it is missing.
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. New inputs found during a run go to a
# working corpus outside the clone ($SHOAL_FUZZ_DIR/corpus), so the
# committed seeds stay small while repeated runs keep what they learnt.
# Built with the fuzz workspace's dev profile (opt-level 1): a cold release
# build of every dependency with coverage instrumentation took 15 min on two
# cores, most of a CI run; FUZZ_PROFILE=release for long runs.
# FUZZ_SANITIZER (default none: our crates forbid unsafe code and ASan
# halves the speed) may be set to address for a run that checks the
# dependencies' unsafe code too.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/install.sh

seconds="${1:-60}"
fuzz_dir="${SHOAL_FUZZ_DIR:-$HOME/.cache/shoal/fuzz}"
sanitizer="${FUZZ_SANITIZER:-none}"
profile="${FUZZ_PROFILE:-dev}"
profile_flag=()
[ "$profile" = dev ] && profile_flag=(--dev)
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$fuzz_dir/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$(cd fuzz && cargo fuzz list)

step "cargo fuzz build (profile: $profile, sanitizer: $sanitizer, debug assertions on)"
start=$(date +%s)
(cd fuzz && cargo fuzz build "${profile_flag[@]}" --sanitizer "$sanitizer" --debug-assertions --target-dir "$CARGO_TARGET_DIR")
echo "built in $(( $(date +%s) - start )) s"

# One target per core at a time: each still gets SECONDS of a core to
# itself, and the step takes SECONDS x targets / cores of wall time.
jobs="${FUZZ_JOBS:-$(nproc)}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_target() {
    local target=$1 corpus="$fuzz_dir/corpus/$1"
    mkdir -p "$corpus"
    # The working corpus comes first: libFuzzer writes new inputs there.
    (cd fuzz && cargo fuzz run "${profile_flag[@]}" --sanitizer "$sanitizer" --debug-assertions \
        --target-dir "$CARGO_TARGET_DIR" "$target" "$corpus" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1) >"$logs/$target.log" 2>&1
}

step "fuzz ${targets//$'\n'/, } for ${seconds} s each, $jobs at a time"
failed=()
declare -A running=()
finish_one() {
    local pid target
    wait -n -p pid "${!running[@]}" && status=0 || status=$?
    target=${running[$pid]}
    unset "running[$pid]"
    if [ "$status" -eq 0 ]; then
        echo "$target: $(grep -E '^stat::number_of_executed_units' "$logs/$target.log" | awk '{print $2}') executions, no crash"
    else
        echo "$target: FAILED (exit $status); its log:" >&2
        tail -n 60 "$logs/$target.log" >&2
        failed+=("$target")
    fi
}
for target in $targets; do
    while [ "${#running[@]}" -ge "$jobs" ]; do finish_one; done
    run_target "$target" &
    running[$!]=$target
done
while [ "${#running[@]}" -gt 0 ]; do finish_one; done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
step "every fuzz target ran ${seconds} s without a crash"
