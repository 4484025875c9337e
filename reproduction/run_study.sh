#!/usr/bin/env bash
# The 25-seed study (issue 20, part 5; reproduction/PREREGISTRATION.md): the paper's ten arms at
# seeds 0-24 x 30 epochs, and the arms beyond the paper (configs/beyond/) at BEYOND_SEEDS.
# Run it from a checkout of the pinned tag (e.g. `git worktree add ../study study-v2`), installed
# there (`pip install -e .` in that checkout, or a venv of its own), so main can move on.
# Resumable: stop it at any time (kill its process group) and run the same command again;
# finished runs (a summary in SUMS) are never rerun, a killed group resumes from its last
# end-of-epoch checkpoint in OUT.
#
# Usage: reproduction/run_study.sh paper|beyond
#   OUT (default sweeps/study): run folders (event files, checkpoints; never committed)
#   SUMS (default reproduction/study): the summaries to commit (beyond arms in SUMS/beyond)
#   DATA (default ../shared/cifar10): the folder that contains cifar-10-batches-py/
#   BEYOND_SEEDS (default 0-9), PYTHON (default python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT="${OUT:-sweeps/study}"
SUMS="${SUMS:-reproduction/study}"
COMMON=(--epochs 30 --jobs 1 --threads 1 --data.data_dir "${DATA:-../shared/cifar10}")
case "${1:-}" in
    paper)
        exec "$PY" -m lightning_sig.sweep fig1_large_params fig2_many_layers fig3_combined \
            fig4_logistic --seeds 0-24 --members 25 --out "$OUT/paper" --summaries "$SUMS" \
            "${COMMON[@]}" ;;
    beyond)
        exec "$PY" -m lightning_sig.sweep fig2_alpha fig4_remedies fig3_usual_init \
            --config-dir configs/beyond --seeds "${BEYOND_SEEDS:-0-9}" --members 25 \
            --out "$OUT/beyond" --summaries "$SUMS/beyond" "${COMMON[@]}" ;;
    *)
        echo "usage: $0 paper|beyond (see the header of this script)" >&2
        exit 2 ;;
esac
