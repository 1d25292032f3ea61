#!/usr/bin/env bash
# Everything behind the README's MetaGrad results, one command: configs/evidence.sh
# (resumable: finished runs and finished scene/init pairs are reused). About 3 hours on 2 CPU cores.
#
#  1. corpora (configs/corpus.sh)
#  2. a shared start: the compact backbone trained from scratch with the zero-step rule
#  3. from that start, per seed (0, 1): vanilla (zero-step) for STEPS outer steps, MetaGrad for STEPS,
#     vanilla for as long as MetaGrad took (same wall time), and our variant (annealed zero-step weight)
#  4. foresplat-bench refine on the held-out scenes for every resulting init, plus random and
#     pointcloud (oracle depth) references, and the cost of a MetaGrad step (foresplat-bench metagrad)
# The ablations are configs/ablations.sh.
set -euo pipefail
source "$(dirname "$0")/common.sh"

shared_start

for SEED in 0 1; do
    configs/meta_train.sh "vanilla-s$SEED" "$STEPS" "$SEED" --pipeline.rule zero-step
    configs/meta_train.sh "metagrad-s$SEED" "$STEPS" "$SEED"
    # Same wall time: as many zero-step steps as fit in MetaGrad's time, at vanilla's measured pace.
    WALL_STEPS=$(( STEPS * $(cat $RUNS/metagrad-s$SEED/seconds.txt) / $(cat $RUNS/vanilla-s$SEED/seconds.txt) ))
    configs/meta_train.sh "vanilla-wall-s$SEED" "$WALL_STEPS" "$SEED" --pipeline.rule zero-step
    # Our variant: the zero-step gradient mixed in with a weight annealed from 4 to 0 over half the run.
    configs/meta_train.sh "var-anneal-s$SEED" "$STEPS" "$SEED" --pipeline.metagrad.zero-step-weight-start 4.0 \
        --pipeline.metagrad.zero-step-anneal-steps $(( STEPS / 2 ))
done

INITS=(random pointcloud "start:$RUNS/pretrain/backbone.pt")
for RUN in vanilla-s0 vanilla-s1 vanilla-wall-s0 vanilla-wall-s1 metagrad-s0 metagrad-s1 var-anneal-s0 var-anneal-s1; do
    INITS+=("$RUN:$RUNS/$RUN/backbone.pt")
done
$BIN/foresplat-bench refine --scenes data/heldout --max-scenes 16 --init "${INITS[@]}" --reference vanilla-s0 \
    --max-steps 500 --output results/evidence
$BIN/foresplat-bench metagrad --output results/evidence/metagrad_cost.md
