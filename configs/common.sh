# Sourced by the presets: one thread per process, the repository root, the venv, step counts, the runs folder.
# One thread per process: on a shared 2-core machine two 2-thread OpenMP pools thrash each other.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-.venv/bin}
STEPS=${STEPS:-1000}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-3000}
RUNS=results/runs

# The corpora and the zero-step pre-trained start that every compared rule begins from (exported as INIT).
shared_start() {
    configs/corpus.sh
    configs/meta_train.sh pretrain "$PRETRAIN_STEPS" 0 --pipeline.rule zero-step
    export INIT=$RUNS/pretrain/backbone.pt
}

# splatfacto's schedule stretched to PLATEAU_STEPS steps (default 5000; splitting stops at 3/4 of them): the
# long runs that find a start's plateau.
PLATEAU_STEPS=${PLATEAU_STEPS:-5000}
PLATEAU_SCHEDULE=(--max-steps "$PLATEAU_STEPS" --refine.max-steps "$PLATEAU_STEPS"
    --refine.stop-split-at $((PLATEAU_STEPS * 3 / 4)) --refine.stop-screen-size-at "$PLATEAU_STEPS")

# The real-capture benchmark: `ns-train foresplat`'s refinement at MAX_IMAGE_SIDE px on the long side (default
# 240), 8 held-out views.
bench() { $BIN/foresplat-bench refine --max-image-side "${MAX_IMAGE_SIDE:-240}" --max-eval-views 8 "$@"; }

# Runs `bench` over the scenes listed in $1 in two lanes (alternate scenes, one per core), then merges
# them into $2; the remaining arguments go to every call.
in_lanes() {
    local scenes=$1 out=$2
    shift 2
    awk 'NR % 2 == 1' "$scenes" > "$out.lane-0.txt"
    awk 'NR % 2 == 0' "$scenes" > "$out.lane-1.txt"
    for lane in 0 1; do
        bench --scenes "$out.lane-$lane.txt" --output "$out.lane-$lane" "$@" > "$out.lane-$lane.log" 2>&1 &
    done
    wait
    bench --scenes "$scenes" --output "$out" --merge-from "$out.lane-0" "$out.lane-1" "$@"
}

# Runs `bench` on each scene listed in $1 in a folder of its own ($2.scenes/NAME), two scenes at a time (one
# per core; a long scene holds up no other), then merges them into $2; the remaining arguments go to every
# call. For runs whose lengths differ a lot between scenes, where in_lanes' fixed halves would leave a core idle.
in_queue() {
    local scenes=$1 out=$2 scene
    shift 2
    mkdir -p "$out.scenes"
    while read -r scene; do echo "$scene" > "$out.scenes/$(basename "$scene").txt"; done < "$scenes"
    export -f bench
    export BIN
    sed 's|.*/||' "$scenes" | xargs -P 2 -I{} bash -c 'folder=$1 name=$2; shift 2
        bench --scenes "$folder/$name.txt" --output "$folder/$name" "$@" > "$folder/$name.log" 2>&1' _ "$out.scenes" {} "$@"
    bench --scenes "$scenes" --output "$out" --merge-from "$out".scenes/*/ "$@"
}

# The folders under $CAPTURES of the captures configs/real_split.txt puts in split $1 (train or heldout).
split_captures() {
    grep "^$1 " configs/real_split.txt | awk -v root="$CAPTURES" '{print root "/" $2}'
}

# Writes $1/{train,heldout}-{all,sfm,nosfm}.txt: each split's captures, those with SfM points, the others.
split_lists() {
    for split in train heldout; do
        split_captures "$split" > "$1/$split-all.txt"
        with_sfm_points < "$1/$split-all.txt" > "$1/$split-sfm.txt"
        grep -vxFf "$1/$split-sfm.txt" "$1/$split-all.txt" > "$1/$split-nosfm.txt" || true
    done
}

# The capture folders listed on stdin that hold SfM points (COLMAP points3D.* or a sparse_pc.ply).
with_sfm_points() {
    while read -r scene; do
        if [ -n "$(find "$scene" -maxdepth 3 \( -name 'points3D.*' -o -name 'sparse_pc.ply' \) -print -quit)" ]; then
            echo "$scene"
        fi
    done
}

# The training scenes of the presets that train on real photos: the "train" captures of
# configs/real_split.txt, each listed REAL_REPEATS times (about 40% of outer steps draw one), and 64
# generated 128² scenes (orbits, hemispheres and forward-facing grids, like the captures), made once.
real_and_generated_scenes() {
    for spec in "orbit 32 21" "hemisphere 16 22" "forward-facing 16 23"; do
        read -r layout count seed <<< "$spec"
        [ -f "data/gen128/$layout/index.json" ] || $BIN/foresplat-synth --output "data/gen128/$layout" --num-scenes "$count" \
            --seed "$seed" --resolution 128 --num-views 24 --num-eval-views 4 --cameras "$layout" --overwrite >&2
    done
    for _ in $(seq "${REAL_REPEATS:-6}"); do split_captures train; done
    find "$(realpath data/gen128)" -mindepth 2 -maxdepth 2 -type d -name 'scene_*' | sort
}
