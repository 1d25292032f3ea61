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
