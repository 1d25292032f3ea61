#!/usr/bin/env bash
# The compact checkpoints shipped in foresplat_ns/checkpoints/, one command: configs/shipped.sh
# (about 30 minutes on 2 CPU cores; resumable). Both come from the same zero-step pre-trained start
# and the same 1,000 outer steps on the 96 generated training scenes (configs/corpus.sh), seed 0:
#   compact-vanilla.pt    zero-step rule (--pipeline.rule zero-step)
#   compact-foresplat.pt  MetaGrad, default settings (K=8 inner steps, M=3 uniform anchors)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=results/runs
configs/corpus.sh
configs/meta_train.sh pretrain "${PRETRAIN_STEPS:-3000}" 0 --pipeline.rule zero-step
export INIT=$RUNS/pretrain/backbone.pt
configs/meta_train.sh vanilla-s0 "${STEPS:-1000}" 0 --pipeline.rule zero-step
configs/meta_train.sh metagrad-s0 "${STEPS:-1000}" 0
mkdir -p foresplat_ns/checkpoints
cp $RUNS/vanilla-s0/backbone.pt foresplat_ns/checkpoints/compact-vanilla.pt
cp $RUNS/metagrad-s0/backbone.pt foresplat_ns/checkpoints/compact-foresplat.pt
