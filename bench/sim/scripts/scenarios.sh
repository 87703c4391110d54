#!/usr/bin/env bash
# Every scenario at N=1,000 agents pulling 256 MiB, default tunables, plus
# the several-origins comparison for one-origin; one JSON report per line.
# Usage: bench/sim/scripts/scenarios.sh path/to/shoal-sim [extra flags]
set -euo pipefail
sim=${1:?path to the shoal-sim binary}
shift
for s in flash-crowd staggered churn hetero one-origin multi-blob; do
  "$sim" --scenario "$s" --agents 1000 --blob-mib 256 --json "$@" | tr -d '\n '
  echo
done
"$sim" --scenario flash-crowd --origins 4 --agents 1000 --blob-mib 256 --json "$@" | tr -d '\n '
echo
