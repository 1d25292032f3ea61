#!/usr/bin/env bash
# Every capture added after the choices were made, pooled: the runs configs/fresh_captures.sh wrote for each
# of its splits (default: fresh fresh2 fresh3), over every seed, into results/fresh-all/{pooled,pooled-rules}:
#   configs/fresh_all.sh [SPLIT ...]
# Run each split's preset first; this only reads their results.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -gt 0 ] || set -- fresh fresh2 fresh3
runs=() rules=() plateaus=()
for split in "$@"; do
    for folder in results/"$split"/seed* results/"$split"/rules-seed*; do
        case $(basename "$folder") in
            seed[0-9] | seed[0-9][0-9]) runs+=("$folder") ;;
            rules-seed[0-9] | rules-seed[0-9][0-9]) rules+=("$folder") ;;
        esac  # lane folders (seed0.lane-0) are parts of these
    done
    plateaus+=(results/"$split"/plateau)
done
$BIN/foresplat-bench pool --runs "${runs[@]}" --init default splatfacto --reference splatfacto \
    --plateau-from "${plateaus[@]}" --output results/fresh-all/pooled
$BIN/foresplat-bench pool --runs "${rules[@]}" --init default zero-step --reference zero-step --output results/fresh-all/pooled-rules
