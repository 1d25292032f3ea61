#!/usr/bin/env bash
# One foresplat-meta training run: meta_train.sh NAME STEPS SEED [extra ns-train flags...]
# Writes results/runs/NAME/backbone.pt (and nerfstudio checkpoints, tensorboard logs, wall time).
# INIT=path/to/backbone.pt starts from those weights (the shared start of every compared rule);
# SCENES=folder-or-list trains on those scenes instead of $DATA/train.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-data}
NAME=$1; STEPS=$2; SEED=$3; shift 3
OUT=results/runs
if [ -f "$OUT/$NAME/backbone.pt" ] && [ -f "$OUT/$NAME/seconds.txt" ]; then echo "$NAME: done"; exit 0; fi
mkdir -p "$OUT"
INIT_FLAGS=()
[ -n "${INIT:-}" ] && INIT_FLAGS=(--pipeline.backbone.checkpoint "$INIT")
LOAD_FLAGS=()
REMAINING=$STEPS
CKPTS="$OUT/train/foresplat-meta/$NAME/nerfstudio_models"
LAST=$( (ls "$CKPTS" 2>/dev/null || true) | sed -n 's/^step-0*\([0-9][0-9]*\)\.ckpt$/\1/p' | sort -n | tail -1)
if [ -n "$LAST" ]; then   # resume after a kill: nerfstudio counts --max-num-iterations from the loaded step
    LOAD_FLAGS=(--load-dir "$CKPTS"); REMAINING=$(( STEPS - LAST - 1 ))
fi
start=$(date +%s)
$BIN/ns-train foresplat-meta --data "${SCENES:-$DATA/train}" --output-dir "$OUT" --experiment-name train --timestamp "$NAME" \
    --max-num-iterations "$REMAINING" --machine.seed "$SEED" --pipeline.seed "$SEED" \
    --pipeline.datamanager.seed "$SEED" --logging.steps-per-log 50 \
    "${INIT_FLAGS[@]}" "${LOAD_FLAGS[@]}" "$@"
mkdir -p "$OUT/$NAME"
cp "$OUT/train/foresplat-meta/$NAME/backbone.pt" "$OUT/$NAME/backbone.pt"
echo $(( $(date +%s) - start )) > "$OUT/$NAME/seconds.txt"
