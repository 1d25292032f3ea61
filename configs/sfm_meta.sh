#!/usr/bin/env bash
# The shipped pair fine-tuned for the way `ns-train foresplat` now uses them, one command:
#   configs/sfm_meta.sh CAPTURES_DIR
# At test time the backbone sees the capture's SfM points (their depth), its prediction is refined together
# with splatfacto's start from those points, at ForeSplat's learning rates. The shipped checkpoints were
# trained on the prediction alone, at its own depth, at splatfacto's rates. 500 more outer steps of each
# (MetaGrad from compact-foresplat.pt, the zero-step rule from compact-vanilla.pt; the scenes and image
# size of configs/real_meta.sh; ForeSplat's learning rates in the inner loop), in two variants:
#   sees:  the backbone sees the SfM points of the scenes that have them;
#   union: that, and the inner loop refines splatfacto's start beside the prediction, as test time does.
# Then, refined as `ns-train foresplat` refines (240 px, 8 held-out views, the 2,000-step schedule):
# 1. the choice, on the training captures with SfM points: the default against each variant's MetaGrad
#    seed 0 (refinement seed 0);
# 2. the judgement of the chosen variant (CHOSEN), on the held-out captures: with SfM points, refinement
#    seeds 0-2 beside splatfacto's start and the default; without, seed 0 beside the default.
# Two lanes (one per core); resumable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CAPTURES=$(realpath "${1:?usage: configs/sfm_meta.sh CAPTURES_DIR}")
CHOSEN=${CHOSEN:-union}
OUT=results/sfm-meta
mkdir -p "$OUT"
real_and_generated_scenes > "$OUT/scenes.txt"
export SCENES=$OUT/scenes.txt
train() {  # train VARIANT RULE SEED
    local flags=(--pipeline.datamanager.max-image-side 160 --pipeline.datamanager.backbone-sees-sfm-points True)
    [ "$1" = union ] && flags+=(--pipeline.datamanager.refine-with-sfm-start True)
    if [ "$2" = metagrad ]; then
        INIT=foresplat_ns/checkpoints/compact-foresplat.pt configs/meta_train.sh "$1-metagrad-s$3" 500 "$3" "${flags[@]}"
    else
        INIT=foresplat_ns/checkpoints/compact-vanilla.pt configs/meta_train.sh "$1-vanilla-s$3" 500 "$3" "${flags[@]}" \
            --pipeline.rule zero-step
    fi
}
for rule in metagrad vanilla; do
    { for variant in sees union; do for seed in 0 1; do train "$variant" "$rule" "$seed"; done; done; } > "$OUT/lane-$rule.log" 2>&1 &
done
wait

for split in train heldout; do
    split_captures "$split" > "$OUT/$split-all.txt"
    with_sfm_points < "$OUT/$split-all.txt" > "$OUT/$split-sfm.txt"
    grep -vxFf "$OUT/$split-sfm.txt" "$OUT/$split-all.txt" > "$OUT/$split-nosfm.txt" || true
done
tuned() { echo "$1-$2:$RUNS/$1-$2-s$3/backbone.pt:sfm-union-else-best"; }
in_lanes "$OUT/train-sfm.txt" "$OUT/choice" --init default "$(tuned sees metagrad 0)" "$(tuned union metagrad 0)" --max-steps 2000
for seed in 0 1 2; do
    in_lanes "$OUT/heldout-sfm.txt" "$OUT/heldout-seed$seed" --init splatfacto default "$(tuned "$CHOSEN" metagrad 0)" \
        "$(tuned "$CHOSEN" vanilla 0)" --max-steps 2000 --seed "$seed"
done
in_lanes "$OUT/heldout-nosfm.txt" "$OUT/heldout-nosfm" --init default "$(tuned "$CHOSEN" metagrad 0)" --max-steps 2000
