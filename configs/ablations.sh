#!/usr/bin/env bash
# MetaGrad ablations, one factor at a time around the default (K=8, M=3, uniform anchors, no zero-step
# weight, whole network), seed 0, from the shared start of configs/evidence.sh (run that first); then a
# 4x wider compact backbone with its own shared start. Resumable (finished runs and scene/init pairs are
# reused); the table, against vanilla-s0 and metagrad-s0, goes to results/ablations. About 25 minutes per
# ablation on 2 CPU cores; ABLATIONS="abl-k4 abl-m1" runs a subset.
set -euo pipefail
source "$(dirname "$0")/common.sh"
export INIT=$RUNS/pretrain/backbone.pt
[ -f "$INIT" ] || { echo "run configs/evidence.sh first (it trains $INIT)" >&2; exit 1; }

declare -A FLAGS=(
    [abl-k4]="--pipeline.metagrad.inner-steps 4"
    [abl-k16]="--pipeline.metagrad.inner-steps 16"
    [abl-m1]="--pipeline.metagrad.num-anchors 1"
    [abl-mall]="--pipeline.metagrad.num-anchors -1"
    [abl-stride]="--pipeline.metagrad.anchor-sampler stride"
    [abl-late]="--pipeline.metagrad.anchor-sampler late"
    [abl-zero1]="--pipeline.metagrad.zero-step-weight 1.0"
    [abl-head]="--pipeline.model.trainable head"
)
ORDER=(${ABLATIONS:-abl-k4 abl-m1 abl-zero1 abl-head abl-k16 abl-mall abl-stride abl-late wide})
INITS=("vanilla-s0:$RUNS/vanilla-s0/backbone.pt" "metagrad-s0:$RUNS/metagrad-s0/backbone.pt")
for RUN in "${ORDER[@]}"; do
    if [ "$RUN" = wide ]; then
        INIT= configs/meta_train.sh wide-pretrain "$PRETRAIN_STEPS" 0 --pipeline.rule zero-step --pipeline.backbone.compact.width 128
        INIT=$RUNS/wide-pretrain/backbone.pt configs/meta_train.sh wide-vanilla-s0 "$STEPS" 0 --pipeline.rule zero-step --pipeline.backbone.compact.width 128
        INIT=$RUNS/wide-pretrain/backbone.pt configs/meta_train.sh wide-metagrad-s0 "$STEPS" 0 --pipeline.backbone.compact.width 128
        INITS+=("wide-vanilla-s0:$RUNS/wide-vanilla-s0/backbone.pt" "wide-metagrad-s0:$RUNS/wide-metagrad-s0/backbone.pt")
    else
        # shellcheck disable=SC2086
        configs/meta_train.sh "$RUN" "$STEPS" 0 ${FLAGS[$RUN]}
        INITS+=("$RUN:$RUNS/$RUN/backbone.pt")
    fi
    # After each ablation, so a partial run still leaves a complete table for what it finished.
    $BIN/foresplat-bench refine --scenes data/heldout --max-scenes 16 --init "${INITS[@]}" --reference vanilla-s0 \
        --max-steps 500 --output results/ablations
done
