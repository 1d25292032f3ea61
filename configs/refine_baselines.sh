#!/usr/bin/env bash
# `ns-train foresplat`'s refinement from the non-learned initialisers, one command: configs/refine_baselines.sh
# Three generated 128² scenes (seed 3); eval-view PSNR after 0..2000 refinement steps for random init and
# pointcloud init (fed the scenes' exact depth maps: an oracle-geometry reference), then the seconds per
# refinement step at 256² on one scene. About 1 hour on 2 CPU cores; resumable.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data}
[ -f "$DATA/baselines-128/index.json" ] || $BIN/foresplat-synth --output "$DATA/baselines-128" --num-scenes 3 --seed 3 --resolution 128 --overwrite
[ -f "$DATA/baselines-256/index.json" ] || $BIN/foresplat-synth --output "$DATA/baselines-256" --num-scenes 1 --seed 3 --resolution 256 --overwrite
$BIN/foresplat-bench refine --scenes "$DATA/baselines-128" --init random pointcloud --max-steps 2000 --output results/baselines-128
$BIN/foresplat-bench refine --scenes "$DATA/baselines-256" --init random pointcloud --max-steps 200 --output results/baselines-256
