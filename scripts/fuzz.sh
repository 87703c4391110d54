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
# FUZZ_SANITIZER (default none: our crates forbid unsafe code and ASan
# halves the speed) may be set to address for a run that checks the
# dependencies' unsafe code too.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/install.sh

seconds="${1:-60}"
fuzz_dir="${SHOAL_FUZZ_DIR:-$HOME/.cache/shoal/fuzz}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$fuzz_dir/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=$(cd fuzz && cargo fuzz list)

step "cargo fuzz build (sanitizer: $sanitizer, debug assertions on)"
start=$(date +%s)
(cd fuzz && cargo fuzz build --sanitizer "$sanitizer" --debug-assertions --target-dir "$CARGO_TARGET_DIR")
echo "built in $(( $(date +%s) - start )) s"

failed=()
for target in $targets; do
    step "fuzz $target for ${seconds} s"
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    # The working corpus comes first: libFuzzer writes new inputs there.
    if ! (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" --debug-assertions \
        --target-dir "$CARGO_TARGET_DIR" "$target" "$corpus" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1); then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
step "every fuzz target ran ${seconds} s without a crash"
