#!/usr/bin/env bash
# The compact checkpoints shipped in foresplat_ns/checkpoints/, one command: configs/shipped.sh CAPTURES_DIR
# (about 3.5 hours on 2 CPU cores; resumable). Seed 0 throughout.
#   compact-vanilla-generated.pt    zero-step rule, generated 64² scenes only: 3,000 zero-step pre-training
#                                   steps, then 1,000 outer steps on the 96 scenes of configs/corpus.sh
#   compact-foresplat-generated.pt  MetaGrad (K=8 inner steps, M=3 uniform anchors), same start and steps
#   compact-vanilla.pt              zero-step rule, 1,000 outer steps from compact-vanilla-generated.pt on
#                                   the training real captures and 64 generated 128² scenes (configs/real_meta.sh)
#   compact-foresplat.pt            MetaGrad, the same (the default of ns-train foresplat on captures
#                                   without SfM points)
#   compact-vanilla-sfm.pt          compact-vanilla.pt after 500 more outer steps as ns-train foresplat uses
#                                   it where a capture has SfM points: the backbone sees them, the inner loop
#                                   refines splatfacto's start beside the prediction (configs/sfm_meta.sh)
#   compact-foresplat-sfm.pt        MetaGrad, the same from compact-foresplat.pt (the default of ns-train
#                                   foresplat on captures with SfM points)
# CAPTURES_DIR holds the captures of configs/real_split.txt (team-internal; never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
CAPTURES=${1:?usage: configs/shipped.sh CAPTURES_DIR}
RUNS=results/runs
CHECKPOINTS=foresplat_ns/checkpoints
configs/corpus.sh
configs/meta_train.sh pretrain "${PRETRAIN_STEPS:-3000}" 0 --pipeline.rule zero-step
export INIT=$RUNS/pretrain/backbone.pt
configs/meta_train.sh vanilla-s0 "${STEPS:-1000}" 0 --pipeline.rule zero-step
configs/meta_train.sh metagrad-s0 "${STEPS:-1000}" 0
cp $RUNS/vanilla-s0/backbone.pt $CHECKPOINTS/compact-vanilla-generated.pt
cp $RUNS/metagrad-s0/backbone.pt $CHECKPOINTS/compact-foresplat-generated.pt
unset INIT
configs/real_meta.sh "$CAPTURES"
cp $RUNS/real-vanilla-s0/backbone.pt $CHECKPOINTS/compact-vanilla.pt
cp $RUNS/real-metagrad-s0/backbone.pt $CHECKPOINTS/compact-foresplat.pt
configs/sfm_meta.sh "$CAPTURES"
cp $RUNS/union-vanilla-s0/backbone.pt $CHECKPOINTS/compact-vanilla-sfm.pt
cp $RUNS/union-metagrad-s0/backbone.pt $CHECKPOINTS/compact-foresplat-sfm.pt
