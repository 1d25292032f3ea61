#!/usr/bin/env bash
# The generated corpora behind the shipped checkpoints and the README results:
# 96 training scenes and 20 held-out scenes (disjoint seeds), 64x64, 24 orbit views each (4 held out).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data}
[ -f "$DATA/train/index.json" ] || $BIN/foresplat-synth --output "$DATA/train" --num-scenes 96 --seed 1 --resolution 64 --num-views 24 --num-eval-views 4 --overwrite
[ -f "$DATA/heldout/index.json" ] || $BIN/foresplat-synth --output "$DATA/heldout" --num-scenes 20 --seed 2 --resolution 64 --num-views 24 --num-eval-views 4 --overwrite
