#!/usr/bin/env bash
# Sweeps one tunable at a time around the production defaults, N=1,000
# agents pulling a 256 MiB blob (flash crowd), and prints one JSON report per
# line. Usage: bench/sim/scripts/sweep.sh path/to/shoal-sim [extra flags]
set -euo pipefail
sim=${1:?path to the shoal-sim binary}
shift
base=(--agents 1000 --blob-mib 256 --json "$@")
run() { "$sim" "${base[@]}" "$@" | tr -d '\n '; echo; }
run
for p in 2 4; do run --piece-mib "$p"; done
for d in 4 8 32; do run --pipeline "$d"; done
for k in 10 25 100; do run --handout "$k"; done
for s in 2 4 16; do run --unchoke-slots "$s"; done
for a in 1 10; do run --announce-s "$a"; done
